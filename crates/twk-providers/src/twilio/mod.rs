//! Twilio `X-Twilio-Signature` (HMAC-SHA1 over the URL + sorted form params, or the URL with
//! `bodySHA256` for JSON bodies; HMAC-SHA256 when `X-Twilio-Webhooks-Signature-Settings` says
//! so, see [`algorithm`]). The events Twilio sends are in [`events`].

use crate::Cx;
use crate::analysis::{Analysis, Provider, SignError, Signed, Verdict};
use crate::check::{self, Computed, Mode, Variant};
use crate::form::decode_pairs;
use crate::request::RequestView;
use crate::secret::Secret;
use crate::url::{UrlParts, add_default_port, strip_port};
use crate::util::{b64, ct_eq, sha256_hex};
use std::collections::BTreeMap;

mod algorithm;
mod events;

use algorithm::{Algorithm, Settings};

pub(crate) use events::{event, form_or_query, looks_like};

const HEADER: &str = "X-Twilio-Signature";

/// Whether the body is signed through `bodySHA256` (JSON) rather than as form params.
fn json_mode(req: &RequestView<'_>, parts: &UrlParts<'_>) -> bool {
    parts.raw_query_param("bodySHA256").is_some()
        || req.is_json()
        || (!req.is_form() && matches!(req.body.trim_ascii_start().first(), Some(b'{' | b'[')))
}

/// The params Twilio signs for a request: decoded form fields for POST forms, none for GET
/// and JSON bodies.
fn signed_params(req: &RequestView<'_>, json: bool) -> Vec<(String, String)> {
    if json || req.is_get() {
        Vec::new()
    } else {
        decode_pairs(req.body)
    }
}

/// The params part of the signed string.
pub(crate) fn params_string(params: &[(String, String)], mode: Mode) -> String {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in params {
        grouped.entry(k.as_str()).or_default().push(v.as_str());
    }
    let mut s = String::new();
    match mode {
        Mode::TwilioKeyValueSort => {
            let mut kv: Vec<String> = params.iter().map(|(k, v)| format!("{k}{v}")).collect();
            kv.sort();
            kv.dedup();
            s = kv.concat();
        }
        Mode::TwilioGivenOrder => {
            for (k, vs) in &grouped {
                for v in vs {
                    s.push_str(k);
                    s.push_str(v);
                }
            }
        }
        Mode::TwilioCommaJoin => {
            for (k, vs) in &grouped {
                s.push_str(k);
                s.push_str(&vs.join(","));
            }
        }
        Mode::TwilioFirstOnly => {
            for (k, vs) in &grouped {
                s.push_str(k);
                s.push_str(vs.first().copied().unwrap_or(""));
            }
        }
        _ => {
            for (k, vs) in &mut grouped {
                vs.sort_unstable();
                vs.dedup();
                for v in vs.iter() {
                    s.push_str(k);
                    s.push_str(v);
                }
            }
        }
    }
    s
}

/// The URL variants every official SDK accepts: as-is, port stripped or default port added,
/// the fragment removed, and `'` ↔ `%27` in the query.
pub(crate) fn accepted_urls(url: &str) -> Vec<(String, String)> {
    let mut bases: Vec<(String, String)> = vec![("as-is".to_owned(), url.to_owned())];
    if let Some(u) = strip_port(url) {
        bases.push(("port-stripped".to_owned(), u));
    } else if let Some(u) = add_default_port(url) {
        bases.push(("default-port-added".to_owned(), u));
    }
    if url.contains('#') {
        let more: Vec<(String, String)> = bases
            .iter()
            .filter_map(|(l, u)| {
                let p = UrlParts::parse(u)?;
                Some((
                    format!("{l}+fragment-removed"),
                    UrlParts {
                        fragment: None,
                        ..p
                    }
                    .build(),
                ))
            })
            .collect();
        bases.extend(more);
    }
    let mut out = bases.clone();
    for (l, u) in &bases {
        let Some(p) = UrlParts::parse(u) else {
            continue;
        };
        let Some(q) = p.query else { continue };
        if q.contains('\'') {
            let q2 = q.replace('\'', "%27");
            out.push((
                format!("{l}+quote-encoded"),
                UrlParts {
                    query: Some(&q2),
                    ..p
                }
                .build(),
            ));
        }
        if q.contains("%27") {
            let q2 = q.replace("%27", "'");
            out.push((
                format!("{l}+quote-decoded"),
                UrlParts {
                    query: Some(&q2),
                    ..p
                }
                .build(),
            ));
        }
    }
    out
}

/// Checks `X-Twilio-Signature`: the header, the auth token and an absolute URL first, then the
/// signature over every accepted URL variant, then (JSON bodies) the body against `bodySHA256`.
pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    let req = cx.req;
    let a = Analysis::new(Some(Provider::Twilio), event(req));
    let Some(raw) = req.header(HEADER) else {
        return a.verdict_with(
            Verdict::Unsigned,
            "The request has no X-Twilio-Signature header. Twilio signs every webhook, so this \
             was not sent by Twilio (or a proxy dropped the header).",
        );
    };
    let received = match std::str::from_utf8(raw) {
        Ok(s) if !s.trim().is_empty() => s.trim(),
        _ => {
            return a.verdict_with(
                Verdict::Malformed,
                "X-Twilio-Signature is empty or not text; Twilio sends base64.",
            );
        }
    };
    let Some(secret) = cx.secrets.get(Provider::Twilio) else {
        return a.verdict_with(
            Verdict::NoSecret,
            crate::no_secret_message(Provider::Twilio),
        );
    };
    let Some(parts) = UrlParts::parse(req.url) else {
        return a.verdict_with(
            Verdict::Malformed,
            format!(
                "The URL {:?} is not absolute: Twilio signs the full URL it called \
                 (scheme://host/path?query); pass that URL.",
                req.url
            ),
        );
    };
    let settings = match algorithm::settings(req) {
        Ok(s) => s,
        Err(name) => return unknown_algorithm(a, &name),
    };
    let json = json_mode(req, &parts);
    let a = check_signature(cx, a, secret.expose(), received, json, &settings);
    let a = if json {
        check_body_hash(a, req, &parts, received)
    } else {
        a
    };
    note_algorithm(note_lenient_variant(a), &settings)
}

/// The settings header names an algorithm the SDKs do not know: they reject the request, so
/// twk does too rather than guess.
fn unknown_algorithm(a: Analysis, name: &str) -> Analysis {
    a.verdict_with(
        Verdict::Invalid,
        format!(
            "{} names algorithm {name:?}; Twilio's SDKs know HMAC_SHA1 and HMAC_SHA256 \
             and reject a request signed with any other, so twk cannot check it either.",
            algorithm::SETTINGS
        ),
    )
}

/// A SharedKey (HMAC-SHA256) signature that holds: say which key, since it is not the auth
/// token.
fn note_algorithm(mut a: Analysis, settings: &Settings) -> Analysis {
    if a.verdict == Verdict::Valid && settings.algorithm == Algorithm::Sha256 {
        a.notes.push(format!(
            "HMAC-SHA256 as {} says (SharedKey {})",
            algorithm::SETTINGS,
            settings.key_id.as_deref().unwrap_or("not named")
        ));
    }
    a
}

/// The signature over the URL (+ form params): every accepted URL variant, then the plausible
/// mistakes, concluded into a verdict and a diagnosis.
fn check_signature(
    cx: &Cx<'_, '_>,
    a: Analysis,
    key: &[u8],
    received: &str,
    json: bool,
    settings: &Settings,
) -> Analysis {
    let req = cx.req;
    let alg = settings.algorithm;
    let params = signed_params(req, json);
    let base = Variant::base("as-is", key, req.url, req.body);
    let accepted: Vec<Variant<'_>> = accepted_urls(req.url)
        .into_iter()
        .map(|(l, u)| base.named(l, "").with_url(u))
        .collect();
    let mut mistakes = secondary_token_mistakes(cx, &accepted);
    for (label, why, k) in check::key_variants(cx, Provider::Twilio, key) {
        mistakes.push(base.named(label, why).with_key(k));
    }
    mistakes.extend(url_mistakes(cx, &base, &accepted));
    mistakes.extend(param_mistakes(&base, &params));
    mistakes.extend(algorithm_mistakes(&accepted, settings));

    let compute = |v: &Variant<'_>| {
        let mut signed = v.url.as_bytes().to_vec();
        signed.extend_from_slice(params_string(&params, v.mode).as_bytes());
        let alg = if v.mode == Mode::TwilioOtherAlgorithm {
            alg.other()
        } else {
            alg
        };
        Some(Computed {
            sig: b64(&alg.mac(&v.key, &signed)),
            signed,
        })
    };
    let matches = |sig: &str| ct_eq(sig.as_bytes(), received.as_bytes());
    let out = check::run(&accepted, &mistakes, compute, matches);

    let mut hints = check::url_hints(req.url);
    if json {
        hints.push(
            "JSON body: Twilio signs the URL including its bodySHA256 query parameter (no \
             form params) and the body is covered by that SHA-256."
                .to_owned(),
        );
    }
    let summary = match alg {
        Algorithm::Sha1 => "X-Twilio-Signature does not match HMAC-SHA1(auth token, URL + \
                            sorted POST params) for any URL variant Twilio's SDKs accept (as-is, \
                            port stripped or added, ' vs %27)."
            .to_owned(),
        Algorithm::Sha256 => {
            hints.push(format!(
                "signed with a SharedKey ({}): the secret is that key's secret, not the \
                 account auth token",
                settings.key_id.as_deref().unwrap_or("key not named")
            ));
            format!(
                "X-Twilio-Signature does not match HMAC-SHA256(SharedKey secret, URL + sorted \
                 POST params) for any URL variant Twilio's SDKs accept (as-is, port stripped \
                 or added, ' vs %27); {} says HMAC_SHA256.",
                algorithm::SETTINGS
            )
        }
    };
    check::conclude(a, out, received, &summary, hints)
}

/// The other algorithm over every accepted URL: a SharedKey signature whose settings header
/// was dropped on the way (or an auth-token signature with a stray header). The SDKs validate
/// with the header's algorithm only, so this explains a failure and never validates.
fn algorithm_mistakes<'a>(accepted: &[Variant<'a>], settings: &Settings) -> Vec<Variant<'a>> {
    let why = match settings.algorithm {
        Algorithm::Sha1 if settings.present => format!(
            "the signature is HMAC-SHA256 (a SharedKey signature), but {} does not say \
             algorithm=HMAC_SHA256; the SDKs validate with the algorithm the header names",
            algorithm::SETTINGS
        ),
        Algorithm::Sha1 => format!(
            "the signature is HMAC-SHA256 (a SharedKey signature), but the request has no {} \
             header saying algorithm=HMAC_SHA256 (did a proxy drop it?); the SDKs validate \
             with SHA-1 without it",
            algorithm::SETTINGS
        ),
        Algorithm::Sha256 => format!(
            "the signature is HMAC-SHA1, but {} says algorithm=HMAC_SHA256; the SDKs validate \
             with the algorithm the header names",
            algorithm::SETTINGS
        ),
    };
    let other = settings.algorithm.other().name();
    accepted
        .iter()
        .map(|v| {
            v.named(format!("{other}, {}", v.label), why.clone())
                .with_mode(Mode::TwilioOtherAlgorithm)
        })
        .collect()
}

/// The secondary auth token over every accepted URL: Twilio signs with it only once it is
/// promoted, which leaves apps validating with the old primary (error 57012).
fn secondary_token_mistakes<'a>(cx: &Cx<'_, '_>, accepted: &[Variant<'a>]) -> Vec<Variant<'a>> {
    let Some(sec) = cx.secrets.twilio_secondary() else {
        return Vec::new();
    };
    accepted
        .iter()
        .map(|v| {
            v.named(
                format!("secondary token, {}", v.label),
                "the signature matches your secondary auth token: Twilio signs with the \
                 secondary token only once it has been promoted to primary in the Console. \
                 Your app still validates with the old primary: update TWILIO_AUTH_TOKEN \
                 (Twilio reports this as error 57012)",
            )
            .with_key(sec.expose().to_vec())
        })
        .collect()
}

/// Every URL the sender may have signed instead, each with the variants the SDKs accept (a
/// mistake in the URL does not stop the SDK from also stripping its port). A URL already
/// tried (an accepted variant, or a variant of an earlier mistake) is skipped: with the same
/// key and params it cannot match now, and the list of what was checked stays readable.
fn url_mistakes<'a>(
    cx: &Cx<'_, '_>,
    base: &Variant<'a>,
    accepted: &[Variant<'a>],
) -> Vec<Variant<'a>> {
    let mut tried: Vec<String> = accepted.iter().map(|v| v.url.to_string()).collect();
    let mut out = Vec::new();
    for m in check::url_mistakes(cx) {
        for (l, u) in accepted_urls(&m.url) {
            if tried.contains(&u) {
                continue;
            }
            tried.push(u.clone());
            let label = if l == "as-is" {
                m.label.clone()
            } else {
                format!("{}, {l}", m.label)
            };
            out.push(base.named(label, m.why.clone()).with_url(u));
        }
    }
    out
}

/// Parameter orderings of validators that differ from Twilio's: key+value sorting (always
/// tried), and the three SDK behaviours for repeated keys (tried when a key repeats, the only
/// case where they differ).
fn param_mistakes<'a>(base: &Variant<'a>, params: &[(String, String)]) -> Vec<Variant<'a>> {
    let mut out = vec![
        base.named(
            "params sorted as key+value",
            "the sender sorted the parameters as key+value strings instead of by key (a bug some \
         validators had, e.g. `ReasonConferenceEnded` before `Reason`); Twilio sorts by key",
        )
        .with_mode(Mode::TwilioKeyValueSort),
    ];
    let multi = {
        let mut keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        keys.len() != n
    };
    if !multi {
        return out;
    }
    for (mode, label, why) in [
        (
            Mode::TwilioGivenOrder,
            "repeated params in received order",
            "the sender signed repeated parameters in received order without sorting or \
             de-duplicating them (twilio-ruby's behaviour); Twilio's canonical form sorts \
             and de-duplicates the values of a repeated key",
        ),
        (
            Mode::TwilioCommaJoin,
            "repeated params comma-joined",
            "the sender joined the values of a repeated parameter with commas \
             (twilio-csharp's NameValueCollection behaviour)",
        ),
        (
            Mode::TwilioFirstOnly,
            "repeated params first value only",
            "the sender kept only the first value of each repeated parameter \
             (twilio-go/twilio-java behaviour)",
        ),
    ] {
        out.push(base.named(label, why).with_mode(mode));
    }
    out
}

/// JSON bodies: the URL signature covers only `bodySHA256`, so the body itself must hash to it.
/// A missing or different hash makes the request invalid even when the URL signature holds.
fn check_body_hash(
    a: Analysis,
    req: &RequestView<'_>,
    parts: &UrlParts<'_>,
    received: &str,
) -> Analysis {
    let actual = sha256_hex(req.body);
    match parts.raw_query_param("bodySHA256") {
        None => missing_body_hash(a, &actual),
        Some(claimed) if !ct_eq(claimed.to_ascii_lowercase().as_bytes(), actual.as_bytes()) => {
            body_hash_mismatch(a, req, claimed, &actual, received)
        }
        Some(_) => a,
    }
}

/// JSON without `bodySHA256` in the URL: the body is not covered, so the SDKs reject it.
fn missing_body_hash(mut a: Analysis, actual: &str) -> Analysis {
    let d = a.diagnosis.get_or_insert_with(Default::default);
    a.verdict = Verdict::Invalid;
    a.matched_variant = None;
    d.summary = format!(
        "The body is JSON but the URL has no bodySHA256 query parameter. For JSON \
         webhooks Twilio appends bodySHA256=<SHA-256 of the body> to the URL and \
         signs that URL, so without it the body is not covered and the SDKs \
         reject the request. Is the URL missing its query string? This body's \
         SHA-256 is {actual}. {}",
        d.summary
    )
    .trim_end()
    .to_owned();
    a
}

/// The body changed after Twilio signed it: says whether the URL signature itself holds and
/// which re-encoding of the body would hash to the claimed value.
fn body_hash_mismatch(
    mut a: Analysis,
    req: &RequestView<'_>,
    claimed: &str,
    actual: &str,
    received: &str,
) -> Analysis {
    let cause = check::body_variants(req.body)
        .into_iter()
        .find(|(_, _, b)| sha256_hex(b) == claimed.to_ascii_lowercase())
        .map(|(_, why, _)| why);
    let url_note = match &a.matched_variant {
        Some(l) => format!("The URL signature holds ({l}), but the"),
        None => "Also, the".to_owned(),
    };
    let d = a.diagnosis.get_or_insert_with(Default::default);
    let prefix = format!(
        "{url_note} body's SHA-256 is {actual} while the URL says \
         bodySHA256={claimed}: the body changed after Twilio signed it."
    );
    d.summary = if d.summary.is_empty() {
        prefix
    } else {
        format!("{prefix} {}", d.summary)
    };
    if d.likely_cause.is_none() {
        d.likely_cause = cause;
    }
    if d.received.is_none() {
        d.received = Some(received.to_owned());
    }
    a.verdict = Verdict::Invalid;
    a.matched_variant = None;
    a
}

/// A match on a lenient variant holds for the SDKs but not for code that compares the URL
/// byte for byte: say so.
fn note_lenient_variant(mut a: Analysis) -> Analysis {
    if a.verdict == Verdict::Valid
        && let Some(l) = &a.matched_variant
        && l != "as-is"
    {
        a.notes.push(format!(
            "matched the {l} URL variant: every official SDK accepts it, but code that \
             compares against the URL exactly as-is would not"
        ));
    }
    a
}

/// Produces `X-Twilio-Signature` for the request's URL (and, for JSON bodies, a URL with a
/// fresh `bodySHA256`), with the algorithm the request's settings header names (SHA-1 without
/// one).
pub(crate) fn sign(req: &RequestView<'_>, secret: &Secret) -> Result<Signed, SignError> {
    let alg = algorithm::settings(req)
        .map_err(|name| SignError::BadRequest {
            provider: Provider::Twilio,
            reason: format!(
                "{} names algorithm {name:?}; twk signs with HMAC_SHA1 or HMAC_SHA256",
                algorithm::SETTINGS
            ),
        })?
        .algorithm;
    let parts = UrlParts::parse(req.url).ok_or_else(|| SignError::BadRequest {
        provider: Provider::Twilio,
        reason: format!(
            "{:?} is not an absolute URL; Twilio signs the full URL",
            req.url
        ),
    })?;
    let json = json_mode(req, &parts);
    let (url, signed) = if json {
        let hash = sha256_hex(req.body);
        let query = match parts.query {
            Some(q) if parts.raw_query_param("bodySHA256").is_some() => {
                let mut replaced = false;
                q.split('&')
                    .map(|kv| {
                        if !replaced && kv.split('=').next() == Some("bodySHA256") {
                            replaced = true;
                            format!("bodySHA256={hash}")
                        } else {
                            kv.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("&")
            }
            Some(q) if !q.is_empty() => format!("{q}&bodySHA256={hash}"),
            _ => format!("bodySHA256={hash}"),
        };
        let url = UrlParts {
            query: Some(&query),
            ..parts
        }
        .build();
        (url.clone(), url.into_bytes())
    } else {
        let params = signed_params(req, false);
        let mut s = req.url.as_bytes().to_vec();
        s.extend_from_slice(params_string(&params, Mode::Canonical).as_bytes());
        (req.url.to_owned(), s)
    };
    let sig = b64(&alg.mac(secret.expose(), &signed));
    Ok(Signed {
        headers: vec![(HEADER.to_owned(), sig)],
        url: (url != req.url).then_some(url),
        body: None,
    })
}
