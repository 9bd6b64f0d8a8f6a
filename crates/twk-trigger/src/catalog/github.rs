//! GitHub: repository webhooks with `X-GitHub-Event`, `X-GitHub-Delivery` (a GUID) and
//! `X-Hub-Signature-256`, compact JSON.

use super::{Build, EventSpec};
use crate::TriggerError;
use crate::draft::{Body, Draft};
use crate::ids::{guid, rfc3339};
use serde_json::{Value, json};
use twk_providers::Provider;

pub(super) fn events() -> Vec<EventSpec> {
    let p = Provider::Github;
    [
        ("ping", "Sent when a webhook is created"),
        ("push", "Commits were pushed to a branch"),
        ("pull_request.opened", "A pull request was opened"),
        ("pull_request.closed", "A pull request was closed (merged)"),
        ("issues.opened", "An issue was opened"),
        (
            "issue_comment.created",
            "A comment on an issue or pull request",
        ),
        ("release.published", "A release was published"),
        (
            "workflow_run.completed",
            "An Actions workflow run completed",
        ),
        ("star.created", "Someone starred the repository"),
    ]
    .into_iter()
    .map(|(name, about)| EventSpec::new(p, name, about, event))
    .collect()
}

fn repository() -> Value {
    json!({
        "id": 1_296_269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": "hello-world",
        "full_name": "octocat/hello-world",
        "private": false,
        "owner": {"login": "octocat", "id": 1, "type": "User"},
        "html_url": "https://github.com/octocat/hello-world",
        "default_branch": "main",
    })
}

fn sender() -> Value {
    json!({"login": "octocat", "id": 1, "type": "User"})
}

fn event(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let (kind, action) = match b.event.split_once('.') {
        Some((k, a)) => (k, Some(a)),
        None => (b.event, None),
    };
    let mut body = match kind {
        "ping" => json!({
            "zen": "Design for failure.",
            "hook_id": 123_456_789,
            "hook": {"type": "Repository", "id": 123_456_789, "active": true,
                     "events": ["*"], "config": {"content_type": "json", "insecure_ssl": "0"}},
        }),
        "push" => json!({
            "ref": "refs/heads/main",
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "0000000000000000000000000000000000000001",
            "commits": [{"id": "0000000000000000000000000000000000000001",
                         "message": "Fix the tunnel", "timestamp": rfc3339(b.now),
                         "author": {"name": "Mona", "email": "mona@example.com"}}],
            "pusher": {"name": "octocat", "email": "octocat@example.com"},
        }),
        "pull_request" => json!({
            "number": 42,
            "pull_request": {"number": 42, "state": if action == Some("closed") { "closed" } else { "open" },
                             "title": "Make webhooks testable", "merged": action == Some("closed"),
                             "head": {"ref": "feature"}, "base": {"ref": "main"},
                             "created_at": rfc3339(b.now)},
        }),
        "issues" => json!({
            "issue": {"number": 7, "title": "Events stop arriving after sleep", "state": "open",
                      "created_at": rfc3339(b.now)},
        }),
        "issue_comment" => json!({
            "issue": {"number": 7, "title": "Events stop arriving after sleep", "state": "open"},
            "comment": {"id": 1, "body": "Reproduced with twk", "created_at": rfc3339(b.now)},
        }),
        "release" => json!({
            "release": {"id": 1, "tag_name": "v0.2.0", "name": "v0.2.0", "draft": false,
                        "prerelease": false, "published_at": rfc3339(b.now)},
        }),
        "workflow_run" => json!({
            "workflow_run": {"id": 30_433_642, "name": "CI", "status": "completed",
                             "conclusion": "success", "head_branch": "main",
                             "updated_at": rfc3339(b.now)},
        }),
        _ => json!({"starred_at": rfc3339(b.now)}),
    };
    if let (Some(a), Value::Object(m)) = (action, &mut body) {
        let mut with_action = serde_json::Map::new();
        with_action.insert("action".to_owned(), json!(a));
        with_action.extend(std::mem::take(m));
        *m = with_action;
    }
    body["repository"] = repository();
    body["sender"] = sender();
    let delivery = guid();
    Ok(Draft::post(
        Provider::Github,
        b.event,
        delivery.clone(),
        Body::Json(body),
    )
    .header("User-Agent", "GitHub-Hookshot/6ff9d4e")
    .header("X-GitHub-Delivery", delivery)
    .header("X-GitHub-Event", kind)
    .header("X-GitHub-Hook-ID", "123456789")
    .header("X-GitHub-Hook-Installation-Target-ID", "1296269")
    .header("X-GitHub-Hook-Installation-Target-Type", "repository"))
}
