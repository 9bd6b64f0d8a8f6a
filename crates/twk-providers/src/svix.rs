//! Svix: the Standard Webhooks scheme under `svix-id` / `svix-timestamp` / `svix-signature`
//! (falling back to `webhook-*`, as the Svix libraries do). Same key handling: `whsec_`
//! stripped, the rest base64-decoded.

use crate::Cx;
use crate::analysis::{Analysis, Provider};

pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    crate::standard_webhooks::analyze_flavour(cx, Provider::Svix)
}
