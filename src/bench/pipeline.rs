//! The per-request pipeline over the in-memory host, timed
//! by a clock the caller gives. Natively (`examples/pipeline_cost.rs`) it is
//! the work's own cost; inside the .wasm (a bench build's `bench_probe` log
//! line) it is the same work in Envoy's V8, without a single host call. The
//! shipped builds never call it, so it is compiled away.

use std::sync::Arc;

use super::{Stage, StagedInbound};
use crate::host::testing::{FaultyStore, MemoryHost};
use crate::plan::inbound::InboundPlan;
use crate::plan::{self, Compiled};
use crate::rules::replay;
use crate::rules::scheme::{sign_generic, Key};
use crate::stream::Stream;

/// The bench trigger of `make bench` (tools/benchlib.py `bench_trigger`).
pub const CONFIG: &str = r#"{"triggers":[{"id":"trg_bench","secrets":[{"id":"k1","value":"bench-secret"}],
    "match":{"jsonpath":"$.action","equals":"go"},
    "action":{"agent_id":"agent","inputs":{"ticket_id":"{{ payload.ticket.id }}","priority":"{{ payload.ticket.priority }}"}}}]}"#;

const NOW: i64 = 1_800_000_000;

/// `n` distinct signed 1 KiB deliveries (a copy would be answered early by
/// the replay cache), each on its own host sharing one store.
pub fn deliveries(n: usize, store: &FaultyStore) -> Vec<MemoryHost> {
    (0..n)
        .map(|i| {
            let mut body =
                format!(r#"{{"action":"go","id":"d{i}","ticket":{{"id":1,"priority":"high"}},"pad":""#).into_bytes();
            body.extend(std::iter::repeat_n(b'x', 1024usize.saturating_sub(body.len() + 2)));
            body.extend_from_slice(b"\"}");
            let sig = sign_generic(&Key::hmac_sha256("k", b"bench-secret"), NOW, &body).unwrap_or_default();
            let ts = NOW.to_string();
            let len = body.len().to_string();
            let mut h = MemoryHost::new(
                &[
                    (":method", "POST"),
                    (":path", "/v1/webhook/generic/trg_bench"),
                    (":authority", "127.0.0.1"),
                    ("user-agent", "loadgen"),
                    ("content-type", "application/json"),
                    ("content-length", len.as_str()),
                    ("x-combo-timestamp", ts.as_str()),
                    ("x-combo-signature", sig.as_str()),
                ],
                &body,
                NOW,
            );
            h.store = store.clone();
            h.response_status = Some(200);
            h
        })
        .collect()
}

/// One delivery through the inbound stream, answered 200 by the backend;
/// whether it was forwarded.
fn deliver(plan: &Arc<InboundPlan>, stage: Stage, host: MemoryHost) -> bool {
    let mut s = Stream::new(host, StagedInbound::at(Arc::clone(plan), stage));
    s.on_request_headers(false);
    s.on_request_body(1024, true);
    s.on_response_headers();
    s.on_done();
    s.host().reply.is_none()
}

/// The bench trigger's plan; `None` (a bench that reports nothing rather
/// than a made-up figure) if it does not compile.
fn bench_plan() -> Option<Arc<InboundPlan>> {
    let Ok(Compiled::Inbound(plan)) = plan::from_json(CONFIG, &|_| None, NOW) else { return None };
    Some(Arc::new(plan))
}

/// Nanoseconds per delivery of the pipeline stopping after `stage`: the
/// fastest of `rounds` rounds of `n` deliveries (noise only ever adds), and
/// how many of the last round were forwarded.
pub fn pipeline_ns(stage: Stage, n: usize, rounds: usize, clock: &mut dyn FnMut() -> u64) -> Option<(u64, usize)> {
    let plan = bench_plan()?;
    let (mut best, mut forwarded) = (u64::MAX, 0);
    for _ in 0..rounds {
        let store = FaultyStore::default();
        replay::create_buckets(&store);
        let hosts = deliveries(n, &store);
        let started = clock();
        forwarded = 0;
        for h in hosts {
            forwarded += usize::from(deliver(&plan, stage, h));
        }
        best = best.min(clock().saturating_sub(started) / n.max(1) as u64);
    }
    Some((best, forwarded))
}

/// Nanoseconds per delivery of the whole pipeline with the caches cold: a
/// 16 MiB buffer is rewritten before each delivery (as Envoy's own work and
/// the kernel's evict the filter's code and data between requests), and only
/// the deliveries themselves are timed. The median of `n`.
pub fn cold_pipeline_ns(n: usize, clock: &mut dyn FnMut() -> u64) -> Option<u64> {
    let plan = bench_plan()?;
    let store = FaultyStore::default();
    replay::create_buckets(&store);
    let mut evict = vec![0u8; 16 << 20];
    let mut times: Vec<u64> = deliveries(n, &store)
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            for line in evict.chunks_mut(64) {
                line[0] = line[0].wrapping_add(i as u8);
            }
            std::hint::black_box(&evict);
            let started = clock();
            deliver(&plan, Stage::Full, h);
            clock().saturating_sub(started)
        })
        .collect();
    times.sort_unstable();
    times.get(times.len() / 2).copied()
}

/// Every stage's cost, as JSON: `{"headers": ns, ..., "full": ns,
/// "full_cold": ns}`, `null` where nothing was measured.
pub fn stages_json(n: usize, rounds: usize, clock: &mut dyn FnMut() -> u64) -> String {
    let ns = |v: Option<u64>| v.map_or_else(|| "null".to_string(), |v| v.to_string());
    let mut fields: Vec<String> = Stage::ALL
        .iter()
        .map(|(name, stage)| format!("\"{name}\":{}", ns(pipeline_ns(*stage, n, rounds, clock).map(|(t, _)| t))))
        .collect();
    fields.push(format!("\"full_cold\":{}", ns(cold_pipeline_ns(n / 2, clock))));
    format!("{{{}}}", fields.join(","))
}
