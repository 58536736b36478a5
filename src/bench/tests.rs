//! The stage wrappers: each stage still verifies what it reaches and adds
//! nothing after it, and the full stage is the product's pipeline.

use std::sync::Arc;

use serde_json::json;

use super::{Stage, StagedHost, StagedInbound};
use crate::contract::names::TRIGGER_ID;
use crate::host::testing::MemoryHost;
use crate::host::{Action, Host};
use crate::plan::{self, Compiled};
use crate::rules::scheme::{sign_generic, Key};
use crate::stream::Stream;

const NOW: i64 = 1_800_000_000;

fn plan() -> Arc<crate::plan::inbound::InboundPlan> {
    let cfg = json!({"triggers": [{"id": "t1", "secret": "s3cr3t",
        "match": {"jsonpath": "$.action", "equals": "escalated"}, "action": {"agent_id": "a"}}]});
    match plan::from_json(&cfg.to_string(), &|_| None, NOW).unwrap() {
        Compiled::Inbound(p) => Arc::new(p),
        Compiled::Outbound(_) => panic!("not inbound"),
    }
}

fn signed(body: &str, secret: &str) -> MemoryHost {
    let sig = sign_generic(&Key::hmac_sha256("k", secret.as_bytes()), NOW, body.as_bytes()).unwrap();
    let ts = NOW.to_string();
    let mut host = MemoryHost::new(
        &[
            (":method", "POST"),
            (":path", "/v1/webhook/generic/t1"),
            ("content-type", "application/json"),
            ("x-combo-signature", &sig),
            ("x-combo-timestamp", &ts),
        ],
        body.as_bytes(),
        NOW,
    );
    host.response_status = Some(200);
    host
}

fn send(stage: Stage, host: MemoryHost) -> MemoryHost {
    let len = host.body.len();
    let mut host = StagedHost::new(host);
    host.stage = stage;
    let mut s = Stream::new(host, StagedInbound::at(plan(), stage));
    if s.on_request_headers(false) == Action::Pause && s.host().reply.is_none() {
        s.on_request_body(len, true);
    }
    if s.host().reply.is_none() {
        s.on_response_headers();
    }
    s.on_done();
    s.into_host().inner
}

const BODY: &str = r#"{"action":"escalated","id":7}"#;

#[test]
fn stages_stop_the_pipeline_where_they_say() {
    let out = send(Stage::Signature, signed(BODY, "s3cr3t"));
    assert!(out.reply.is_none(), "forwarded");
    assert_eq!(out.header(TRIGGER_ID), None, "no annotations before Annotate");
    let forged = send(Stage::Signature, signed(BODY, "wrong"));
    assert_eq!(forged.reply.as_ref().map(|r| r.status), Some(401), "the signature is still checked");
    let out = send(Stage::Headers, signed(BODY, "wrong"));
    assert!(out.reply.is_none(), "headers only: the body is never read");
    let out = send(Stage::Annotate, signed(BODY, "s3cr3t"));
    assert_eq!(out.header(TRIGGER_ID).as_deref(), Some("t1"));
    assert!(out.filter_state.is_empty() && out.counters.is_empty(), "no audit record, no metrics before Audit");
    let out = send(Stage::Audit, signed(BODY, "s3cr3t"));
    assert_eq!(out.filter_state.len(), 1, "the audit record from Audit on");
    assert!(out.counters.is_empty(), "metrics only from Metrics on");
    let out = send(Stage::Metrics, signed(BODY, "s3cr3t"));
    assert_eq!(out.counters.len(), 1);
}

#[test]
fn only_the_full_stage_refuses_a_replay() {
    let store = crate::host::testing::FaultyStore::default();
    crate::rules::replay::create_buckets(&store);
    let twice = |stage| {
        (0..2)
            .map(|_| {
                let mut h = signed(BODY, "s3cr3t");
                h.store = store.clone();
                send(stage, h).reply.map(|r| r.status)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(twice(Stage::Metrics), [None, None], "before Full: no replay protection");
    assert_eq!(twice(Stage::Full), [None, Some(200)], "Full: the copy is answered as a duplicate at the edge");
}

#[test]
fn stages_have_the_names_the_bench_gives_them() {
    for (name, stage) in Stage::ALL {
        assert_eq!(Stage::parse(name), Some(stage));
    }
    assert_eq!(Stage::parse("everything"), None);
    let mut h = StagedHost::new(MemoryHost::default());
    h.stage = Stage::Headers;
    h.log(crate::host::Level::Warn, "dropped");
    assert!(h.inner.logs.is_empty());
}

#[test]
fn the_tally_times_calls_and_reports_them_with_the_timer_cost() {
    use super::tally;
    for _ in 0..3 {
        tally::timed("a_call", 5, || std::hint::black_box(1 + 1));
    }
    let line = (0..2).find_map(|_| tally::stream_done(2)).expect("every second stream reports");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["streams"], 2);
    assert_eq!(v["calls"]["a_call"][0], 3);
    assert_eq!(v["calls"]["a_call"][1], 15);
    assert!(v["timer_ns"].as_u64().unwrap() > 0);
    assert!(v["calls"].get("timer_calibration").is_none(), "{line}");
}
