//! Keys the sender may have used instead of the configured one.

use crate::Cx;
use crate::analysis::Provider;

/// Keys the sender may have used instead of the configured one: the configured secret
/// trimmed of whitespace, and the secrets configured for the other providers.
pub(crate) fn key_variants(
    cx: &Cx<'_, '_>,
    provider: Provider,
    key: &[u8],
) -> Vec<(String, String, Vec<u8>)> {
    let mut out: Vec<(String, String, Vec<u8>)> = Vec::new();
    let trimmed = key.trim_ascii();
    if trimmed.len() != key.len() {
        out.push((
            "secret trimmed".to_owned(),
            "the signature matches the configured secret without its surrounding whitespace: \
             the configured value has a stray space or newline (e.g. read from a file)"
                .to_owned(),
            trimmed.to_vec(),
        ));
    }
    for other in cx.secrets.configured() {
        if other == provider {
            continue;
        }
        let Some(s) = cx.secrets.get(other) else {
            continue;
        };
        if s.expose() == key || out.iter().any(|(_, _, k)| k == s.expose()) {
            continue;
        }
        out.push((
            format!("{other} secret"),
            format!(
                "the signature matches the secret configured for {other}: the wrong secret is \
                 configured for {provider} (or the request is really from {other})"
            ),
            s.expose().to_vec(),
        ));
    }
    out
}
