//! docs/inspector.md shows the inspector's screens: each block marked
//! `<!-- snapshot: NAME -->` must be the `view` snapshot `NAME`, so the docs never drift from
//! what the code draws. `TWK_UPDATE_DOCS=1` rewrites the blocks from the snapshots.
#![allow(clippy::unwrap_used)]

use std::path::Path;

const MARK: &str = "<!-- snapshot: ";

fn snapshot(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("view__{name}.snap"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // insta's header ends at the second `---` line.
    text.splitn(3, "---\n").nth(2).unwrap().to_owned()
}

/// The document with every marked block replaced by its snapshot, and the names of the
/// blocks that differed.
fn regenerate(doc: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut stale = Vec::new();
    let mut rest = doc;
    while let Some(at) = rest.find(MARK) {
        let (before, from_mark) = rest.split_at(at);
        out.push_str(before);
        let name_end = from_mark.find(" -->").unwrap();
        let name = &from_mark[MARK.len()..name_end];
        let open = from_mark.find("```text\n").unwrap() + "```text\n".len();
        let close = open + from_mark[open..].find("```").unwrap();
        let want = snapshot(name);
        if from_mark[open..close] != want {
            stale.push(name.to_owned());
        }
        out.push_str(&from_mark[..open]);
        out.push_str(&want);
        rest = &from_mark[close..];
    }
    out.push_str(rest);
    (out, stale)
}

/// The key table, from the one key map the help overlay draws.
fn keymap_table() -> String {
    let mut out = String::from("| Keys | What they do |\n|---|---|\n");
    for (keys, what) in twk_inspector::keymap::KEYS {
        out.push_str(&format!("| `{keys}` | {what} |\n"));
    }
    out
}

/// `doc` with the region between the keymap markers holding [`keymap_table`].
fn with_keymap(doc: &str) -> String {
    const OPEN: &str = "<!-- keymap -->\n";
    const CLOSE: &str = "<!-- /keymap -->";
    let (Some(a), Some(b)) = (doc.find(OPEN), doc.find(CLOSE)) else {
        panic!("docs/inspector.md lost its keymap markers");
    };
    format!("{}{OPEN}{}{}", &doc[..a], keymap_table(), &doc[b..])
}

#[test]
fn docs_screens_are_the_snapshots() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/inspector.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    assert!(
        doc.matches(MARK).count() >= 20,
        "the screens lost their markers"
    );
    let (fresh, mut stale) = regenerate(&doc);
    let fresh = with_keymap(&fresh);
    if fresh != doc && stale.is_empty() {
        stale.push("the key table".to_owned());
    }
    if std::env::var_os("TWK_UPDATE_DOCS").is_some() {
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    assert!(
        stale.is_empty(),
        "docs/inspector.md screens differ from their snapshots: {stale:?}; run \
         TWK_UPDATE_DOCS=1 cargo test -p twk-inspector --test docs"
    );
}
