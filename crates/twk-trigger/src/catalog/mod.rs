//! Every event `trigger` can fire, per provider, with a builder that fills it the way that
//! provider's sender does (field names and shapes from `../shared/seeds/` and the providers'
//! public docs; values are fresh ids and the current time).

mod authy;
mod bandwidth;
mod github;
mod shopify;
mod slack;
mod standard;
mod stripe;
mod twilio;

use crate::TriggerError;
use crate::draft::{Body, Draft, Params, Set};
use twk_providers::Provider;

pub use twilio::{VERIFY_PUSH_EVENTS, VERIFY_PUSH_V1_FIELDS};

/// What an event's builder gets.
pub struct Build<'a> {
    /// The provider (one builder serves Standard Webhooks and Svix).
    pub provider: Provider,
    /// The event's catalog name (one builder serves several events).
    pub event: &'static str,
    /// The current time, Unix seconds.
    pub now: i64,
    /// The `--set`s: a builder takes its parameters out of them.
    pub params: &'a mut Params,
}

/// Builds one event's draft.
pub type Builder = fn(&mut Build<'_>) -> Result<Draft, TriggerError>;

/// One event a provider's sender can fire.
#[derive(Clone, Copy)]
pub struct EventSpec {
    /// The provider that sends it.
    pub provider: Provider,
    /// Its name as `trigger` takes it (`payment_intent.succeeded`, `factor.verified`).
    pub name: &'static str,
    /// One line on what it is.
    pub about: &'static str,
    /// Parameters it takes through `--set` besides fields (`version=v1|v2`, `to=+…`).
    pub params: &'static str,
    build: Builder,
}

impl std::fmt::Debug for EventSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSpec")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl EventSpec {
    pub(crate) const fn new(
        provider: Provider,
        name: &'static str,
        about: &'static str,
        build: Builder,
    ) -> EventSpec {
        EventSpec {
            provider,
            name,
            about,
            params: "",
            build,
        }
    }

    pub(crate) const fn with_params(mut self, params: &'static str) -> EventSpec {
        self.params = params;
        self
    }
}

/// The events of one provider, in the order `trigger --list` shows them.
pub fn events(provider: Provider) -> Vec<EventSpec> {
    match provider {
        Provider::Twilio => twilio::events(),
        Provider::AuthyOnetouch => authy::onetouch_events(),
        Provider::AuthyWebhook => authy::webhook_events(),
        Provider::Bandwidth => bandwidth::events(),
        Provider::Stripe => stripe::events(),
        Provider::Github => github::events(),
        Provider::Slack => slack::events(),
        Provider::Shopify => shopify::events(),
        Provider::StandardWebhooks => standard::events(Provider::StandardWebhooks),
        Provider::Svix => standard::events(Provider::Svix),
    }
}

/// The event `name` of `provider`, or an error that lists what there is.
pub fn find(provider: Provider, name: &str) -> Result<EventSpec, TriggerError> {
    let all = events(provider);
    if let Some(spec) = all.iter().find(|s| s.name == name) {
        return Ok(*spec);
    }
    let close: Vec<&str> = all
        .iter()
        .map(|s| s.name)
        .filter(|n| n.contains(name) || name.contains(n.split('.').next().unwrap_or(n)))
        .take(5)
        .collect();
    Err(TriggerError::UnknownEvent {
        provider,
        event: name.to_owned(),
        hint: if close.is_empty() {
            format!(
                "`twk-tunnel trigger --list {}` lists them",
                provider.as_str()
            )
        } else {
            format!("did you mean {}?", close.join(", "))
        },
    })
}

/// Builds the draft of `spec` at `now`: the builder takes its parameters from `sets`, the
/// other sets are applied as field overrides, in order.
pub fn build(spec: &EventSpec, sets: Vec<Set>, now: i64) -> Result<Draft, TriggerError> {
    let mut params = Params::new(sets);
    let mut b = Build {
        provider: spec.provider,
        event: spec.name,
        now,
        params: &mut params,
    };
    let mut draft = (spec.build)(&mut b)?;
    for set in params.into_sets() {
        draft.set(&set)?;
    }
    refresh_id(&mut draft);
    Ok(draft)
}

/// After overrides, the id shown is the one the body carries (a `--set id=…` is honoured).
fn refresh_id(d: &mut Draft) {
    let field = match (d.provider, &d.body) {
        (Provider::Stripe, _) => "id",
        (Provider::Twilio, Body::Form(_)) => match d.field("uuid") {
            Some(_) => "uuid",
            None => "MessageSid",
        },
        (Provider::Twilio, _) => "id",
        (Provider::AuthyWebhook, _) => "id",
        (Provider::AuthyOnetouch, _) => "uuid",
        (Provider::Bandwidth, _) => "message.id",
        (Provider::Slack, _) => "event_id",
        _ => return,
    };
    if let Some(id) = d.field(field) {
        d.id = id;
    }
}

#[cfg(test)]
mod tests;
