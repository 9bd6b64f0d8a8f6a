//! Lays out together the functions an idle relay runs (see `link/hot_layout.rs`).

include!("link/hot_layout.rs");

fn main() {
    hot_layout();
}
