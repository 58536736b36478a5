//! Bench builds only (`--features bench-stages`, `COMBO_BENCH_PROBE=1` in the
//! VM's environment): on the first delivery, the cost of each host call kind
//! the filter makes, measured from inside V8 on that live stream, and the
//! pipeline's pure compute in V8 over the in-memory host, stage by stage.
//! Logged once as `bench_probe {json}` for `make bench`.

use std::cell::Cell;

use crate::adapter::abi;

thread_local! {
    /// Whether the probe still has to run: read from the environment once.
    static PENDING: Cell<Option<bool>> = const { Cell::new(None) };
    static HEADS: Cell<String> = const { Cell::new(String::new()) };
}

const CALLS: u64 = 200;
const ROUNDS: usize = 5;

fn enabled() -> bool {
    PENDING.with(|p| {
        let pending = p.get().unwrap_or_else(|| std::env::var("COMBO_BENCH_PROBE").is_ok_and(|v| v == "1"));
        p.set(Some(pending));
        pending
    })
}

fn clock() -> u64 {
    abi::now_nanos().unwrap_or(0)
}

/// Nanoseconds per call of `f`: the fastest of `ROUNDS` rounds of `CALLS`.
fn per_call(mut f: impl FnMut()) -> u64 {
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

/// The request-header phase's calls, on the stream being served.
pub fn on_request_headers() {
    if !enabled() {
        return;
    }
    let audit = vec![b'x'; 480];
    let value = vec![b'v'; 64];
    let counter = abi::define_metric(abi::COUNTER, "combo_webhook_probe_total").unwrap_or(0);
    let histogram = abi::define_metric(abi::HISTOGRAM, "combo_webhook_probe_us").unwrap_or(0);
    let _ = abi::set_shared_data("combo_probe", &value, None);
    // A replay bucket after a long window at a high rate: 146 entries of 25 bytes.
    let _ = abi::set_shared_data("combo_probe_full_bucket", &[7u8; 146 * 25], None);
    let rows = [
        ("get_current_time", per_call(|| ignore(abi::now_nanos()))),
        ("get_header_map_pairs", per_call(|| ignore(abi::header_pairs(abi::REQUEST_HEADERS)))),
        ("get_header_map_value", per_call(|| ignore(abi::header_value(abi::REQUEST_HEADERS, ":path")))),
        ("replace_header_map_value", per_call(|| ignore(abi::set_header(abi::REQUEST_HEADERS, "x-probe", "1")))),
        ("remove_header_map_value", per_call(|| ignore(abi::remove_header(abi::REQUEST_HEADERS, "x-probe")))),
        ("get_property", per_call(|| ignore(abi::property(&["source", "address"])))),
        ("set_property", per_call(|| ignore(abi::set_property(&["wasm.combo_probe"], &audit)))),
        ("get_shared_data", per_call(|| ignore(abi::shared_data("combo_probe")))),
        ("set_shared_data", per_call(|| ignore(abi::set_shared_data("combo_probe", &value, None)))),
        ("increment_metric", per_call(|| ignore(abi::increment_metric(counter, 1)))),
        ("record_metric", per_call(|| ignore(abi::record_metric(histogram, 5)))),
        ("get_log_level", per_call(|| ignore(abi::log_level()))),
        ("get_shared_data_3650_bytes", per_call(|| ignore(abi::shared_data("combo_probe_full_bucket")))),
        // Not a host call: one small allocation and its free inside the VM,
        // what an arena per request would save per allocation.
        ("alloc_free_64_bytes", per_call(|| ignore(Vec::<u8>::with_capacity(std::hint::black_box(64))))),
    ];
    let fields: Vec<String> = rows.iter().map(|(k, ns)| format!("\"{k}\":{ns}")).collect();
    HEADS.with(|h| h.set(fields.join(",")));
}

/// The body phase's call, then the compute probe, then the log line.
pub fn on_request_body(size: usize) {
    if !enabled() {
        return;
    }
    PENDING.with(|p| p.set(Some(false)));
    let body = per_call(|| ignore(abi::buffer(abi::REQUEST_BODY, 0, size)));
    let mut clock = clock;
    let stages = crate::bench::pipeline::stages_json(500, ROUNDS, &mut clock);
    let heads = HEADS.with(Cell::take);
    abi::log(
        crate::host::Level::Warn,
        &format!("bench_probe {{\"hostcall_ns\":{{{heads},\"get_buffer_bytes\":{body}}},\"body_bytes\":{size},\"pipeline_ns\":{stages}}}"),
    );
}

/// Keeps a call's result from being optimised away with the call.
fn ignore<T>(value: T) {
    std::hint::black_box(value);
}
