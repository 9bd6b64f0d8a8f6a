//! Query types: [`Filter`], [`StatusFilter`], [`Order`], and the rows queries return
//! ([`Summary`], [`StoredExchange`]).

use crate::error::{CaptureError, Result};
use crate::exchange::{Exchange, ExchangeId, Side};
use crate::handshake::{Handshake, Lint, LintCode};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Which responses a status filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Exactly this status code (`404`).
    Exact(u16),
    /// A class: `4` for `4xx`, `5` for `5xx` (1–5).
    Class(u8),
    /// No response came back (failure before a response head).
    NoResponse,
}

impl FromStr for StatusFilter {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || CaptureError::BadStatus {
            input: s.to_owned(),
        };
        let t = s.trim().to_ascii_lowercase();
        if t == "none" || t == "-" {
            return Ok(StatusFilter::NoResponse);
        }
        if let Some(d) = t.strip_suffix("xx") {
            return match d.parse::<u8>() {
                Ok(c @ 1..=5) if d.len() == 1 => Ok(StatusFilter::Class(c)),
                _ => Err(bad()),
            };
        }
        match t.parse::<u16>() {
            Ok(c @ 100..=999) if t.len() == 3 => Ok(StatusFilter::Exact(c)),
            _ => Err(bad()),
        }
    }
}

/// Result order. Ids grow with arrival, so this is also time order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Highest id first (the default: `limit` then keeps the most recent).
    #[default]
    NewestFirst,
    /// Lowest id first.
    OldestFirst,
}

/// What to select. Every set field must match (AND). The default selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Tunnel name.
    pub name: Option<String>,
    /// Provider id (`stripe`, `twilio`, …), exact.
    pub provider: Option<String>,
    /// Event name, exact (`device_registration_completed`).
    pub event: Option<String>,
    /// Response status.
    pub status: Option<StatusFilter>,
    /// Signature verdict, exact.
    pub verdict: Option<twk_providers::Verdict>,
    /// Received at or after (inclusive), Unix ms.
    pub since_ms: Option<i64>,
    /// Received at or before (inclusive), Unix ms.
    pub until_ms: Option<i64>,
    /// Substring (ASCII case-insensitive) of the public URL, path, event summary, any header
    /// name or value, or either stored body.
    pub grep: Option<String>,
    /// Only replays of this exchange.
    pub replay_of: Option<ExchangeId>,
    /// `Some(true)`: only requests that arrived while the client was offline (kept by the
    /// relay); `Some(false)`: none of them.
    pub missed: Option<bool>,
    /// `Some(true)`: only requests the relay refused itself (never forwarded);
    /// `Some(false)`: none of them.
    pub refused: Option<bool>,
    /// Only exchanges with an id above this (for "what's new since").
    pub after_id: Option<ExchangeId>,
    /// Only exchanges carrying this lint (`retry-never-came` is judged against now).
    pub lint: Option<LintCode>,
    /// Show a paired handshake as one row: leave out leg-1 rows that have a leg 2 (the leg-2
    /// row names it in [`Summary::handshake`]).
    pub collapse_handshakes: bool,
    /// At most this many rows (`None`: no limit).
    pub limit: Option<u64>,
    /// Skip this many rows first.
    pub offset: u64,
    /// Row order.
    pub order: Order,
}

impl Filter {
    /// Sets `since_ms`/`until_ms` from timestamps.
    pub fn between(
        mut self,
        since: Option<jiff::Timestamp>,
        until: Option<jiff::Timestamp>,
    ) -> Self {
        self.since_ms = since.map(|t| t.as_millisecond());
        self.until_ms = until.map(|t| t.as_millisecond());
        self
    }
}

/// One cheap list row (no heads, no bodies), for tables and virtualised lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Exchange id.
    pub id: ExchangeId,
    /// Tunnel name.
    pub tunnel: String,
    /// When the relay received the request, Unix ms.
    pub received_ms: i64,
    /// Request method.
    pub method: String,
    /// Path and query as forwarded.
    pub path: String,
    /// Response status, if any.
    pub status: Option<u16>,
    /// Receipt to done, ms.
    pub duration_ms: Option<i64>,
    /// Provider id.
    pub provider: Option<String>,
    /// Event name.
    pub event: Option<String>,
    /// One-line event summary.
    pub summary: Option<String>,
    /// Signature verdict.
    pub verdict: Option<twk_providers::Verdict>,
    /// Which secret a `valid` or `stale` signature held with.
    #[serde(default)]
    pub matched_secret: Option<twk_providers::SecretSource>,
    /// Delivery attempt number within its group (1 = first); `None` for replays.
    pub attempt: Option<u32>,
    /// The exchange this one replays.
    pub replay_of: Option<ExchangeId>,
    /// It arrived while the client was offline (kept by the relay, recorded on reconnect).
    #[serde(default)]
    pub missed: bool,
    /// The relay refused it itself; the app never saw it.
    #[serde(default)]
    pub refused: bool,
    /// Which side failed, if any.
    pub failure_side: Option<Side>,
    /// Full length of the request body.
    pub request_body_len: u64,
    /// Basic-auth handshake leg and partner (lock mark); `None` when not part of one.
    #[serde(default)]
    pub handshake: Option<Handshake>,
    /// Codes of the exchange's lints (`retry-never-came` as of the read), in display order;
    /// [`LintCode::severity`] gives each one's severity.
    #[serde(default)]
    pub lints: Vec<LintCode>,
}

impl Summary {
    /// Builds the summary of an exchange about to be (or just) stored, without handshake and
    /// lints (the store fills those in).
    pub fn of(id: ExchangeId, ex: &Exchange, attempt: Option<u32>) -> Self {
        Summary {
            id,
            tunnel: ex.tunnel.clone(),
            received_ms: ex.timings.received_ms,
            method: ex.method.clone(),
            path: ex.path.clone(),
            status: ex.status,
            duration_ms: ex.duration_ms(),
            provider: ex.provider.clone(),
            event: ex.event.clone(),
            summary: ex.summary.clone(),
            verdict: ex.verdict,
            matched_secret: ex.matched_secret,
            attempt,
            replay_of: ex.replay_of,
            missed: ex.missed,
            refused: ex.refused,
            failure_side: ex.failure.as_ref().map(|f| f.side),
            request_body_len: ex.request.body.len,
            handshake: None,
            lints: Vec::new(),
        }
    }
}

/// A stored exchange with what the store derived on insert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredExchange {
    /// The exchange; `id` is always `Some`, bodies are as stored (possibly truncated).
    pub exchange: Exchange,
    /// Delivery attempt number within its group (1 = first); `None` for replays.
    pub attempt: Option<u32>,
    /// The attempt group key (provider delivery id or body hash), scoped by tunnel.
    pub group_key: Option<String>,
    /// Basic-auth handshake leg and partner; `None` when not part of one.
    pub handshake: Option<Handshake>,
    /// The exchange's lints in display order (`retry-never-came` as of the read); `None` when
    /// there are none (never `Some` of an empty list).
    pub lints: Option<Vec<Lint>>,
}

impl StoredExchange {
    /// The id (always set on stored rows).
    pub fn id(&self) -> ExchangeId {
        self.exchange.id.unwrap_or_default()
    }

    /// The list row of this exchange.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::of(self.id(), &self.exchange, self.attempt);
        s.handshake = self.handshake;
        s.lints = self.lints.iter().flatten().map(|l| l.code).collect();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filter_parses() {
        assert_eq!(
            "404".parse::<StatusFilter>().ok(),
            Some(StatusFilter::Exact(404))
        );
        assert_eq!(
            "4xx".parse::<StatusFilter>().ok(),
            Some(StatusFilter::Class(4))
        );
        assert_eq!(
            "5XX".parse::<StatusFilter>().ok(),
            Some(StatusFilter::Class(5))
        );
        assert_eq!(
            "none".parse::<StatusFilter>().ok(),
            Some(StatusFilter::NoResponse)
        );
        for bad in ["", "6xx", "40", "4044", "abc", "0xx", "45xx"] {
            assert!(bad.parse::<StatusFilter>().is_err(), "{bad}");
        }
    }
}
