//! Shopify: topics with `X-Shopify-Topic`, `X-Shopify-Shop-Domain`, `X-Shopify-API-Version`,
//! `X-Shopify-Webhook-Id` and `X-Shopify-Hmac-Sha256` (base64).

use super::{Build, EventSpec};
use crate::TriggerError;
use crate::draft::{Body, Draft};
use crate::ids::{digits, guid, rfc3339};
use serde_json::{Value, json};
use twk_providers::Provider;

const API_VERSION: &str = "2025-10";
const SHOP: &str = "twk-test.myshopify.com";

pub(super) fn events() -> Vec<EventSpec> {
    let p = Provider::Shopify;
    [
        ("orders/create", "An order was placed"),
        ("orders/paid", "An order was paid"),
        ("orders/cancelled", "An order was cancelled"),
        ("products/create", "A product was created"),
        ("products/update", "A product changed"),
        ("customers/create", "A customer was created"),
        ("app/uninstalled", "The app was uninstalled from the shop"),
    ]
    .into_iter()
    .map(|(name, about)| EventSpec::new(p, name, about, event))
    .collect()
}

fn id() -> u64 {
    digits(13).parse().unwrap_or(820_982_911_946_154_508)
}

fn event(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let at = rfc3339(b.now);
    let body: Value = match b.event.split('/').next().unwrap_or("") {
        "orders" => json!({
            "id": id(),
            "name": "#1001",
            "email": "jon@example.com",
            "created_at": at,
            "currency": "USD",
            "total_price": "20.00",
            "financial_status": if b.event == "orders/paid" { "paid" } else { "pending" },
            "cancelled_at": if b.event == "orders/cancelled" { json!(at) } else { Value::Null },
            "line_items": [{"id": id(), "title": "Webhook tester", "quantity": 1, "price": "20.00"}],
        }),
        "products" => json!({
            "id": id(),
            "title": "Webhook tester",
            "vendor": "twk",
            "status": "active",
            "created_at": at,
            "updated_at": at,
            "variants": [{"id": id(), "price": "20.00", "sku": "TWK-1"}],
        }),
        "customers" => json!({
            "id": id(),
            "email": "jon@example.com",
            "first_name": "Jon",
            "last_name": "Snow",
            "created_at": at,
        }),
        _ => json!({"id": id(), "name": "twk test shop", "domain": SHOP, "myshopify_domain": SHOP}),
    };
    let webhook_id = guid();
    Ok(Draft::post(
        Provider::Shopify,
        b.event,
        webhook_id.clone(),
        Body::Json(body),
    )
    .header("User-Agent", "Shopify-Captain-Hook")
    .header("X-Shopify-Topic", b.event)
    .header("X-Shopify-Shop-Domain", SHOP)
    .header("X-Shopify-API-Version", API_VERSION)
    .header("X-Shopify-Webhook-Id", webhook_id)
    .header("X-Shopify-Event-Id", guid())
    .header("X-Shopify-Triggered-At", crate::ids::rfc3339_ms(b.now)))
}
