// Shared by the build scripts of `twk-relay-server` and `twk-tunnel` (`include!`d): has the
// linker lay out together the functions the binary runs until it idles (`link/hot.ld`, made
// by relay-server/link/profile.sh), so that the code an idle process keeps resident is mostly
// code it runs. The kernel maps a fault's whole neighbourhood of a binary, not the page alone
// (docs/performance.md, thirteenth round).
//
// Release builds for Linux only, linked by lld (Rust's default there since 1.90) or GNU ld,
// which both take a script of `SECTIONS … INSERT AFTER .text`; mold, gold and wild do not,
// so a build configured for one of them (`-fuse-ld=…`, or a linker of that name) goes
// without, with a warning. A function the list names that no longer exists is ignored.
// `TWK_NO_HOT_LAYOUT=1` leaves the layout to the linker (for a linker this cannot see, such
// as one behind `/usr/bin/ld`).

fn hot_layout() {
    println!("cargo:rerun-if-changed=link/hot.ld");
    println!("cargo:rerun-if-env-changed=TWK_NO_HOT_LAYOUT");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let script = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot.ld");
    let wanted = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("PROFILE") == "release"
        && var("TWK_NO_HOT_LAYOUT") != "1"
        && script.is_file();
    if !wanted {
        return;
    }
    if let Some(linker) = unsupported_linker(&var("CARGO_ENCODED_RUSTFLAGS"), &var("RUSTC_LINKER"))
    {
        println!(
            "cargo:warning=linking with {linker}, which takes no linker script: the hot-code layout is left out"
        );
        return;
    }
    // `-Xlinker` rather than `-Wl,`: a comma in the path would split it.
    for arg in ["-Xlinker", "-T", "-Xlinker"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins={}", script.display());
}

/// The linker the build names, when it is one that rejects `SECTIONS … INSERT` scripts.
fn unsupported_linker(encoded_rustflags: &str, rustc_linker: &str) -> Option<String> {
    let named = encoded_rustflags
        .split('\x1f')
        .filter_map(|flag| {
            ["-fuse-ld=", "linker="]
                .iter()
                .find_map(|key| flag.split(key).nth(1))
        })
        .chain(
            std::path::Path::new(rustc_linker)
                .file_name()
                .and_then(|n| n.to_str()),
        );
    named
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_owned())
        .find(|l| ["mold", "gold", "wild"].iter().any(|bad| l.contains(bad)))
}
