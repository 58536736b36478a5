//! Native cost of the filter's per-request pipeline (header checks, HMAC,
//! replay key, JSON, match, inputs, annotations) for a 1 KiB delivery.

use std::net::IpAddr;
use std::time::Instant;

use combo_webhook_filter::headers::Headers;
use combo_webhook_filter::inbound::{self, Connection, Head, Peer};
use combo_webhook_filter::plan::{self, Compiled};
use combo_webhook_filter::secrets::Secret;
use combo_webhook_filter::signature::sign_generic;

struct C;
impl Connection for C {
    fn source_ip(&self) -> Option<IpAddr> {
        None
    }
    fn peer(&self) -> Option<Peer> {
        None
    }
}

fn main() {
    let cfg = r#"{"triggers":[{"id":"trg_bench","secrets":[{"id":"k1","value":"bench-secret"}],
        "match":{"jsonpath":"$.action","equals":"go"},
        "action":{"agent_id":"agent","inputs":{"ticket_id":"{{ payload.ticket.id }}","priority":"{{ payload.ticket.priority }}"}}}]}"#;
    let Ok(Compiled::Inbound(plan)) = plan::from_json(cfg, &|_| None) else { return };
    let mut body = br#"{"action":"go","id":"d1","ticket":{"id":1,"priority":"high"},"pad":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 1024 - body.len() - 2));
    body.extend_from_slice(b"\"}");
    let now = 1_800_000_000;
    let sig = sign_generic(&Secret::new("k".into(), b"bench-secret", None, None), now, &body);
    let ts = now.to_string();
    let headers = Headers::from_pairs([
        (":method", "POST"), (":path", "/v1/webhook/generic/trg_bench"), ("content-type", "application/json"),
        ("content-length", "1024"), ("x-combo-timestamp", ts.as_str()), ("x-combo-signature", sig.as_str()),
    ]);
    let n = 20_000;
    let mut stages = [0u128; 4];
    for _ in 0..n {
        let t0 = Instant::now();
        let Head::ReadBody(p) = inbound::check_head(&plan, "POST", "/v1/webhook/generic/trg_bench", &headers, &C, now) else { return };
        let t1 = Instant::now();
        let Ok(secret) = inbound::verify_body(&p, &body, now) else { return };
        let t2 = Instant::now();
        let _ = inbound::replay_entry(&plan, &p, now);
        let v = inbound::annotate(&plan, &p, secret, &headers, &body);
        let t3 = Instant::now();
        std::hint::black_box(v);
        stages[0] += (t1 - t0).as_nanos();
        stages[1] += (t2 - t1).as_nanos();
        stages[2] += (t3 - t2).as_nanos();
        stages[3] += (t3 - t0).as_nanos();
    }
    let us = |x: u128| x as f64 / n as f64 / 1000.0;
    // Sub-parts of annotate.
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&body).ok());
    }
    let parse = t.elapsed().as_nanos();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(minijinja::Value::from(minijinja::value::Serde(&doc)));
    }
    let ctx = t.elapsed().as_nanos();
    println!("{{\"json_parse_us\":{:.2},\"template_ctx_us\":{:.2}}}", us(parse), us(ctx));
    println!("{{\"head_us\":{:.2},\"verify_us\":{:.2},\"annotate_us\":{:.2},\"total_us\":{:.2}}}",
             us(stages[0]), us(stages[1]), us(stages[2]), us(stages[3]));
}
