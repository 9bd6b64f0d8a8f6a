//! The SDK oracle's Python venv (tests/oracle/setup.sh), shared by the tests that run the
//! providers' official SDKs: found, or made once, or the test fails saying how to make it
//! (unless `TWK_SKIP_SDK_ORACLE=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's python, or `None` (after saying why) when the test is to be skipped.
pub fn oracle_python() -> Option<PathBuf> {
    // Tests of one binary run in parallel: one of them makes the venv, the others wait.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = std::env::var_os("TWK_ORACLE_VENV")
        .map_or_else(|| workspace().join("target/oracle-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    if python.exists() || make_venv(&venv) {
        return Some(python);
    }
    assert!(
        std::env::var("TWK_SKIP_SDK_ORACLE").as_deref() == Ok("1"),
        "the SDK oracle venv {} does not exist: create it with `bash tests/oracle/setup.sh` \
         (needs python3-venv and PyPI), or set TWK_SKIP_SDK_ORACLE=1 to skip this test",
        venv.display()
    );
    eprintln!("skipping: no SDK oracle venv and TWK_SKIP_SDK_ORACLE=1");
    None
}

/// Runs `tests/oracle/setup.sh` for `venv`; true when it made it.
fn make_venv(venv: &Path) -> bool {
    if std::env::var("TWK_SKIP_SDK_ORACLE").as_deref() == Ok("1") {
        return false;
    }
    eprintln!("creating the SDK oracle venv {} (once)", venv.display());
    Command::new("bash")
        .arg(workspace().join("tests/oracle/setup.sh"))
        .env("TWK_ORACLE_VENV", venv)
        .status()
        .is_ok_and(|s| s.success())
        && venv.join("bin/python").exists()
}
