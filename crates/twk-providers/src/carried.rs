//! What a request to be signed already carries (its timestamp, nonce or message id), so that
//! signing a given request reproduces it instead of inventing new values.

use crate::analysis::{Provider, SignOptions};
use crate::request::RequestView;
use crate::util::parse_unix;

impl SignOptions {
    /// Completes these (explicit) options for signing `req` as `provider`: a value given here
    /// wins; else the one the request already carries (Stripe's `t=`, Slack's
    /// `X-Slack-Request-Timestamp`, the `webhook-`/`svix-` id and timestamp, the Authy
    /// OneTouch nonce, an Authy JWT's `iat`); only when neither exists is a timestamp of
    /// `now_unix` used. So `twk-tunnel sign` on a request that came with its own signing inputs
    /// reproduces it exactly.
    #[must_use]
    pub fn or_carried(self, provider: Provider, req: &RequestView<'_>, now_unix: i64) -> Self {
        let carried = carried(provider, req);
        if provider == Provider::AuthyOnetouch && (self.id.is_some() || self.timestamp.is_some()) {
            // The nonce is the id, else the timestamp: an explicit one of either is the nonce
            // asked for, and the request's own must not override it.
            return self;
        }
        SignOptions {
            timestamp: self.timestamp.or(carried.timestamp).or(Some(now_unix)),
            id: self.id.or(carried.id),
        }
    }
}

/// The signing inputs `req` carries for `provider`.
fn carried(provider: Provider, req: &RequestView<'_>) -> SignOptions {
    let ts = |name: &str| req.header_str(name).and_then(parse_unix);
    let text = |name: &str| {
        req.header_str(name)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // Standard Webhooks and Svix read each other's headers (as their libraries do).
    let family = |own: &str, other: &str| SignOptions {
        timestamp: ts(&format!("{own}-timestamp")).or_else(|| ts(&format!("{other}-timestamp"))),
        id: text(&format!("{own}-id")).or_else(|| text(&format!("{other}-id"))),
    };
    match provider {
        Provider::Stripe => SignOptions {
            timestamp: req
                .header_str("Stripe-Signature")
                .and_then(crate::stripe::parse_header)
                .map(|h| h.t),
            id: None,
        },
        Provider::Slack => SignOptions {
            timestamp: ts("X-Slack-Request-Timestamp"),
            id: None,
        },
        Provider::StandardWebhooks => family("webhook", "svix"),
        Provider::Svix => family("svix", "webhook"),
        Provider::AuthyOnetouch => SignOptions {
            timestamp: None,
            id: text("X-Authy-Signature-Nonce"),
        },
        Provider::AuthyWebhook => SignOptions {
            timestamp: crate::authy_webhook::carried_iat(req),
            id: None,
        },
        Provider::Twilio | Provider::Bandwidth | Provider::Github | Provider::Shopify => {
            SignOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_beats_carried_beats_invented() {
        let req = RequestView::new("POST", "https://e.com/", b"{}")
            .with_header("Stripe-Signature", b"t=1600000000,v1=ab")
            .with_header("webhook-id", b"msg_given")
            .with_header("svix-timestamp", b"1600000001");
        let given = |t: Option<i64>, id: Option<&str>| SignOptions {
            timestamp: t,
            id: id.map(str::to_owned),
        };
        let stripe = SignOptions::default().or_carried(Provider::Stripe, &req, 9);
        assert_eq!(stripe, given(Some(1_600_000_000), None));
        let explicit = given(Some(5), None).or_carried(Provider::Stripe, &req, 9);
        assert_eq!(explicit, given(Some(5), None));
        // Standard Webhooks: its own id, the Svix timestamp as a fallback.
        let sw = SignOptions::default().or_carried(Provider::StandardWebhooks, &req, 9);
        assert_eq!(sw, given(Some(1_600_000_001), Some("msg_given")));
        // Nothing carried: only then is the clock used.
        let slack = SignOptions::default().or_carried(Provider::Slack, &req, 9);
        assert_eq!(slack, given(Some(9), None));
    }

    #[test]
    fn authy_nonce_is_the_given_one() {
        let req = RequestView::new("POST", "https://e.com/", b"{\"a\":\"1\"}")
            .with_header("X-Authy-Signature-Nonce", b"1455825429");
        let carried = SignOptions::default().or_carried(Provider::AuthyOnetouch, &req, 9);
        assert_eq!(carried.id.as_deref(), Some("1455825429"));
        let explicit = SignOptions {
            timestamp: Some(7),
            id: None,
        }
        .or_carried(Provider::AuthyOnetouch, &req, 9);
        assert_eq!((explicit.timestamp, explicit.id), (Some(7), None));
        let bare = RequestView::new("POST", "https://e.com/", b"{}");
        let invented = SignOptions::default().or_carried(Provider::AuthyOnetouch, &bare, 9);
        assert_eq!((invented.timestamp, invented.id), (Some(9), None));
    }
}
