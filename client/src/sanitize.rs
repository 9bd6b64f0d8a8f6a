//! The one sanitizer for untrusted text on its way to a terminal, a log line or the clipboard.
//! It lives in `twk-inspector` (its views use it too); this module re-exports it so the plain
//! output lines, the inspector and the clipboard share exactly one implementation.

#[allow(unused_imports)]
pub use twk_inspector::sanitize::*;
