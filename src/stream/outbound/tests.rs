//! The outbound rules, driven through the stream over an in-memory host.

use super::*;
use crate::host::testing::MemoryHost;
use crate::host::Action;
use crate::plan::{from_json, Compiled};
use crate::rules::scheme::Key;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn compile_cfg(cfg: serde_json::Value) -> Result<OutboundPlan, Vec<String>> {
    match from_json(&cfg.to_string(), &|k| (k == "SUB_SECRET").then(|| "from-env".to_string()), NOW) {
        Ok(Compiled::Outbound(p)) => Ok(p),
        Ok(Compiled::Inbound(_)) => panic!("not outbound"),
        Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
    }
}

fn plan() -> Arc<OutboundPlan> {
    Arc::new(
        compile_cfg(json!({
            "mode": "outbound",
            "event_jsonpath": "$.type",
            "subscriptions": [
                {"id": "sub_42", "events": ["session.finished", "tool.error", "review.*"],
                 "secrets": [{"id": "old", "value": "old-secret", "not_after": NOW + 100},
                             {"id": "new", "value": "new-secret", "not_before": NOW - 10},
                             {"id": "next", "value": "next-secret", "not_before": NOW + 1000}]},
                {"id": "sub_env", "events": ["*"], "secrets": [{"env": "SUB_SECRET"}]}
            ]
        }))
        .unwrap(),
    )
}

/// Posts `body` to subscription `sub_42` with `extra` headers at `now`.
fn post(p: &Arc<OutboundPlan>, method: &str, extra: &[(&str, &str)], body: &[u8], now: i64) -> MemoryHost {
    let mut headers = vec![(":method", method), ("x-combo-subscription", "sub_42")];
    headers.extend_from_slice(extra);
    let mut s = Stream::new(MemoryHost::new(&headers, body, now), Outbound::new(Arc::clone(p)));
    if s.on_request_headers(false) == Action::Pause && s.host().reply.is_none() {
        s.on_request_body(body.len(), true);
    }
    s.on_done();
    s.into_host()
}

fn code(h: &MemoryHost) -> Option<String> {
    h.reply.as_ref().and_then(|r| r.json()["error"]["code"].as_str().map(str::to_string))
}

fn audit(h: &MemoryHost) -> serde_json::Value {
    serde_json::from_slice(&h.filter_state[0].1).unwrap()
}

#[test]
fn picks_exact_and_prefix_events() {
    let p = plan();
    let sub = &p.subscriptions["sub_42"];
    for e in ["session.finished", "tool.error", "review.completed", "review.x.y"] {
        assert!(sub.picks(e), "{e}");
    }
    for e in ["session.created", "tool.called", "review", "review.", "reviews.x", ""] {
        assert!(!sub.picks(e), "{e}");
    }
    assert!(p.subscriptions["sub_env"].picks("anything"));
}

#[test]
fn signs_with_newest_valid_secret() {
    let p = plan();
    let body = br#"{"type":"session.finished","id":"s1"}"#;
    let h = post(&p, "POST", &[("x-request-id", "r1")], body, NOW);
    assert!(h.reply.is_none());
    assert_eq!(audit(&h)["key_id"], "new");
    assert_eq!(audit(&h)["event"], "session.finished");
    assert_eq!(h.header("x-combo-timestamp").unwrap(), NOW.to_string());
    let expected = sign_generic(&Key::hmac_sha256("x", b"new-secret"), NOW, body).unwrap();
    assert_eq!(h.header("x-combo-signature").unwrap(), expected);
    assert_eq!(h.header("x-combo-event").unwrap(), "session.finished");
    assert_eq!(h.header("x-combo-route").unwrap(), "sub_42");
    assert_eq!(h.header("x-combo-delivery-id").unwrap().len(), 32);
    // Before "new" was valid, "old" signs.
    let h = post(&p, "POST", &[], body, NOW - 20);
    assert_eq!(audit(&h)["key_id"], "old");
}

#[test]
fn header_event_wins_and_skips() {
    let p = plan();
    let body = br#"{"type":"session.finished"}"#;
    let h = post(&p, "POST", &[("x-combo-event", "session.created")], body, NOW);
    assert_eq!(h.reply.as_ref().unwrap().status, 204);
    assert_eq!(audit(&h)["event"], "session.created");
    // With the header, the body need not be JSON.
    let h = post(&p, "POST", &[("x-combo-event", "tool.error")], b"not json", NOW);
    assert!(h.reply.is_none());
}

#[test]
fn event_errors() {
    let p = plan();
    assert_eq!(code(&post(&p, "POST", &[], b"{", NOW)).as_deref(), Some("invalid_json"));
    assert_eq!(code(&post(&p, "POST", &[], br#"{"kind":"x"}"#, NOW)).as_deref(), Some("missing_event"));
    assert_eq!(code(&post(&p, "POST", &[], br#"{"type":1}"#, NOW)).as_deref(), Some("missing_event"));
    for bad in ["a\u{0}b", "a b", "é", "a*"] {
        let body = json!({"type": bad}).to_string();
        assert_eq!(code(&post(&p, "POST", &[], body.as_bytes(), NOW)).as_deref(), Some("invalid_event"), "{bad:?}");
    }
    let long = json!({"type": "a".repeat(129)}).to_string();
    assert_eq!(code(&post(&p, "POST", &[], long.as_bytes(), NOW)).as_deref(), Some("invalid_event"));
}

#[test]
fn no_valid_secret_cannot_sign() {
    let p = Arc::new(
        compile_cfg(json!({"mode": "outbound", "subscriptions": [
            {"id": "sub_42", "events": ["*"], "secrets": [{"value": "v", "not_after": NOW + 10}]}]}))
        .unwrap(),
    );
    let h = post(&p, "POST", &[], br#"{"type":"a"}"#, NOW + 11);
    assert_eq!(code(&h).as_deref(), Some("no_signing_key"));
}

#[test]
fn head_checks() {
    let p = plan();
    assert_eq!(code(&post(&p, "GET", &[], b"{}", NOW)).as_deref(), Some("method_not_allowed"));
    let mut s = Stream::new(MemoryHost::new(&[(":method", "POST")], b"{}", NOW), Outbound::new(Arc::clone(&p)));
    s.on_request_headers(false);
    assert_eq!(s.host().reply.as_ref().unwrap().status, 404);
    let h = MemoryHost::new(&[(":method", "POST"), ("x-combo-subscription", "sub_nope")], b"{}", NOW);
    let mut s = Stream::new(h, Outbound::new(Arc::clone(&p)));
    s.on_request_headers(false);
    assert_eq!(s.host().reply.as_ref().unwrap().json()["error"]["code"], "unknown_subscription");
}

#[test]
fn config_errors_and_noisy_warning() {
    let e = compile_cfg(json!({"mode": "outbound", "event_jsonpath": "$[", "subscriptions": [
        {"id": "a", "events": [], "secret": "s"},
        {"id": "a", "events": ["re*view", "x.*"], "secret": "s"},
        {"id": "b", "events": ["x"], "secrets": [{"env": "NOPE"}]}]}))
    .unwrap_err();
    let want = [
        "event_jsonpath: ",
        "subscriptions[0].events: must list",
        "subscriptions[1].id: duplicate",
        "subscriptions[1].events[0]: invalid event pattern",
        "subscriptions[2].secrets[0].env: ",
    ];
    for w in want {
        assert!(e.iter().any(|x| x.starts_with(w)), "missing {w:?} in {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
    let p = compile_cfg(json!({"mode": "outbound", "subscriptions": [
        {"id": "loud", "events": ["tool.*"], "secret": "s"}, {"id": "quiet", "events": ["tool.error"], "secret": "s"}]}))
    .unwrap();
    let noisy: Vec<_> = p.warnings.iter().filter(|w| w.contains("tool.called")).collect();
    assert_eq!(noisy.len(), 1);
    assert!(noisy[0].contains("\"loud\""));
}
