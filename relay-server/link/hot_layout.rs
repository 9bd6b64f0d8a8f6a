// Shared by the build scripts of `twk-relay-server` and `twk-tunnel` (`include!`d): has the
// linker lay out together the functions the binary runs until it idles (`link/hot.ld`, made
// by relay-server/link/profile.sh), so that the code an idle process keeps resident is mostly
// code it runs. The kernel maps a fault's whole neighbourhood of a binary, not the page alone
// (docs/performance.md, thirteenth round). Release builds for Linux only; a function the list
// names that no longer exists is ignored. `TWK_NO_HOT_LAYOUT=1` leaves the layout to the linker.

fn hot_layout() {
    println!("cargo:rerun-if-changed=link/hot.ld");
    println!("cargo:rerun-if-env-changed=TWK_NO_HOT_LAYOUT");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let script = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot.ld");
    let wanted = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("PROFILE") == "release"
        && std::env::var_os("TWK_NO_HOT_LAYOUT").is_none()
        && script.is_file();
    if wanted {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
