//! The hot-code layout of the release binaries (`relay-server/link/hot_layout.rs`): both
//! generated linker scripts link and run with GNU ld and with Rust's lld, which debug builds
//! (all the rest of the suite) never use; and the linkers that take no such script are
//! recognised, so a build configured for one goes without rather than failing.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod layout {
    #![allow(dead_code)]
    include!("../link/hot_layout.rs");
    pub(super) fn check(rustflags: &str, linker: &str) -> Option<String> {
        unsupported_linker(rustflags, linker)
    }
}

fn scripts() -> [PathBuf; 2] {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [root.join("link/hot.ld"), root.join("../client/link/hot.ld")]
}

/// Where rustc keeps its own lld for `cc -fuse-ld=lld`.
fn rust_lld_dir() -> PathBuf {
    let out = |args: &[&str]| {
        let o = Command::new("rustc").args(args).output().unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    let sysroot = out(&["--print", "sysroot"]);
    let host = out(&["-vV"])
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap();
    Path::new(sysroot.trim()).join(format!("lib/rustlib/{host}/bin/gcc-ld"))
}

#[test]
fn both_scripts_link_and_run_with_gnu_ld_and_with_lld() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("main.c");
    std::fs::write(&src, "int main(void) { return 7; }\n").unwrap();
    let lld = rust_lld_dir();
    assert!(
        lld.join("ld.lld").exists(),
        "no rust-lld in {}",
        lld.display()
    );
    let linkers: [(&str, Vec<String>); 2] = [
        ("GNU ld", vec!["-fuse-ld=bfd".into()]),
        (
            "lld",
            vec![format!("-B{}", lld.display()), "-fuse-ld=lld".into()],
        ),
    ];
    for script in scripts() {
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.contains("INSERT AFTER .text"), "{}", script.display());
        for (name, flags) in &linkers {
            let exe = dir.path().join("a.out");
            let out = Command::new("cc")
                .args(flags)
                .arg(&src)
                .arg("-o")
                .arg(&exe)
                .args(["-Xlinker", "-T", "-Xlinker"])
                .arg(&script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name} rejects {}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let ran = Command::new(&exe).status().unwrap();
            assert_eq!(ran.code(), Some(7), "{name}, {}", script.display());
        }
    }
}

#[test]
fn linkers_that_take_no_such_script_are_recognised() {
    let flags = |f: &[&str]| f.join("\x1f");
    assert_eq!(
        layout::check(&flags(&["-C", "link-arg=-fuse-ld=mold"]), ""),
        Some("mold".into())
    );
    assert_eq!(
        layout::check(&flags(&["-Clink-arg=-fuse-ld=/usr/local/bin/ld.gold"]), ""),
        Some("ld.gold".into())
    );
    assert_eq!(layout::check("", "/opt/wild/bin/wild"), Some("wild".into()));
    assert_eq!(layout::check(&flags(&["-C", "linker=clang"]), ""), None);
    assert_eq!(
        layout::check(&flags(&["-C", "link-arg=-fuse-ld=lld"]), "cc"),
        None
    );
    assert_eq!(layout::check("", ""), None);
}
