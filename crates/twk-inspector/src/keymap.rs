//! The key map: one table, used by the help overlay and `docs/inspector.md`.

/// (keys, what they do), in help order.
pub const KEYS: &[(&str, &str)] = &[
    ("j k ↓ ↑", "move in the list (in the detail pane: scroll)"),
    ("PgDn PgUp", "one page down / up"),
    (
        "g G Home End",
        "newest (and follow) / oldest; in the detail pane: top / bottom",
    ),
    ("Enter", "switch between the list and the detail pane"),
    (
        "Tab S-Tab",
        "list → detail; in the detail pane: next / previous tab",
    ),
    ("← → h l", "previous / next tab (detail pane)"),
    ("1 … 5", "Request, Response, Signature, Auth, Timing tab"),
    ("n N", "next / previous exchange from the detail pane"),
    ("Esc", "back to the list; close the filter prompt"),
    ("r", "replay the selected request as is"),
    (
        "R",
        "replay with a fresh signature (re-signed with your secret)",
    ),
    ("e", "edit the request in $EDITOR, then replay it"),
    ("/", "filter: text, provider:, event:, status:, verdict:"),
    ("c", "copy as curl (OSC 52 clipboard; secrets redacted)"),
    ("y", "copy the request body (OSC 52 clipboard)"),
    ("s", "show / hide secret header values"),
    ("p", "pause / resume following the newest exchange"),
    ("?", "this help"),
    ("q Ctrl-C", "quit (stops the tunnel)"),
    ("mouse", "click selects a row or a tab; the wheel scrolls"),
];

/// The list marks, for the help overlay.
pub const MARKS: &[(&str, &str)] = &[
    ("✓", "signature valid"),
    ("✗", "signature invalid (magenta: malformed)"),
    ("!", "stale: valid signature, timestamp too old"),
    ("–", "unsigned"),
    ("?", "no secret configured for the provider"),
    ("×N", "delivery attempt N of the same webhook"),
    ("↻N", "replay of exchange #N"),
];
