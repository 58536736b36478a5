//! Bench builds only (`--features bench-stages`, `COMBO_BENCH_PROBE=1` in the
//! VM's environment): on the first delivery, the cost of each host call kind
//! the filter makes, measured from inside V8 on that live stream, and the
//! pipeline's pure compute in V8 over the in-memory host, stage by stage.
//! Logged once as `bench_probe {json}` for `make bench`. The adapter hands
//! over the calls (it owns the ABI); this module only times and reports.

use std::cell::Cell;

thread_local! {
    /// Whether the probe still has to run: read from the environment once.
    static PENDING: Cell<Option<bool>> = const { Cell::new(None) };
    static HEADS: Cell<String> = const { Cell::new(String::new()) };
}

const CALLS: u64 = 200;
const ROUNDS: usize = 5;

/// Whether this stream runs the probe (`COMBO_BENCH_PROBE=1`; the first
/// delivery only).
pub fn enabled() -> bool {
    PENDING.with(|p| {
        let pending = p.get().unwrap_or_else(|| std::env::var("COMBO_BENCH_PROBE").is_ok_and(|v| v == "1"));
        p.set(Some(pending));
        pending
    })
}

/// Nanoseconds per call of `f`: the fastest of `ROUNDS` rounds of `CALLS`.
fn per_call(clock: &dyn Fn() -> u64, f: &mut dyn FnMut()) -> u64 {
    let mut best = u64::MAX;
    for _ in 0..ROUNDS {
        let started = clock();
        for _ in 0..CALLS {
            f();
        }
        best = best.min(clock().saturating_sub(started) / CALLS);
    }
    best
}

/// One kind of host call, by the name the cost model gives it, ready to run.
pub type Call<'a> = (&'static str, &'a mut dyn FnMut());

/// The request-header phase: each kind of call the adapter hands over
/// (it knows its ABI; the probe only times), on the stream being served.
pub fn time_header_calls(clock: &dyn Fn() -> u64, calls: &mut [Call<'_>]) {
    let mut rows: Vec<String> = calls.iter_mut().map(|(k, f)| format!("\"{k}\":{}", per_call(clock, *f))).collect();
    // Not a host call: one small allocation and its free inside the VM,
    // what an arena per request would save per allocation.
    let mut alloc = || ignore(Vec::<u8>::with_capacity(std::hint::black_box(64)));
    rows.push(format!("\"alloc_free_64_bytes\":{}", per_call(clock, &mut alloc)));
    HEADS.with(|h| h.set(rows.join(",")));
}

/// The body phase: the body read, then the pipeline's compute over the
/// in-memory host, stage by stage. The `bench_probe {json}` line to log.
pub fn time_body(clock: &dyn Fn() -> u64, read_body: &mut dyn FnMut(), size: usize) -> String {
    PENDING.with(|p| p.set(Some(false)));
    let body = per_call(clock, read_body);
    let mut clock = || clock();
    let stages = super::pipeline::stages_json(500, ROUNDS, &mut clock);
    let heads = HEADS.with(Cell::take);
    format!("bench_probe {{\"hostcall_ns\":{{{heads},\"get_buffer_bytes\":{body}}},\"body_bytes\":{size},\"pipeline_ns\":{stages}}}")
}

/// Keeps a call's result from being optimised away with the call.
pub fn ignore<T>(value: T) {
    std::hint::black_box(value);
}
