//! Heap bytes per series once every window is full (window 100), at
//! 100,000 and 1,000,000 series of one source: everything the engine keeps
//! for them, counted by a global allocator that tallies live bytes.
//!
//! The exposition and its parsed samples are allocated before the count
//! starts and freed after it ends, so only the engine's own state is in
//! the figure: detectors and rings, the series table, label texts, the
//! index from exposition text to series, and the per-scrape buffers.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Fleet, exposition, params, parsed};
use driftwatch::engine::lock;

/// The system allocator, keeping count of live bytes and allocations as
/// requested (malloc's own headers and rounding come on top, and vary by
/// allocator).
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes straight to `System`; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The target: 1.1 KB per series at window 100.
const TARGET_BYTES: f64 = 1100.0;

fn main() {
    // `cargo bench` passes `--bench`; a name filter, if any, picks a size.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!(
        "heap per series, every window full (window {})",
        params().window
    );
    println!(
        "{:>10} {:>14} {:>12} {:>14} {:>10}",
        "series", "bytes", "bytes/series", "blocks/series", "target"
    );
    for series in [100_000, 1_000_000] {
        if filter
            .as_ref()
            .is_some_and(|f| !series.to_string().contains(f.as_str()))
        {
            continue;
        }
        let (bytes, blocks) = measure(series);
        let per_series = bytes as f64 / series as f64;
        let verdict = if per_series <= TARGET_BYTES {
            "met"
        } else {
            "missed"
        };
        println!(
            "{series:>10} {bytes:>14} {per_series:>12.1} {:>14.2} {:>10}",
            blocks as f64 / series as f64,
            verdict
        );
    }
}

/// Live heap bytes and blocks the engine holds for `series` series.
fn measure(series: usize) -> (usize, usize) {
    let body = exposition(series);
    let mut samples = parsed(&body);
    let (bytes_before, blocks_before) = live();

    let mut fleet = Fleet::new();
    // One round admits the series; `window` more fill every window.
    fleet.run(&mut samples, params().window as u64 + 1);
    let (bytes_after, blocks_after) = live();

    let table = lock(&fleet.runtime.table);
    assert_eq!(table.len(), series);
    assert!(
        table
            .iter()
            .all(|e| e.detector.window_len() == params().window)
    );
    drop(table);
    drop(fleet);
    (bytes_after - bytes_before, blocks_after - blocks_before)
}

fn live() -> (usize, usize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_BLOCKS.load(Ordering::Relaxed),
    )
}
