//! Rows in and out of SQLite: header and lint encodings, and reading a row (by column name)
//! into a [`Summary`] or a [`StoredExchange`].

use crate::body_files::BodyFiles;
use crate::error::{CaptureError, Result};
use crate::exchange::*;
use crate::handshake::{Handshake, Leg, Lint, LintCode};
use crate::query::{StoredExchange, Summary};
use base64::Engine as _;
use rusqlite::Row;
use twk_providers::Verdict;

pub(crate) fn side_str(s: Side) -> &'static str {
    match s {
        Side::Sender => "sender",
        Side::Tunnel => "tunnel",
        Side::Target => "target",
    }
}

pub(crate) fn parse_side(s: &str) -> Option<Side> {
    match s {
        "sender" => Some(Side::Sender),
        "tunnel" => Some(Side::Tunnel),
        "target" => Some(Side::Target),
        _ => None,
    }
}

/// Headers as JSON text: `[["name","value"], ["name", null, "<base64>"]]` (the second form
/// for values that are not UTF-8). Text keeps `grep` working on heads.
///
/// Serialized straight from the headers: building a `serde_json::Value` per header first
/// was an eighth of the capture writer's time.
pub(crate) fn encode_headers(h: &[Header]) -> Result<String> {
    Ok(serde_json::to_string(&HeadersJson(h))?)
}

struct HeadersJson<'a>(&'a [Header]);

impl serde::Serialize for HeadersJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for h in self.0 {
            seq.serialize_element(&HeaderJson(h))?;
        }
        seq.end()
    }
}

struct HeaderJson<'a>(&'a Header);

impl serde::Serialize for HeaderJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let h = self.0;
        match std::str::from_utf8(&h.value) {
            Ok(v) => {
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&h.name)?;
                t.serialize_element(v)?;
                t.end()
            }
            Err(_) => {
                let mut t = s.serialize_tuple(3)?;
                t.serialize_element(&h.name)?;
                t.serialize_element(&())?;
                t.serialize_element(&base64::engine::general_purpose::STANDARD.encode(&h.value))?;
                t.end()
            }
        }
    }
}

pub(crate) fn decode_headers(id: i64, s: &str) -> Result<Vec<Header>> {
    let corrupt = |what: &str| CaptureError::Corrupt {
        id,
        what: format!("headers: {what}"),
    };
    let v: Vec<Vec<serde_json::Value>> =
        serde_json::from_str(s).map_err(|e| corrupt(&e.to_string()))?;
    v.into_iter()
        .map(|pair| {
            let name = pair
                .first()
                .and_then(|n| n.as_str())
                .ok_or_else(|| corrupt("name"))?
                .to_owned();
            let value = match (pair.get(1), pair.get(2)) {
                (Some(serde_json::Value::String(s)), _) => s.clone().into_bytes(),
                (_, Some(serde_json::Value::String(b))) => {
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|_| corrupt("base64 value"))?
                }
                _ => return Err(corrupt("value")),
            };
            Ok(Header { name, value })
        })
        .collect()
}

pub(crate) fn read_summary(r: &Row<'_>, now_ms: i64) -> rusqlite::Result<Summary> {
    let mut lints: Vec<LintCode> = r
        .get::<_, Option<String>>("lint_codes")?
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.parse().ok())
        .collect();
    if r.get::<_, Option<i64>>("hs_deadline_ms")?
        .is_some_and(|d| d < now_ms)
    {
        lints.push(LintCode::RetryNeverCame);
    }
    lints.sort();
    Ok(Summary {
        id: r.get("id")?,
        tunnel: r.get("tunnel")?,
        received_ms: r.get("received_ms")?,
        method: r.get("method")?,
        path: r.get("path")?,
        status: r.get("status")?,
        duration_ms: r.get("duration_ms")?,
        provider: r.get("provider")?,
        event: r.get("event")?,
        summary: r.get("summary")?,
        verdict: verdict_col(r.get("verdict")?),
        matched_secret: secret_col(r.get("matched_secret")?),
        attempt: r.get("attempt")?,
        replay_of: r.get("replay_of")?,
        missed: r.get("missed")?,
        refused: r.get("refused")?,
        failure_side: r
            .get::<_, Option<String>>("failure_side")?
            .as_deref()
            .and_then(parse_side),
        request_body_len: r.get::<_, i64>("req_body_len")?.max(0) as u64,
        handshake: read_handshake(r.get("hs_leg")?, r.get("hs_with")?),
        lints,
    })
}

/// The handshake of a row from its `hs_leg`/`hs_with` columns.
pub(crate) fn read_handshake(leg: Option<i64>, with: Option<ExchangeId>) -> Option<Handshake> {
    match leg {
        Some(l) => Leg::from_number(l).map(|leg| Handshake { leg, with }),
        _ => None,
    }
}

/// Stored lints as (`lints` JSON, `lint_codes`), both `NULL` when there are none.
pub(crate) fn encode_lints(lints: &[Lint]) -> Result<(Option<String>, Option<String>)> {
    if lints.is_empty() {
        return Ok((None, None));
    }
    let codes: String = lints.iter().fold(String::from(","), |mut s, l| {
        s.push_str(l.code.as_str());
        s.push(',');
        s
    });
    Ok((Some(serde_json::to_string(lints)?), Some(codes)))
}

pub(crate) fn decode_lints(id: ExchangeId, json: Option<&str>) -> Result<Vec<Lint>> {
    match json {
        Some(s) => serde_json::from_str(s).map_err(|e| CaptureError::Corrupt {
            id,
            what: format!("lints: {e}"),
        }),
        None => Ok(Vec::new()),
    }
}

pub(crate) fn read_full(r: &Row<'_>, now_ms: i64, files: &BodyFiles) -> Result<StoredExchange> {
    let id: i64 = r.get("id")?;
    let analysis = match r.get::<_, Option<String>>("analysis")? {
        Some(s) => Some(
            crate::AnalysisJson::parse(s).map_err(|e| CaptureError::Corrupt {
                id,
                what: e.to_string(),
            })?,
        ),
        None => None,
    };
    let failure = match r
        .get::<_, Option<String>>("failure_side")?
        .as_deref()
        .and_then(parse_side)
    {
        Some(side) => Some(Failure {
            side,
            message: r
                .get::<_, Option<String>>("failure_message")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    let request = Message {
        headers: decode_headers(id, &r.get::<_, String>("req_headers")?)?,
        body: with_file(
            CapturedBody {
                bytes: r.get("req_body")?,
                len: r.get::<_, i64>("req_body_len")?.max(0) as u64,
                sha256: r.get("req_body_sha256")?,
                truncated: r.get("req_body_truncated")?,
            },
            r.get("req_body_file")?,
            files,
        ),
    };
    let response = if r.get::<_, bool>("has_response")? {
        Some(Message {
            headers: decode_headers(
                id,
                &r.get::<_, Option<String>>("resp_headers")?
                    .unwrap_or_default(),
            )?,
            body: with_file(
                CapturedBody {
                    bytes: r
                        .get::<_, Option<Vec<u8>>>("resp_body")?
                        .unwrap_or_default(),
                    len: r
                        .get::<_, Option<i64>>("resp_body_len")?
                        .unwrap_or(0)
                        .max(0) as u64,
                    sha256: r
                        .get::<_, Option<String>>("resp_body_sha256")?
                        .unwrap_or_default(),
                    truncated: r
                        .get::<_, Option<bool>>("resp_body_truncated")?
                        .unwrap_or(false),
                },
                r.get("resp_body_file")?,
                files,
            ),
        })
    } else {
        None
    };
    let exchange =
        Exchange {
            id: Some(id),
            tunnel: r.get("tunnel")?,
            request_id: r.get("request_id")?,
            timings: Timings {
                received_ms: r.get("received_ms")?,
                forwarded_ms: r.get("forwarded_ms")?,
                first_byte_ms: r.get("first_byte_ms")?,
                done_ms: r.get("done_ms")?,
            },
            method: r.get("method")?,
            public_url: r.get("public_url")?,
            path: r.get("path")?,
            target: r.get("target")?,
            remote_addr: r.get("remote_addr")?,
            status: r.get("status")?,
            failure,
            provider: r.get("provider")?,
            event: r.get("event")?,
            summary: r.get("summary")?,
            verdict: verdict_col(r.get("verdict")?),
            matched_secret: secret_col(r.get("matched_secret")?),
            analysis,
            replay_of: r.get("replay_of")?,
            missed: r.get("missed")?,
            refused: r.get("refused")?,
            request,
            response,
            auth: match r.get::<_, Option<String>>("auth")? {
                Some(s) => Some(serde_json::from_str::<AuthInfo>(&s).map_err(|e| {
                    CaptureError::Corrupt {
                        id,
                        what: format!("auth: {e}"),
                    }
                })?),
                None => None,
            },
        };
    let mut lints = decode_lints(id, r.get::<_, Option<String>>("lints")?.as_deref())?;
    if r.get::<_, Option<i64>>("hs_deadline_ms")?
        .is_some_and(|d| d < now_ms)
    {
        lints.push(Lint::retry_never_came());
        lints.sort_by_key(|l| l.code);
    }
    Ok(StoredExchange {
        exchange,
        attempt: r.get("attempt")?,
        group_key: r.get("group_key")?,
        handshake: read_handshake(r.get("hs_leg")?, r.get("hs_with")?),
        lints: (!lints.is_empty()).then_some(lints),
    })
}

/// A verdict column: text in SQLite, typed everywhere else (an unknown word reads as none).
pub(crate) fn verdict_col(text: Option<String>) -> Option<Verdict> {
    text.and_then(|t| t.parse().ok())
}

/// A matched-secret column, like [`verdict_col`].
pub(crate) fn secret_col(text: Option<String>) -> Option<twk_providers::SecretSource> {
    text.and_then(|t| t.parse().ok())
}

/// `body` with its bytes read from file `file` when it is kept in one. A file lost or
/// altered leaves the body without bytes, marked truncated (its length and hash stay).
fn with_file(mut body: CapturedBody, file: Option<String>, files: &BodyFiles) -> CapturedBody {
    if let Some(name) = file {
        match files.get(&name) {
            Some(bytes) => body.bytes = bytes,
            None => {
                body.bytes = Vec::new();
                body.truncated = true;
            }
        }
    }
    body
}
