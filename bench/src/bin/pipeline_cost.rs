//! Native cost of the filter's per-request pipeline for a 1 KiB delivery:
//! the very stream the .wasm runs (header checks, HMAC, replay, JSON, match,
//! inputs, annotations, audit), over the in-memory host, stage by stage, and
//! the heap allocations one delivery makes. The .wasm's bench build runs the
//! same function inside V8 (`bench_probe`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use combo_webhook_filter::bench::pipeline as bench_probe;
use combo_webhook_filter::bench::Stage;

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let epoch = Instant::now();
    let mut clock = || epoch.elapsed().as_nanos() as u64;
    let Some((full, forwarded)) = bench_probe::pipeline_ns(Stage::Full, 2_000, 5, &mut clock) else {
        eprintln!("pipeline_cost: the bench configuration does not compile");
        std::process::exit(1);
    };
    let stages = bench_probe::stages_json(2_000, 5, &mut clock);
    // Allocations per delivery: a run of n deliveries minus a run of none
    // (building the hosts and the plan allocates too).
    let counted = |n| {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        bench_probe::pipeline_ns(Stage::Full, n, 1, &mut || 0);
        ALLOCATIONS.load(Ordering::Relaxed) - before
    };
    let (none, some) = (counted(0), counted(1_000));
    let hosts = {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        drop(bench_probe::deliveries(1_000, &Default::default()));
        ALLOCATIONS.load(Ordering::Relaxed) - before
    };
    let per_delivery = (some.saturating_sub(none).saturating_sub(hosts)) as f64 / 1_000.0;
    println!(
        "{{\"forwarded\":{forwarded},\"total_us\":{:.2},\"allocations_per_delivery\":{per_delivery:.1},\"stages_ns\":{stages}}}",
        full as f64 / 1000.0
    );
}
