//! Native cost of the filter's per-request pipeline for a 1 KiB delivery:
//! the very stream the .wasm runs (header checks, HMAC, replay, JSON, match,
//! inputs, annotations, audit), over the in-memory host, stage by stage.
//! The .wasm's bench build runs the same function inside V8 (`bench_probe`).

use std::time::Instant;

use combo_webhook_filter::bench_probe;
use combo_webhook_filter::plan::inbound::Stage;

fn main() {
    let epoch = Instant::now();
    let mut clock = || epoch.elapsed().as_nanos() as u64;
    let (full, forwarded) = bench_probe::pipeline_ns(Stage::Full, 2_000, 5, &mut clock);
    let stages = bench_probe::stages_json(2_000, 5, &mut clock);
    println!("{{\"forwarded\":{forwarded},\"total_us\":{:.2},\"stages_ns\":{stages}}}", full as f64 / 1000.0);
}
