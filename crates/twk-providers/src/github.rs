//! GitHub `X-Hub-Signature-256: sha256=<hex(HMAC-SHA256(secret, raw body))>`, and the legacy
//! `X-Hub-Signature: sha1=<hex>` when that is all there is.

use crate::Cx;
use crate::analysis::{Analysis, Event, Provider, Signed, Verdict};
use crate::check::{self, Computed, Variant};
use crate::request::RequestView;
use crate::secret::Secret;
use crate::util::{ct_eq, field, hmac_sha1, hmac_sha256};
use serde_json::Value;
use std::borrow::Cow;

const SHA256: &str = "X-Hub-Signature-256";
const SHA1: &str = "X-Hub-Signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algo {
    Sha256,
    Sha1,
}

fn compute(algo: Algo, key: &[u8], body: &[u8]) -> Computed {
    let (prefix, mac) = match algo {
        Algo::Sha256 => ("sha256=", hmac_sha256(key, body)),
        Algo::Sha1 => ("sha1=", hmac_sha1(key, body)),
    };
    Computed {
        sig: format!("{prefix}{}", hex::encode(mac)),
        signed: body.to_vec(),
    }
}

pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    let req = cx.req;
    let a = Analysis::new(Some(Provider::Github), event(req));
    let (algo, raw) = match (req.header(SHA256), req.header(SHA1)) {
        (Some(v), _) => (Algo::Sha256, v),
        (None, Some(v)) => (Algo::Sha1, v),
        (None, None) => {
            return a.verdict_with(
                Verdict::Unsigned,
                "No X-Hub-Signature-256 header: the GitHub webhook has no secret configured \
                 (GitHub signs only when one is set).",
            );
        }
    };
    let prefix = match algo {
        Algo::Sha256 => "sha256=",
        Algo::Sha1 => "sha1=",
    };
    let received = match std::str::from_utf8(raw).map(str::trim) {
        Ok(s) if s.starts_with(prefix) && s.len() > prefix.len() => s,
        _ => {
            let name = if algo == Algo::Sha256 { SHA256 } else { SHA1 };
            return a.verdict_with(
                Verdict::Malformed,
                format!("{name} must look like {prefix}<hex>."),
            );
        }
    };
    let Some(secret) = cx.secrets.get(Provider::Github) else {
        return a.verdict_with(
            Verdict::NoSecret,
            crate::no_secret_message(Provider::Github),
        );
    };
    let key = secret.expose();
    let label = match algo {
        Algo::Sha256 => "sha256",
        Algo::Sha1 => "sha1 (legacy X-Hub-Signature)",
    };
    let base = Variant::base(label, key, "", req.body);
    let mistakes = base.body_and_key_mistakes(cx, Provider::Github, req.body, key);
    let out = check::run(
        std::slice::from_ref(&base),
        &mistakes,
        |v| Some(compute(algo, &v.key, &v.body)),
        |sig| ct_eq(sig.as_bytes(), received.as_bytes()),
    );
    let summary = format!(
        "{} does not match {prefix}hex(HMAC-{}(secret, raw body)).",
        if algo == Algo::Sha256 { SHA256 } else { SHA1 },
        if algo == Algo::Sha256 {
            "SHA256"
        } else {
            "SHA1"
        },
    );
    let mut a = check::conclude(a, out, received, &summary, Vec::new());
    if a.verdict == Verdict::Valid && algo == Algo::Sha1 {
        a.notes.push(
            "only the legacy SHA-1 signature is present; GitHub recommends X-Hub-Signature-256"
                .to_owned(),
        );
    }
    a
}

/// `X-Hub-Signature-256` and the legacy `X-Hub-Signature`.
pub(crate) fn sign(req: &RequestView<'_>, secret: &Secret) -> Signed {
    Signed::headers(vec![
        (
            SHA256.to_owned(),
            compute(Algo::Sha256, secret.expose(), req.body).sig,
        ),
        (
            SHA1.to_owned(),
            compute(Algo::Sha1, secret.expose(), req.body).sig,
        ),
    ])
}

/// `X-GitHub-Event` + `action` · repository · sender.
pub(crate) fn event(req: &RequestView<'_>) -> Option<Event> {
    let kind = req.header_str("x-github-event");
    let body = req.json().map(Cow::Borrowed).or_else(|| {
        // application/x-www-form-urlencoded deliveries put the JSON in `payload`.
        crate::form::value_of(req.body, "payload")
            .and_then(|v| serde_json::from_str::<Value>(&v).ok())
            .map(Cow::Owned)
    });
    if kind.is_none() && body.is_none() {
        return None;
    }
    let action = body.as_ref().and_then(|b| field(b, "action"));
    let name = match (kind, action) {
        (Some(k), Some(a)) => format!("{k}.{a}"),
        (Some(k), None) => k.to_owned(),
        (None, Some(a)) => a.to_owned(),
        (None, None) => "github".to_owned(),
    };
    let mut summary = name.clone();
    if let Some(b) = &body {
        if let Some(repo) = b.pointer("/repository/full_name").and_then(Value::as_str) {
            summary.push_str(&format!(" · {repo}"));
        }
        if let Some(login) = b.pointer("/sender/login").and_then(Value::as_str) {
            summary.push_str(&format!(" · by {login}"));
        }
    }
    let mut e = Event::new(name, summary);
    e.id = req.header_str("x-github-delivery").map(str::to_owned);
    if let Some(Value::Object(m)) = body.as_deref() {
        e.details = crate::util::details_of(m, req.body);
    }
    Some(e)
}
