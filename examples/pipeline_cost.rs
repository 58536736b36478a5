//! Native cost of the filter's per-request pipeline for a 1 KiB delivery:
//! the very stream the .wasm runs (header checks, HMAC, replay, JSON, match,
//! inputs, annotations, audit), over the in-memory host.

use std::sync::Arc;
use std::time::Instant;

use combo_webhook_filter::host::memory::{MemoryHost, MemoryStore};
use combo_webhook_filter::plan::{self, Compiled};
use combo_webhook_filter::rules::replay;
use combo_webhook_filter::rules::scheme::{sign_generic, Key};
use combo_webhook_filter::stream::inbound::{Inbound, Stream};

fn main() {
    let now = 1_800_000_000;
    let cfg = r#"{"triggers":[{"id":"trg_bench","secrets":[{"id":"k1","value":"bench-secret"}],
        "match":{"jsonpath":"$.action","equals":"go"},
        "action":{"agent_id":"agent","inputs":{"ticket_id":"{{ payload.ticket.id }}","priority":"{{ payload.ticket.priority }}"}}}]}"#;
    let Ok(Compiled::Inbound(plan)) = plan::from_json(cfg, &|_| None, now) else { return };
    let plan = Arc::new(plan);
    let n = 20_000;
    let store = MemoryStore::default();
    replay::create_buckets(&store);
    // Distinct deliveries (the replay cache would answer copies early).
    let hosts: Vec<MemoryHost> = (0..n)
        .map(|i| {
            let mut body =
                format!(r#"{{"action":"go","id":"d{i}","ticket":{{"id":1,"priority":"high"}},"pad":""#).into_bytes();
            body.extend(std::iter::repeat_n(b'x', 1024 - body.len() - 2));
            body.extend_from_slice(b"\"}");
            let sig = sign_generic(&Key::hmac_sha256("k", b"bench-secret"), now, &body).unwrap_or_default();
            let ts = now.to_string();
            let mut h = MemoryHost::new(
                &[
                    (":method", "POST"),
                    (":path", "/v1/webhook/generic/trg_bench"),
                    ("content-type", "application/json"),
                    ("content-length", "1024"),
                    ("x-combo-timestamp", ts.as_str()),
                    ("x-combo-signature", sig.as_str()),
                ],
                &body,
                now,
            );
            h.store = store.clone();
            h.response_status = Some(200);
            h
        })
        .collect();
    let started = Instant::now();
    let mut forwarded = 0;
    for h in hosts {
        let mut s = Stream::new(h, Inbound::new(Arc::clone(&plan)));
        s.on_request_headers(false);
        s.on_request_body(1024, true);
        s.on_response_headers();
        s.on_done();
        forwarded += usize::from(s.host().reply.is_none());
    }
    let us = started.elapsed().as_nanos() as f64 / n as f64 / 1000.0;
    println!("{{\"deliveries\":{n},\"forwarded\":{forwarded},\"total_us\":{us:.2}}}");
}
