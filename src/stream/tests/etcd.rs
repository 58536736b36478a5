//! The stream over the etcd replay store: callouts, waits, fallbacks.

use std::sync::Arc;

use serde_json::json;

use super::{audit_of, deliver, host, store, BODY, NOW};
use crate::contract::metrics::Counter;
use crate::host::testing::MemoryHost;
use crate::host::Action;
use crate::plan::{self, Compiled, InboundPlan};
use crate::stream::inbound::{Inbound, Stream};

fn etcd_plan(on_store_error: &str) -> Arc<InboundPlan> {
    let cfg = json!({"max_body_bytes": 64, "replay": {"store": "etcd", "etcd": {"cluster": "etcd", "prefix": "t/"},
        "on_store_error": on_store_error, "timeout_ms": 100},
        "triggers": [{"id": "t1", "secret": "k", "action": {"agent_id": "a"}}]});
    match plan::from_json(&cfg.to_string(), &|_| None, NOW).unwrap() {
        Compiled::Inbound(p) => Arc::new(p),
        Compiled::Outbound(_) => panic!(),
    }
}

fn etcd_answer(s: &mut Stream<MemoryHost>, status: Option<u32>, body: &str) {
    let token = s.host().callouts.len() as u32 - 1;
    s.on_callout_response(token, crate::host::CalloutResponse { status, body: body.as_bytes().to_vec() });
}

const GRANTED: &str = r#"{"header":{},"ID":"1","TTL":"30"}"#;
const RESERVED: &str = r#"{"header":{},"succeeded":true}"#;
const HELD: &str = r#"{"header":{},"responses":[{"response_range":{"kvs":[{"value":"cg=="}]}}]}"#;
const DONE: &str = r#"{"header":{},"responses":[{"response_range":{"kvs":[{"value":"Yw=="}]}}]}"#;

/// Headers and body; then grants the leases this worker has not seen.
fn etcd_stream(plan: &Arc<InboundPlan>) -> Stream<MemoryHost> {
    let mut s = Stream::new(host(BODY, &store()), Inbound::new(Arc::clone(plan)));
    assert_eq!(deliver(&mut s), Action::Pause, "the request waits on etcd");
    while s.host().callouts.last().is_some_and(|c| c.path == "/v3/lease/grant") {
        etcd_answer(&mut s, Some(200), GRANTED);
    }
    assert_eq!(s.host().callouts.last().unwrap().path, "/v3/kv/txn");
    s
}

#[test]
fn etcd_reserves_then_forwards_and_commits() {
    let plan = etcd_plan("reject");
    let mut s = etcd_stream(&plan);
    let call = s.host().callouts.last().unwrap().clone();
    assert_eq!((call.cluster.as_str(), call.timeout_ms), ("etcd", 100));
    let sent = String::from_utf8(call.body.clone()).unwrap();
    let signature = s.host().header("x-combo-signature").unwrap();
    assert!(!sent.contains(&signature["sha256=".len()..]) && !sent.contains(BODY), "digests only, never a signature");
    etcd_answer(&mut s, Some(200), RESERVED);
    assert_eq!(s.host().resumed, 1, "the request resumes");
    assert!(s.host().reply.is_none() && s.host().header("x-combo-agent-id").is_some());
    s.host_mut().response_status = Some(200);
    assert_eq!(s.on_response_headers(), Action::Pause, "the answer waits for the commit");
    assert_eq!(s.host().callouts.last().unwrap().path, "/v3/kv/put", "committed");
    assert_eq!(s.host().resumed_response, 0);
    assert_eq!(s.on_response_data(), Action::Pause, "the body would release the headers");
    etcd_answer(&mut s, Some(200), "{}");
    assert_eq!(s.on_response_data(), Action::Continue);
    assert_eq!(s.host().resumed_response, 1, "the answer leaves once etcd has the commit");
    s.on_done();
    assert_eq!(audit_of(s.host())["replay_store"], "etcd");
}

#[test]
fn a_failed_settle_still_lets_the_answer_go() {
    let mut s = etcd_stream(&etcd_plan("reject"));
    etcd_answer(&mut s, Some(200), RESERVED);
    s.host_mut().response_status = Some(200);
    assert_eq!(s.on_response_headers(), Action::Pause);
    etcd_answer(&mut s, None, "");
    assert_eq!(s.host().resumed_response, 1);
    assert!(s.host().logs.iter().any(|(_, m)| m.contains("did not confirm a settle")));
    assert_eq!(s.host().count_of(Counter::ReplayStoreError), 1, "a lost settle is counted");
}

#[test]
fn etcd_release_on_failure_and_answers_for_copies() {
    let plan = etcd_plan("reject");
    let mut s = etcd_stream(&plan);
    etcd_answer(&mut s, Some(200), RESERVED);
    s.host_mut().response_status = Some(503);
    assert_eq!(s.on_response_headers(), Action::Pause, "the answer waits for the release");
    assert_eq!(s.host().callouts.last().unwrap().path, "/v3/kv/deleterange", "released");
    for (answer, status) in [(HELD, 409), (DONE, 200)] {
        let mut s = etcd_stream(&plan);
        etcd_answer(&mut s, Some(200), answer);
        assert_eq!(s.host().reply.as_ref().unwrap().status, status);
    }
}

#[test]
fn etcd_down_is_503_or_falls_back_as_configured() {
    let mut s = etcd_stream(&etcd_plan("reject"));
    etcd_answer(&mut s, None, "");
    let r = s.host().reply.clone().unwrap();
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    assert!(s.host().header("x-combo-agent-id").is_none(), "nothing forwarded");
    assert_eq!(s.host().count_of(Counter::ReplayStoreError), 1);
    s.on_done();
    assert_eq!(audit_of(s.host())["replay_store"], "unavailable");

    let mut s = etcd_stream(&etcd_plan("local"));
    etcd_answer(&mut s, Some(500), "{}");
    assert!(s.host().reply.is_none(), "forwarded on the local store");
    assert_eq!(s.host().count_of(Counter::ReplayStoreFallback), 1);
    s.host_mut().response_status = Some(200);
    s.on_response_headers();
    s.on_done();
    assert_eq!(audit_of(s.host())["replay_store"], "local_fallback");
}

#[test]
fn an_answer_for_another_callout_is_ignored() {
    let mut s = etcd_stream(&etcd_plan("reject"));
    s.on_callout_response(999, crate::host::CalloutResponse::default());
    assert!(s.host().reply.is_none() && s.host().resumed == 0, "still waiting");
    assert_eq!(s.on_request_trailers(), Action::Pause);
}
