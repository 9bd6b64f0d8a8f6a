//! Stripe: an `evt_` event object of the right type around the object it concerns, sent
//! pretty-printed with `Stripe-Signature: t=…,v1=…`.

use super::{Build, EventSpec};
use crate::TriggerError;
use crate::draft::{Body, Draft};
use crate::ids::alnum;
use serde_json::{Value, json};
use twk_providers::Provider;

/// The API version the events are rendered in.
const API_VERSION: &str = "2025-09-30.clover";

pub(super) fn events() -> Vec<EventSpec> {
    let p = Provider::Stripe;
    [
        ("payment_intent.created", "A PaymentIntent was created"),
        ("payment_intent.succeeded", "A payment succeeded"),
        (
            "payment_intent.payment_failed",
            "A payment failed (card declined)",
        ),
        ("charge.succeeded", "A charge succeeded"),
        ("charge.refunded", "A charge was refunded"),
        ("checkout.session.completed", "A Checkout Session completed"),
        ("customer.created", "A customer was created"),
        ("customer.subscription.created", "A subscription started"),
        ("customer.subscription.updated", "A subscription changed"),
        ("customer.subscription.deleted", "A subscription ended"),
        ("invoice.paid", "An invoice was paid"),
        ("invoice.payment_failed", "An invoice payment failed"),
    ]
    .into_iter()
    .map(|(name, about)| EventSpec::new(p, name, about, event))
    .collect()
}

fn event(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let id = alnum("evt_", 24);
    let customer = alnum("cus_", 14);
    let object = object_for(b.event, b.now, &customer);
    let body = json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "created": b.now,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": alnum("req_", 14), "idempotency_key": crate::ids::guid()},
        "type": b.event,
    });
    let mut d = Draft::post(Provider::Stripe, b.event, id, Body::Json(body))
        .header(
            "User-Agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .with_content_type("application/json; charset=utf-8");
    d.pretty = true;
    Ok(d)
}

fn object_for(event: &str, now: i64, customer: &str) -> Value {
    let failed = event.ends_with("payment_failed");
    match event.rsplit_once('.').map_or(event, |(o, _)| o) {
        "payment_intent" => json!({
            "id": alnum("pi_", 24),
            "object": "payment_intent",
            "amount": 2000,
            "amount_received": if event.ends_with("succeeded") { 2000 } else { 0 },
            "currency": "usd",
            "customer": customer,
            "status": match event {
                "payment_intent.succeeded" => "succeeded",
                "payment_intent.payment_failed" => "requires_payment_method",
                _ => "requires_payment_method",
            },
            "last_payment_error": if failed {
                json!({"code": "card_declined", "decline_code": "generic_decline",
                       "message": "Your card was declined.", "type": "card_error"})
            } else { Value::Null },
            "created": now,
            "livemode": false,
            "metadata": {},
        }),
        "charge" => json!({
            "id": alnum("ch_", 24),
            "object": "charge",
            "amount": 2000,
            "amount_refunded": if event == "charge.refunded" { 2000 } else { 0 },
            "currency": "usd",
            "customer": customer,
            "paid": true,
            "refunded": event == "charge.refunded",
            "status": "succeeded",
            "payment_intent": alnum("pi_", 24),
            "created": now,
            "livemode": false,
            "metadata": {},
        }),
        "checkout.session" => json!({
            "id": alnum("cs_test_", 58),
            "object": "checkout.session",
            "amount_total": 2000,
            "currency": "usd",
            "customer": customer,
            "mode": "payment",
            "payment_status": "paid",
            "status": "complete",
            "created": now,
            "livemode": false,
            "metadata": {},
        }),
        "customer" => json!({
            "id": customer,
            "object": "customer",
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "created": now,
            "livemode": false,
            "metadata": {},
        }),
        "customer.subscription" => json!({
            "id": alnum("sub_", 24),
            "object": "subscription",
            "customer": customer,
            "status": if event.ends_with("deleted") { "canceled" } else { "active" },
            "items": {"object": "list", "data": [{
                "id": alnum("si_", 14), "object": "subscription_item", "quantity": 1,
                "price": {"id": alnum("price_", 24), "object": "price", "unit_amount": 2000,
                          "currency": "usd", "recurring": {"interval": "month"}},
            }]},
            "created": now,
            "livemode": false,
            "metadata": {},
        }),
        _ => json!({
            "id": alnum("in_", 24),
            "object": "invoice",
            "amount_due": 2000,
            "amount_paid": if failed { 0 } else { 2000 },
            "currency": "usd",
            "customer": customer,
            "status": if failed { "open" } else { "paid" },
            "attempt_count": 1,
            "created": now,
            "livemode": false,
            "metadata": {},
        }),
    }
}
