//! Lays out together the functions an idle tunnel client runs (see
//! `../relay-server/link/hot_layout.rs`).

include!("../relay-server/link/hot_layout.rs");

fn main() {
    hot_layout();
}
