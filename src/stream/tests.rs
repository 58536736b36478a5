//! Every transition of the stream, over the in-memory host: pause and
//! continue per callback, trailers, 413 while streaming, answered streams,
//! the replay protocol and the audit record published once.

mod etcd;

use std::sync::Arc;

use serde_json::json;

use super::inbound::{Inbound, Stream};
use super::outbound::Outbound;
use crate::contract::metrics::Counter;
use crate::host::testing::{FaultyStore, MemoryHost};
use crate::host::{Action, Level};
use crate::plan::{self, Compiled, InboundPlan};
use crate::rules::scheme::sign_generic;
use crate::rules::scheme::Key;

pub(super) const NOW: i64 = 1_800_000_000;
pub(super) const BODY: &str = r#"{"action":"go","id":7}"#;

fn plan() -> Arc<InboundPlan> {
    let cfg = json!({"max_body_bytes": 64, "triggers": [{"id": "t1", "secret": "k",
        "action": {"agent_id": "a", "inputs": {"id": "{{ payload.id }}"}}}]});
    match plan::from_json(&cfg.to_string(), &|_| None, NOW).unwrap() {
        Compiled::Inbound(p) => Arc::new(p),
        Compiled::Outbound(_) => panic!(),
    }
}

pub(super) fn host(body: &str, store: &FaultyStore) -> MemoryHost {
    let sig = sign_generic(&Key::hmac_sha256("k", b"k"), NOW, body.as_bytes()).unwrap();
    let mut h = MemoryHost::new(
        &[
            (":method", "POST"),
            (":path", "/v1/webhook/generic/t1"),
            ("content-type", "application/json"),
            ("x-combo-signature", &sig),
            ("x-combo-timestamp", &NOW.to_string()),
        ],
        body.as_bytes(),
        NOW,
    );
    h.store = store.clone();
    h
}

fn stream(body: &str, store: &FaultyStore) -> Stream<MemoryHost> {
    Stream::new(host(body, store), Inbound::new(plan()))
}

pub(super) fn store() -> FaultyStore {
    let s = FaultyStore::default();
    crate::rules::replay::create_buckets(&s);
    s
}

/// Headers, then the body in two chunks; returns the last action.
pub(super) fn deliver(s: &mut Stream<MemoryHost>) -> Action {
    assert_eq!(s.on_request_headers(false), Action::Pause, "headers pause while the body is read");
    let len = s.host().body.len();
    assert_eq!(s.on_request_body(len / 2, false), Action::Pause, "partial body pauses");
    s.on_request_body(len, true)
}

#[test]
fn pause_until_the_body_is_complete_then_continue() {
    let mut s = stream(BODY, &store());
    assert_eq!(deliver(&mut s), Action::Continue);
    assert!(s.host().reply.is_none());
    assert_eq!(s.on_response_headers(), Action::Continue);
}

#[test]
fn headers_only_request_is_decided_at_once() {
    let mut s = stream("", &store());
    assert_eq!(s.on_request_headers(true), Action::Pause);
    assert_eq!(s.host().reply.as_ref().unwrap().status, 400, "an empty body is verified, then is not JSON");
}

#[test]
fn trailers_complete_the_buffer() {
    let mut s = stream(BODY, &store());
    s.on_request_headers(false);
    let len = s.host().body.len();
    assert_eq!(s.on_request_body(len, false), Action::Pause);
    assert_eq!(s.on_request_trailers(), Action::Continue);
    assert_eq!(s.host().header("x-combo-agent-id").as_deref(), Some("a"));
}

#[test]
fn too_large_while_streaming_is_413_before_the_end() {
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100));
    let mut s = stream(&big, &store());
    s.on_request_headers(false);
    assert_eq!(s.on_request_body(65, false), Action::Pause);
    assert_eq!(s.host().reply.as_ref().unwrap().status, 413);
    assert_eq!(s.host().count_of(Counter::Rejected(crate::contract::error::Reject::PayloadTooLarge)), 1);
}

#[test]
fn an_answered_stream_pauses_its_body_and_trailers() {
    let mut s = stream(BODY, &store());
    s.host_mut().headers.retain(|(k, _)| k != "x-combo-signature");
    assert_eq!(s.on_request_headers(false), Action::Pause);
    assert_eq!(s.host().reply.as_ref().unwrap().status, 401);
    assert_eq!(s.on_request_body(10, false), Action::Pause);
    assert_eq!(s.on_request_body(20, true), Action::Pause);
    assert_eq!(s.on_request_trailers(), Action::Pause);
    assert_eq!(s.host().counters.len(), 1, "answered once");
}

#[test]
fn pass_through_continues_every_callback() {
    let mut s = stream(BODY, &store());
    s.host_mut().headers.retain(|(k, _)| k != ":path");
    s.host_mut().headers.push((":path".into(), b"/healthz".to_vec()));
    assert_eq!(s.on_request_headers(false), Action::Continue);
    assert_eq!(s.on_request_body(5, false), Action::Continue);
    assert_eq!(s.on_request_trailers(), Action::Continue);
    let reads = s.host().clock_reads;
    assert_eq!(s.on_response_headers(), Action::Continue);
    s.on_done();
    assert_eq!(s.host().clock_reads, reads, "no clock read after the request phase");
    assert!(s.host().counters.is_empty() && s.host().filter_state.is_empty() && s.host().logs.is_empty());
}

/// A clock read is a host call in the VM: two per callback (its start gives
/// the phase's second and starts the filter's time, its end stops it), one
/// more when the audit record is published, none inside a phase.
#[test]
fn two_clock_reads_per_callback() {
    let mut s = stream(BODY, &store());
    deliver(&mut s);
    assert_eq!(s.host().clock_reads, 4, "headers and body");
    s.on_response_headers();
    assert_eq!(s.host().clock_reads, 7, "and the response, which publishes");
    s.on_done();
    assert_eq!(s.host().clock_reads, 9, "and the end");
    let audit = audit_of(s.host());
    // The fake clock moves 1 µs per read: headers, body, and the response up
    // to the publish, each 1 µs of the filter's own time.
    assert_eq!(audit["verify_us"], 3, "{audit}");
}

pub(super) fn audit_of(h: &MemoryHost) -> serde_json::Value {
    assert_eq!(h.filter_state.len(), 1, "published exactly once");
    serde_json::from_slice(&h.filter_state[0].1).unwrap()
}

#[test]
fn audit_is_published_once_and_logged_once() {
    let mut s = stream(BODY, &store());
    deliver(&mut s);
    s.host_mut().response_status = Some(201);
    s.on_response_headers();
    s.on_done();
    s.on_done();
    let a = audit_of(s.host());
    assert_eq!((a["verdict"].as_str(), a["backend_status"].as_u64()), (Some("accepted"), Some(201)));
    let lines: Vec<_> =
        s.host().logs.iter().filter(|(l, m)| *l == Level::Info && m.starts_with("webhook_audit ")).collect();
    assert_eq!(lines.len(), 1);
}

#[test]
fn the_opt_in_cuts_leave_out_what_they_name_and_nothing_else() {
    let cfg = json!({"max_body_bytes": 64, "audit_filter_state": false,
        "annotations": ["x-combo-agent-id", "x-combo-delivery-id"],
        "triggers": [{"id": "t1", "secret": "k", "action": {"agent_id": "a", "inputs": {"id": "{{ payload.id }}"}}}]});
    let Ok(Compiled::Inbound(p)) = plan::from_json(&cfg.to_string(), &|_| None, NOW) else { panic!() };
    let mut h = host(BODY, &store());
    h.headers.push(("x-combo-inputs".into(), b"{\"forged\":1}".to_vec()));
    let mut s = Stream::new(h, Inbound::new(Arc::new(p)));
    assert_eq!(deliver(&mut s), Action::Continue);
    s.host_mut().response_status = Some(200);
    s.on_response_headers();
    s.on_done();
    let h = s.host();
    assert_eq!(h.header("x-combo-agent-id").as_deref(), Some("a"));
    assert!(h.header("x-combo-delivery-id").is_some());
    // Left out, and a client-sent copy still removed.
    for name in ["x-combo-trigger-id", "x-combo-inputs", "x-combo-source", "x-combo-key-id", "x-combo-matched"] {
        assert_eq!(h.header(name), None, "{name}");
    }
    assert!(h.filter_state.is_empty(), "no audit filter state");
    let lines = h.logs.iter().filter(|(l, m)| *l == Level::Info && m.starts_with("webhook_audit ")).count();
    assert_eq!(lines, 1, "the audit log line is written in any case");
    assert_eq!(h.count_of(Counter::Accepted), 1);
}

#[test]
fn rejected_audit_is_published_once_even_with_more_callbacks() {
    let mut s = stream(BODY, &store());
    s.host_mut().headers.retain(|(k, _)| k != "content-type");
    s.on_request_headers(false);
    s.on_request_body(3, true);
    s.on_request_trailers();
    s.on_done();
    let a = audit_of(s.host());
    assert_eq!(a["error_code"], "unsupported_media_type");
}

/// One delivery of BODY over `store`, the backend answering `status`
/// (`None`: the stream ends without an answer).
fn attempt(store: &FaultyStore, status: Option<u32>) -> MemoryHost {
    let mut s = stream(BODY, store);
    deliver(&mut s);
    if s.host().reply.is_none() {
        if let Some(st) = status {
            s.host_mut().response_status = Some(st);
            s.on_response_headers();
        }
    }
    s.on_done();
    s.into_host()
}

fn answer(h: &MemoryHost) -> Option<(u32, serde_json::Value)> {
    h.reply.as_ref().map(|r| (r.status, r.json()))
}

#[test]
fn replay_commits_on_2xx_only() {
    let store = store();
    assert_eq!(answer(&attempt(&store, Some(503))), None, "forwarded");
    assert_eq!(answer(&attempt(&store, Some(404))), None, "released after a 503: the retry gets through");
    assert_eq!(answer(&attempt(&store, Some(200))), None, "released after a 404");
    let dup = attempt(&store, Some(200));
    assert_eq!(answer(&dup), Some((200, json!({"status": "duplicate"}))));
    assert_eq!(dup.count_of(Counter::Duplicate), 1);
}

#[test]
fn a_stream_that_ends_without_an_answer_releases() {
    let store = store();
    assert_eq!(answer(&attempt(&store, None)), None);
    assert_eq!(answer(&attempt(&store, Some(200))), None, "the client went away: the copy is not remembered");
}

#[test]
fn a_concurrent_copy_is_in_progress_and_never_forwarded() {
    let store = store();
    let mut first = stream(BODY, &store);
    assert_eq!(deliver(&mut first), Action::Continue);
    let second = attempt(&store, Some(200));
    let reply = second.reply.as_ref().unwrap();
    assert_eq!((reply.status, reply.json()), (409, json!({"status": "in_progress"})));
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(second.count_of(Counter::InProgress), 1);
    first.host_mut().response_status = Some(200);
    first.on_response_headers();
    assert_eq!(answer(&attempt(&store, Some(200))).unwrap().0, 200, "committed: duplicate");
}

#[test]
fn an_ignored_delivery_releases_its_reservation() {
    let cfg = json!({"triggers": [{"id": "t1", "secret": "k", "match": {"jsonpath": "$.action", "equals": "stop"},
        "action": {"agent_id": "a"}}]});
    let Ok(Compiled::Inbound(p)) = plan::from_json(&cfg.to_string(), &|_| None, NOW) else { panic!() };
    let p = Arc::new(p);
    let store = store();
    for _ in 0..2 {
        let mut s = Stream::new(host(BODY, &store), Inbound::new(Arc::clone(&p)));
        deliver(&mut s);
        assert_eq!(s.host().reply.as_ref().unwrap().status, 202, "ignored each time, never in progress");
        s.on_done();
    }
}

#[test]
fn a_host_that_refuses_writes_never_forwards() {
    let store = store();
    let mut s = stream(BODY, &store);
    s.on_request_headers(false);
    s.host_mut().refuse_writes = true;
    let len = s.host().body.len();
    assert_eq!(s.on_request_body(len, true), Action::Pause);
    assert_eq!(s.host().reply.as_ref().unwrap().status, 500);
    s.on_done();
    assert_eq!(answer(&attempt(&store, Some(200))), None, "the reservation was released");
}

#[test]
fn a_busy_store_fails_closed_with_retry_after() {
    let store = store();
    store.fail_next_writes(1000);
    let h = attempt(&store, Some(200));
    let reply = h.reply.unwrap();
    assert_eq!((reply.status, reply.header("retry-after")), (503, Some("1")));
}

#[test]
fn outbound_stream_signs_and_removes_the_subscription_header() {
    let cfg = json!({"mode": "outbound", "subscriptions": [{"id": "s1", "events": ["a.*"], "secret": "k"}]});
    let Ok(Compiled::Outbound(p)) = plan::from_json(&cfg.to_string(), &|_| None, NOW) else { panic!() };
    let p = Arc::new(p);
    let body = r#"{"type":"a.b"}"#;
    let h = MemoryHost::new(&[(":method", "POST"), ("x-combo-subscription", "s1")], body.as_bytes(), NOW);
    let mut s = super::Stream::new(h, Outbound::new(Arc::clone(&p)));
    assert_eq!(s.on_request_headers(false), Action::Pause);
    assert_eq!(s.on_request_body(body.len(), true), Action::Continue);
    let h = s.host();
    assert!(h.header("x-combo-subscription").is_none());
    assert_eq!(h.header("x-combo-event").as_deref(), Some("a.b"));
    let expected = sign_generic(&Key::hmac_sha256("k", b"k"), NOW, body.as_bytes()).unwrap();
    assert_eq!(h.header("x-combo-signature"), Some(expected));
    // A skipped event is answered 204 and nothing is sent.
    let h = MemoryHost::new(&[(":method", "POST"), ("x-combo-subscription", "s1"), ("x-combo-event", "z")], b"{}", NOW);
    let mut s = super::Stream::new(h, Outbound::new(Arc::clone(&p)));
    s.on_request_headers(true);
    let r = s.host().reply.as_ref().unwrap();
    assert_eq!((r.status, r.header("x-combo-delivery")), (204, Some("skipped")));
    // An event name with a control character is 400, never a 5xx.
    let h = MemoryHost::new(&[(":method", "POST"), ("x-combo-subscription", "s1")], br#"{"type":"a.b\r\nx: y"}"#, NOW);
    let mut s = super::Stream::new(h, Outbound::new(p));
    s.on_request_headers(true);
    assert_eq!(s.host().reply.as_ref().unwrap().status, 400);
}
