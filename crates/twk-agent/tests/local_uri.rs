//! The local URL builder never lets a request's path choose the host or port (issue: a
//! request target of `*` once reached port 80).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use twk_agent::Target;

fn targets() -> Vec<Target> {
    [
        "3000",
        "127.0.0.1:8080",
        "http://localhost:9/api",
        "[::1]:7",
    ]
    .into_iter()
    .map(|t| Target::parse(t).unwrap())
    .collect()
}

/// The cases that broke the string-built URL, and their relatives.
#[test]
fn known_odd_targets_keep_host_and_port() {
    for t in targets() {
        for odd in [
            "*",
            "//evil.example/x",
            "//evil.example:80",
            "@x",
            "@evil.example:80/",
            "\\x",
            "%2F%2Fevil",
            "/a:80/b",
            ":80",
            "?q=1",
            "",
            "/",
        ] {
            match t.local_uri(odd) {
                Ok(u) => {
                    assert_eq!(u.scheme_str(), Some("http"), "{odd:?}");
                    assert_eq!(u.authority().unwrap().as_str(), t.authority, "{odd:?}");
                    assert!(
                        u.path().starts_with(&format!("{}/", t.base_path)),
                        "{odd:?}"
                    );
                }
                // Bytes that cannot be a path are refused, never reinterpreted.
                Err(_) => assert!(odd.contains('\\'), "{odd:?} refused"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Whatever bytes a path holds, the URL is the target's host and port, or an error.
    #[test]
    fn any_path_bytes_keep_host_and_port(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let path = String::from_utf8_lossy(&bytes);
        for t in targets() {
            if let Ok(u) = t.local_uri(&path) {
                prop_assert_eq!(u.scheme_str(), Some("http"));
                prop_assert_eq!(u.authority().unwrap().as_str(), t.authority.as_str());
                prop_assert_eq!(u.port_u16(), t.authority.rsplit(':').next().and_then(|p| p.parse().ok()));
                let base = format!("{}/", t.base_path);
                prop_assert!(u.path().starts_with(&base));
                // And what hyper would connect to, re-parsed from the text, agrees.
                let reparsed: http::Uri = u.to_string().parse().unwrap();
                prop_assert_eq!(reparsed.authority().unwrap().as_str(), t.authority.as_str());
            }
        }
    }

    /// Every path a sender can legally put on a request line (RFC 3986 pchar, `/` and `?`)
    /// builds, and keeps host and port.
    #[test]
    fn legal_paths_always_build(path in "[A-Za-z0-9/._~%:@!$&'()*+,;=?-]{0,64}") {
        let t = Target::parse("3000").unwrap();
        let u = t.local_uri(&path);
        prop_assert!(u.is_ok(), "{:?}: {:?}", path, u.as_ref().err());
        let u = u.unwrap();
        prop_assert_eq!(u.authority().unwrap().as_str(), "localhost:3000");
    }
}
