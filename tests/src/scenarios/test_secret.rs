//! twk's test secrets through the real tunnel: a webhook signed with the provider's test
//! secret (what `trigger` signs with when no secret is configured) is valid and says so,
//! even when the secret appeared after the tunnel started; one signed with another secret
//! keeps `no_secret`; a configured secret always wins; other requests cost no look-up.

use crate::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use twk_capture::Exchange;
use twk_providers::{Provider, RequestView, Secret, SecretSource, Secrets, Verdict};

const TEST: &str = "twk-test-secret-for-github";
const OTHER: &str = "the-real-github-webhook-secret";
const BODY: &str = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;

/// The `X-Hub-Signature-256` GitHub would send for [`BODY`] with `secret`.
fn github_signature(secret: &str) -> String {
    let req = RequestView::new("POST", "http://x/", BODY.as_bytes());
    let signed = twk_providers::sign_with_secret(
        Provider::Github,
        &req,
        &Secret::new(secret),
        &Default::default(),
    )
    .unwrap();
    signed.headers[0].1.clone()
}

/// The test secret the agent sees, and how often it was asked.
#[derive(Default)]
struct Lookup {
    secret: Mutex<Option<Secret>>,
    asked: AtomicUsize,
}

fn agent_with(
    relay: &RelayHandle,
    target: &FakeTarget,
    secrets: Secrets,
    l: &Arc<Lookup>,
) -> AgentHandle {
    let mut cfg = agent_config(relay, target.addr);
    cfg.secrets = Arc::new(secrets);
    let l = l.clone();
    cfg.test_secrets = Some(Arc::new(move |p| {
        l.asked.fetch_add(1, Ordering::SeqCst);
        (p == Provider::Github)
            .then(|| l.secret.lock().unwrap().clone())
            .flatten()
    }));
    spawn_agent(cfg)
}

async fn deliver(
    relay: &RelayHandle,
    agent: &mut AgentHandle,
    name: &str,
    sig: Option<&str>,
) -> Exchange {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-github-event", "ping"),
    ];
    if let Some(s) = sig {
        headers.push(("x-hub-signature-256", s));
    }
    let path = format!("/t/{name}/hook");
    let reply = send(relay.addr, "POST", &path, &headers, BODY)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    agent.exchange().await
}

#[tokio::test]
async fn a_webhook_signed_with_the_test_secret_is_valid_and_says_so() {
    let (relay, target) = open_relay_and_echo().await;
    let lookup = Arc::new(Lookup::default());
    let mut agent = agent_with(&relay, &target, Secrets::new(), &lookup);
    let (name, _) = agent.connected().await;
    let signed_test = github_signature(TEST);

    // No test secret yet: as without the feature.
    let ex = deliver(&relay, &mut agent, &name, Some(&signed_test)).await;
    assert_eq!(
        (ex.verdict, ex.matched_secret),
        (Some(Verdict::NoSecret), None)
    );

    // `trigger` made it while the tunnel runs: the next delivery is checked with it.
    *lookup.secret.lock().unwrap() = Some(Secret::new(TEST));
    let ex = deliver(&relay, &mut agent, &name, Some(&signed_test)).await;
    assert_eq!(ex.verdict, Some(Verdict::Valid));
    assert_eq!(ex.matched_secret, Some(SecretSource::TwkTest));
    assert_eq!(
        ex.analysis.as_ref().unwrap().value()["matched_secret"],
        "twk-test"
    );

    // The real GitHub signs with its own secret: not invalid, just no secret.
    let ex = deliver(&relay, &mut agent, &name, Some(&github_signature(OTHER))).await;
    assert_eq!(
        (ex.verdict, ex.matched_secret),
        (Some(Verdict::NoSecret), None)
    );

    // A request of no provider is not looked up at all.
    let asked = lookup.asked.load(Ordering::SeqCst);
    let reply = send(relay.addr, "POST", &format!("/t/{name}/x"), &[], "hello")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let ex = agent.exchange().await;
    assert_eq!(ex.verdict, None);
    assert_eq!(lookup.asked.load(Ordering::SeqCst), asked);
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_configured_secret_wins_over_the_test_secret() {
    let (relay, target) = open_relay_and_echo().await;
    let lookup = Arc::new(Lookup::default());
    *lookup.secret.lock().unwrap() = Some(Secret::new(TEST));
    let configured = Secrets::new().with(Provider::Github, Secret::new(OTHER));
    let mut agent = agent_with(&relay, &target, configured, &lookup);
    let (name, _) = agent.connected().await;

    let ex = deliver(&relay, &mut agent, &name, Some(&github_signature(TEST))).await;
    assert_eq!(
        (ex.verdict, ex.matched_secret),
        (Some(Verdict::Invalid), None)
    );
    let ex = deliver(&relay, &mut agent, &name, Some(&github_signature(OTHER))).await;
    assert_eq!(ex.verdict, Some(Verdict::Valid));
    assert_eq!(ex.matched_secret, Some(SecretSource::Configured));
    assert_eq!(
        lookup.asked.load(Ordering::SeqCst),
        0,
        "configured: never looked up"
    );
    agent.stop().await.unwrap();
}
