//! A `twk-tunnel` command that lives in a test's own home: no `TWK_*` setting of the
//! environment that runs the tests leaks in, and its data, config and runtime directories
//! are under `home`.

use std::path::Path;
use std::process::{Command, Stdio};

/// Every `TWK_*` variable a `twk-tunnel` reads.
const TWK_VARS: [&str; 9] = [
    "TWK_DATA_DIR",
    "TWK_CONFIG",
    "TWK_RELAY",
    "TWK_TOKEN",
    "TWK_NAME",
    "TWK_SECRET",
    "TWK_BASIC_AUTH",
    "TWK_RUNTIME_DIR",
    "TWK_EMULATOR_AUTH_TOKEN",
];

/// `bin` with `home/{data,config,run}` as its XDG directories and `home` as `HOME`.
pub fn command(bin: &str, home: &Path) -> Command {
    let mut c = Command::new(bin);
    for k in TWK_VARS {
        c.env_remove(k);
    }
    for (k, d) in [
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_RUNTIME_DIR", "run"),
        ("HOME", ""),
    ] {
        c.env(k, home.join(d));
    }
    c.stdin(Stdio::null());
    c
}
