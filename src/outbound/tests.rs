use super::*;
use crate::plan::{from_json, Compiled};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn compile_cfg(cfg: serde_json::Value) -> Result<OutboundPlan, Vec<String>> {
    match from_json(&cfg.to_string(), &|k| (k == "SUB_SECRET").then(|| "from-env".to_string())) {
        Ok(Compiled::Outbound(p)) => Ok(p),
        Ok(Compiled::Inbound(_)) => panic!("not outbound"),
        Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
    }
}

fn plan() -> OutboundPlan {
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
    .unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    Headers::from_pairs(pairs.iter().copied())
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
    let sub = &p.subscriptions["sub_42"];
    let body = br#"{"type":"session.finished","id":"s1"}"#;
    let h = headers(&[("x-request-id", "r1")]);
    let Ok(Outcome::Deliver(d)) = decide(&p, sub, &h, body, NOW) else { panic!() };
    assert_eq!(d.key_id, "new");
    assert_eq!(d.event, "session.finished");
    let get = |n: &str| d.headers.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("x-combo-timestamp"), NOW.to_string());
    let expected = sign_generic(&Secret::new("x".into(), b"new-secret", None, None), NOW, body);
    assert_eq!(get("x-combo-signature"), expected);
    assert_eq!(get("x-combo-event"), "session.finished");
    assert_eq!(get("x-combo-route"), "sub_42");
    assert_eq!(get("x-combo-delivery-id").len(), 32);
    // Before "new" was valid, "old" signs.
    let Ok(Outcome::Deliver(d)) = decide(&p, sub, &h, body, NOW - 20) else { panic!() };
    assert_eq!(d.key_id, "old");
}

#[test]
fn header_event_wins_and_skips() {
    let p = plan();
    let sub = &p.subscriptions["sub_42"];
    let body = br#"{"type":"session.finished"}"#;
    let h = headers(&[("x-combo-event", "session.created")]);
    assert!(matches!(decide(&p, sub, &h, body, NOW), Ok(Outcome::Skip { event }) if event == "session.created"));
    // With the header, the body need not be JSON.
    let h = headers(&[("x-combo-event", "tool.error")]);
    assert!(matches!(decide(&p, sub, &h, b"not json", NOW), Ok(Outcome::Deliver(_))));
}

#[test]
fn event_errors() {
    let p = plan();
    let sub = &p.subscriptions["sub_42"];
    assert_eq!(decide(&p, sub, &headers(&[]), b"{", NOW).unwrap_err(), Reject::InvalidJson);
    assert_eq!(decide(&p, sub, &headers(&[]), br#"{"kind":"x"}"#, NOW).unwrap_err(), Reject::MissingEvent);
    assert_eq!(decide(&p, sub, &headers(&[]), br#"{"type":1}"#, NOW).unwrap_err(), Reject::MissingEvent);
}

#[test]
fn no_valid_secret_cannot_sign() {
    let p = compile_cfg(json!({"mode": "outbound", "subscriptions": [
        {"id": "s", "events": ["*"], "secrets": [{"value": "v", "not_after": NOW - 1}]}]})).unwrap();
    let body = br#"{"type":"a"}"#;
    assert_eq!(decide(&p, &p.subscriptions["s"], &headers(&[]), body, NOW).unwrap_err(), Reject::NoSigningKey);
}

#[test]
fn head_checks() {
    let p = plan();
    let h = headers(&[("x-combo-subscription", "sub_42")]);
    assert!(check_head(&p, "POST", &h).is_ok());
    assert_eq!(check_head(&p, "GET", &h).unwrap_err(), Reject::MethodNotAllowed);
    assert_eq!(check_head(&p, "POST", &headers(&[])).unwrap_err(), Reject::UnknownSubscription);
    let h = headers(&[("x-combo-subscription", "sub_nope")]);
    assert_eq!(check_head(&p, "POST", &h).unwrap_err(), Reject::UnknownSubscription);
}

#[test]
fn config_errors_and_noisy_warning() {
    let e = compile_cfg(json!({"mode": "outbound", "event_jsonpath": "$[", "subscriptions": [
        {"id": "a", "events": [], "secret": "s"},
        {"id": "a", "events": ["re*view", "x.*"], "secret": "s"},
        {"id": "b", "events": ["x"], "secrets": [{"env": "NOPE"}]}]})).unwrap_err();
    let want = ["event_jsonpath: ", "subscriptions[0].events: must list", "subscriptions[1].id: duplicate",
                "subscriptions[1].events[0]: invalid event pattern", "subscriptions[2].secrets[0].env: "];
    for w in want {
        assert!(e.iter().any(|x| x.starts_with(w)), "missing {w:?} in {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
    let p = compile_cfg(json!({"mode": "outbound", "subscriptions": [
        {"id": "loud", "events": ["tool.*"], "secret": "s"}, {"id": "quiet", "events": ["tool.error"], "secret": "s"}]})).unwrap();
    let noisy: Vec<_> = p.warnings.iter().filter(|w| w.contains("tool.called")).collect();
    assert_eq!(noisy.len(), 1);
    assert!(noisy[0].contains("\"loud\""));
}
