//! docs/trigger.md lists every event `trigger` can send: the region between
//! `<!-- events -->` and `<!-- /events -->` must be the catalog, so the docs never drift.
//! `TWK_UPDATE_DOCS=1` rewrites it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use twk_providers::Provider;

const OPEN: &str = "<!-- events -->\n";
const CLOSE: &str = "<!-- /events -->";

fn events_section() -> String {
    let mut out = String::new();
    for p in Provider::ALL {
        out.push_str(&format!(
            "\n### `{}` ({})\n\n| event | what it is |\n|---|---|\n",
            p.as_str(),
            p.display_name()
        ));
        for spec in twk_trigger::events(p) {
            let params = if spec.params.is_empty() {
                String::new()
            } else {
                format!(" · `--set {}`", spec.params.replace('|', "\\|"))
            };
            out.push_str(&format!("| `{}` | {}{params} |\n", spec.name, spec.about));
        }
    }
    out.push('\n');
    out
}

#[test]
fn docs_list_every_event_of_the_catalog() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/trigger.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (Some(a), Some(b)) = (doc.find(OPEN), doc.find(CLOSE)) else {
        panic!("docs/trigger.md lost its events markers");
    };
    let want = format!("{}{OPEN}{}{}", &doc[..a], events_section(), &doc[b..]);
    if std::env::var("TWK_UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    assert!(
        doc == want,
        "docs/trigger.md's event list differs from the catalog; run TWK_UPDATE_DOCS=1 cargo \
         test -p twk-trigger --test docs"
    );
}
