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
        "space",
        "expand / collapse a handshake row (🔒▸) to show both legs",
    ),
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
    (
        "e",
        "edit the request in $EDITOR, then replay it (R re-signs a stale signature)",
    ),
    (
        "/",
        "filter: text, provider:, event:, status:, verdict:, lint:, tunnel:, refused:",
    ),
    (
        "c",
        "copy as curl: the exact request, secret headers included (OSC 52)",
    ),
    (
        "t",
        "trigger a provider's webhook into this tunnel (a picker)",
    ),
    ("u", "copy the tunnel's public URL (OSC 52 clipboard)"),
    ("y", "copy the request body (OSC 52 clipboard)"),
    ("s", "show / hide secret header values"),
    (
        "a",
        "this tunnel's history / every tunnel's (filter: tunnel:NAME, tunnel:all)",
    ),
    (
        "D",
        "deliver every missed request (arrived while offline) to the app, in order, until it takes it (2xx)",
    ),
    ("p", "pause / resume following the newest exchange"),
    ("?", "this help"),
    ("q Ctrl-C", "quit (stops the tunnel)"),
    ("mouse", "click selects a row or a tab; the wheel scrolls"),
];

/// The list marks, for the help overlay (grouped so that keys and marks fit a 32-line screen).
pub const MARKS: &[(&str, &str)] = &[
    (
        "✓ ✗ ! – ?",
        "signature ok, invalid/malformed, stale, unsigned, no secret",
    ),
    (
        "×N ↻N",
        "delivery attempt N of the same webhook; replay of #N",
    ),
    (
        "⊘ missed",
        "arrived while twk-tunnel was offline: the sender got 503, the relay kept it",
    ),
    (
        "⊘ refused",
        "the relay refused it (over rate: 429, too large: 413); the app never saw it",
    ),
    (
        "🔒▸ 🔒▾",
        "Basic-auth handshake, both legs (space: expand / collapse)",
    ),
    (
        "🔒1",
        "leg 1 (the 401) alone, or the leg-1 line of an expanded row",
    ),
    (
        "⚠ label",
        "lint (red error, yellow warning, i info): see tab 4 Auth",
    ),
    (
        "⚠ bare 401",
        "401 without WWW-Authenticate: no retry, the callback is lost",
    ),
];
