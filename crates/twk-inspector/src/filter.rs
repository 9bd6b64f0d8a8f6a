//! The `/` filter language: free text plus `provider:`, `event:`, `status:`, `verdict:`,
//! `lint:` and `tunnel:` terms, turned into a capture-store [`Filter`]. Without `tunnel:` the
//! inspector lists this tunnel's history; `tunnel:all` lists every tunnel's.
//!
//! Basic-auth handshakes are listed as one row (the store's `collapse_handshakes`: the leg-1
//! row of a paired handshake is left out, its leg-2 row stands for both) unless the filter
//! has a `status:` or `lint:` term or free text: those can match one leg and not the other,
//! and a filter must never hide a matching leg behind a row that does not match.
//!
//! ```
//! use twk_inspector::filter::parse;
//! let f = parse("provider:stripe status:5xx invoice paid").unwrap();
//! assert_eq!(f.provider.as_deref(), Some("stripe"));
//! assert_eq!(f.grep.as_deref(), Some("invoice paid"));
//! ```

use std::str::FromStr;
use twk_capture::{Filter, LintCode, StatusFilter, Summary};
use twk_providers::Verdict;

/// The `tunnel:` value that lists every tunnel's history (`tunnel:all` or `tunnel:*` set the
/// filter's name to this; no tunnel can be named `*`).
pub const ALL_TUNNELS: &str = "*";

/// Why a filter text was refused (the previous filter stays in force).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `status:` needs `404`, `4xx` or `none`.
    #[error("status:{0} is not a status (use e.g. 404, 4xx or none)")]
    BadStatus(String),
    /// `verdict:` needs one of the verdict names.
    #[error(
        "verdict:{0} is not a verdict (use valid, invalid, stale, unsigned, no_secret or malformed)"
    )]
    BadVerdict(String),
    /// A term with an empty value, e.g. `provider:`.
    #[error("{0}: needs a value")]
    Empty(String),
    /// The same key twice.
    #[error("{0}: given twice")]
    Twice(String),
    /// `lint:` needs a lint code.
    #[error("lint:{0} is not a lint code (use {codes})", codes = lint_codes())]
    BadLint(String),
    /// `refused:` and `missed:` need yes or no.
    #[error("{0}:{1} is not yes or no")]
    BadYesNo(String, String),
}

/// Every lint code, for [`FilterError::BadLint`].
fn lint_codes() -> String {
    let codes: Vec<&str> = LintCode::ALL.iter().map(|c| c.as_str()).collect();
    codes.join(", ")
}

/// `yes`/`no` (also `true`/`false`, `1`/`0`), as typed in a filter.
fn yes_no(key: &str, v: &str) -> Result<bool, FilterError> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(FilterError::BadYesNo(key.to_owned(), v.to_owned())),
    }
}

/// A verdict as typed in a filter: its id (`valid`, `no_secret`, `no-secret`) or a shorthand
/// (`ok`, `✓`, `bad`, `✗`, `nosecret`).
fn verdict(v: &str) -> Option<Verdict> {
    let v = v.to_ascii_lowercase().replace('-', "_");
    match v.as_str() {
        "ok" | "✓" => Some(Verdict::Valid),
        "bad" | "✗" => Some(Verdict::Invalid),
        "nosecret" => Some(Verdict::NoSecret),
        _ => v.parse().ok(),
    }
}

/// Parses filter text. Recognised `key:value` terms (keys case-insensitive: `provider`,
/// `event`, `status`, `verdict`, `lint`, `tunnel`, `refused`, `missed`) set the matching field; every other word is free text, matched as one substring (words joined by single
/// spaces) against URL, path, summary, headers and bodies. Empty text selects everything.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    let mut f = Filter::default();
    let mut free: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        let Some((key, value)) = word.split_once(':') else {
            free.push(word);
            continue;
        };
        let key_l = key.to_ascii_lowercase();
        if !matches!(
            key_l.as_str(),
            "provider" | "event" | "status" | "verdict" | "lint" | "tunnel" | "refused" | "missed"
        ) {
            free.push(word);
            continue;
        }
        if value.is_empty() {
            return Err(FilterError::Empty(key_l));
        }
        let slot_taken = match key_l.as_str() {
            "provider" => f.provider.is_some(),
            "event" => f.event.is_some(),
            "status" => f.status.is_some(),
            "lint" => f.lint.is_some(),
            "tunnel" => f.name.is_some(),
            "refused" => f.refused.is_some(),
            "missed" => f.missed.is_some(),
            _ => f.verdict.is_some(),
        };
        if slot_taken {
            return Err(FilterError::Twice(key_l));
        }
        match key_l.as_str() {
            "provider" => f.provider = Some(value.to_ascii_lowercase()),
            "event" => f.event = Some(value.to_owned()),
            "tunnel" if value == "all" || value == ALL_TUNNELS => {
                f.name = Some(ALL_TUNNELS.to_owned())
            }
            "tunnel" => f.name = Some(value.to_owned()),
            "refused" => f.refused = Some(yes_no(&key_l, value)?),
            "missed" => f.missed = Some(yes_no(&key_l, value)?),
            "status" => {
                f.status = Some(
                    StatusFilter::from_str(value)
                        .map_err(|_| FilterError::BadStatus(value.to_owned()))?,
                )
            }
            "lint" => {
                f.lint = Some(
                    value
                        .parse::<LintCode>()
                        .map_err(|_| FilterError::BadLint(value.to_owned()))?,
                )
            }
            _ => {
                f.verdict =
                    Some(verdict(value).ok_or_else(|| FilterError::BadVerdict(value.to_owned()))?)
            }
        }
    }
    if !free.is_empty() {
        f.grep = Some(free.join(" "));
    }
    f.collapse_handshakes = collapses(&f);
    Ok(f)
}

/// Whether a filter lists a paired Basic-auth handshake as one row: yes, unless it has a term
/// that can match one leg and not the other (`status:`, `lint:`, free text).
pub fn collapses(f: &Filter) -> bool {
    f.status.is_none() && f.lint.is_none() && f.grep.as_deref().is_none_or(str::is_empty)
}

/// Whether a freshly stored row matches `f` on the fields a [`Summary`] carries. `None` when
/// the filter has free text (which needs headers and bodies: ask the store instead).
pub fn matches(f: &Filter, s: &Summary) -> Option<bool> {
    if f.grep.as_deref().is_some_and(|g| !g.is_empty()) {
        return None;
    }
    let eq = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    let status_ok = match f.status {
        None => true,
        Some(StatusFilter::Exact(c)) => s.status == Some(c),
        Some(StatusFilter::Class(c)) => s.status.is_some_and(|st| st / 100 == u16::from(c)),
        Some(StatusFilter::NoResponse) => s.status.is_none(),
    };
    Some(
        eq(&f.provider, &s.provider)
            && eq(&f.event, &s.event)
            && f.verdict.is_none_or(|v| s.verdict == Some(v))
            && f.name.as_ref().is_none_or(|n| *n == s.tunnel)
            && f.replay_of.is_none_or(|r| s.replay_of == Some(r))
            && f.since_ms.is_none_or(|t| s.received_ms >= t)
            && f.until_ms.is_none_or(|t| s.received_ms <= t)
            && f.lint.is_none_or(|c| s.lints.contains(&c))
            && f.refused.is_none_or(|w| s.refused == w)
            && f.missed.is_none_or(|w| s.missed == w)
            && !(f.collapse_handshakes
                && s.handshake
                    .is_some_and(|h| h.leg == twk_capture::Leg::Challenge && h.with.is_some()))
            && status_ok,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_missed_take_yes_or_no_and_match_the_rows() {
        let f = parse("refused:no missed:YES").unwrap_or_default();
        assert_eq!((f.refused, f.missed), (Some(false), Some(true)));
        assert_eq!(
            parse("refused:maybe"),
            Err(FilterError::BadYesNo("refused".into(), "maybe".into()))
        );
        let ex = twk_capture::Exchange {
            refused: true,
            ..twk_capture::Exchange::default()
        };
        let s = Summary::of(1, &ex, None);
        let only = parse("refused:yes").unwrap_or_default();
        let hide = parse("refused:no").unwrap_or_default();
        assert_eq!(
            (matches(&only, &s), matches(&hide, &s)),
            (Some(true), Some(false))
        );
        let e = parse("lint:nope")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("slow-answer") && e.contains("preemptive-credentials"),
            "{e}"
        );
    }

    #[test]
    fn terms_and_free_text() {
        let f = parse("  Provider:Twilio event:message-failed status:4xx verdict:no-secret  a  b ")
            .unwrap_or_default();
        assert_eq!(f.provider.as_deref(), Some("twilio"));
        assert_eq!(f.event.as_deref(), Some("message-failed"));
        assert_eq!(f.status, Some(StatusFilter::Class(4)));
        assert_eq!(f.verdict, Some(Verdict::NoSecret));
        assert_eq!(f.grep.as_deref(), Some("a b"));
    }

    #[test]
    fn handshakes_collapse_unless_a_term_can_split_the_legs() {
        let f = parse("provider:bandwidth verdict:unsigned").unwrap_or_default();
        assert!(f.collapse_handshakes);
        for text in ["status:401", "lint:retry-never-came", "realm"] {
            assert!(
                !parse(text).unwrap_or_default().collapse_handshakes,
                "{text}"
            );
        }
        assert_eq!(
            parse("LINT:401-without-www-authenticate")
                .unwrap_or_default()
                .lint,
            Some(LintCode::Unauthorized401WithoutChallenge)
        );
    }

    #[test]
    fn unknown_keys_are_free_text() {
        let f = parse("foo:bar http://x").unwrap_or_default();
        assert_eq!(f.grep.as_deref(), Some("foo:bar http://x"));
        assert_eq!(
            parse("").ok(),
            Some(Filter {
                collapse_handshakes: true,
                ..Filter::default()
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse("status:abc"),
            Err(FilterError::BadStatus("abc".into()))
        );
        assert_eq!(
            parse("verdict:maybe"),
            Err(FilterError::BadVerdict("maybe".into()))
        );
        assert_eq!(parse("event:"), Err(FilterError::Empty("event".into())));
        assert_eq!(parse("lint:nope"), Err(FilterError::BadLint("nope".into())));
        assert_eq!(
            parse("status:200 status:201"),
            Err(FilterError::Twice("status".into()))
        );
    }
}
