//! Provider detection from headers and body (no secrets involved).

use crate::analysis::Provider;
use crate::request::RequestView;

/// Detects the provider from signature headers first, then provider-specific headers, then
/// the body's shape. `None` when nothing matches.
pub fn detect(req: &RequestView<'_>) -> Option<Provider> {
    let has = |n: &str| req.has_header(n);
    if has("stripe-signature") {
        return Some(Provider::Stripe);
    }
    if has("x-hub-signature-256") || has("x-hub-signature") || has("x-github-event") {
        return Some(Provider::Github);
    }
    if has("x-slack-signature") || has("x-slack-request-timestamp") {
        return Some(Provider::Slack);
    }
    if has("x-shopify-hmac-sha256") || has("x-shopify-topic") {
        return Some(Provider::Shopify);
    }
    if has("svix-signature") || has("svix-id") {
        return Some(Provider::Svix);
    }
    if has("webhook-signature") || (has("webhook-id") && has("webhook-timestamp")) {
        return Some(Provider::StandardWebhooks);
    }
    if has("x-authy-signature") || has("x-authy-signature-nonce") {
        return Some(Provider::AuthyOnetouch);
    }
    if has("x-twilio-signature") {
        return Some(Provider::Twilio);
    }
    if crate::authy_webhook::looks_like(req) {
        return Some(Provider::AuthyWebhook);
    }
    if crate::bandwidth::looks_like(req) {
        return Some(Provider::Bandwidth);
    }
    if crate::twilio::looks_like(req) {
        return Some(Provider::Twilio);
    }
    if crate::authy_onetouch::looks_like(req) {
        return Some(Provider::AuthyOnetouch);
    }
    None
}
