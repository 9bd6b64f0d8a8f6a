//! What one memory copy costs by where its destination sits against its source modulo a
//! 4 KiB page: the measure behind the place `twk_transport::WsIo` gives a large websocket
//! message (docs/performance.md, twenty-fifth round).
//!
//! glibc's `memmove` copies large blocks with `rep movsb`. On the AMD EPYC machines twk was
//! measured on, that ran at 1–3 GB/s with the destination 1 to 31 bytes past the source,
//! and at 25–45 GB/s everywhere else. Under mimalloc (twk-tunnel's allocator) large blocks
//! start at page boundaries, so a copy between two of them, behind a websocket frame's
//! 14-byte head, lands in that window unless one of them is placed.
//!
//! For blocks of 8 KiB, 56 KiB and 256 KiB, each row copies a page-aligned source to a
//! destination `gap` bytes past it modulo a page, for ~0.2 s, and prints GB/s. The copy is
//! `copy_from_slice`, which calls the C library's `memcpy`.
//!
//! Run: `cargo bench -p twk-e2e --bench memmove`

use std::hint::black_box;
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
const GAPS: [isize; 9] = [0, 1, 14, 31, 32, 64, 2048, -1, -14];

/// The first index of `buf` at `offset` past a page boundary.
fn at_page_offset(buf: &[u8], offset: usize) -> usize {
    (PAGE - buf.as_ptr() as usize % PAGE) % PAGE + offset
}

/// GB/s of copying `size` bytes from a page boundary to `gap` bytes past one.
fn rate(size: usize, gap: isize) -> f64 {
    let src = vec![1u8; size + 2 * PAGE];
    let mut dst = vec![2u8; size + 3 * PAGE];
    let s = at_page_offset(&src, 0);
    let d = at_page_offset(&dst, (PAGE as isize + gap) as usize);
    let (mut copied, started) = (0usize, Instant::now());
    while started.elapsed() < Duration::from_millis(200) {
        for _ in 0..64 {
            dst[d..d + size].copy_from_slice(black_box(&src[s..s + size]));
            black_box(&mut dst);
        }
        copied += 64 * size;
    }
    copied as f64 / started.elapsed().as_secs_f64() / 1e9
}

fn main() {
    println!("{:>8} {}", "size", GAPS.map(|g| format!("{g:>7}")).join(""));
    for size in [8 * 1024, 56 * 1024, 256 * 1024] {
        let row: Vec<String> = GAPS
            .iter()
            .map(|&g| format!("{:>7.1}", rate(size, g)))
            .collect();
        println!("{:>7}K {}", size / 1024, row.join(""));
    }
    println!("(GB/s; columns: destination bytes past the source modulo {PAGE})");
}
