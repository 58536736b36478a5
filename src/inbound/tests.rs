use super::*;
use crate::plan;
use crate::secrets::Secret;
use crate::signature::sign_generic;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

struct Conn {
    ip: Option<&'static str>,
    peer: Option<Peer>,
}

impl Connection for Conn {
    fn source_ip(&self) -> Option<IpAddr> {
        self.ip.map(|s| s.parse().unwrap())
    }
    fn peer(&self) -> Option<Peer> {
        self.peer.clone()
    }
}

const LOCAL: Conn = Conn { ip: Some("127.0.0.1"), peer: None };

fn plan_of(cfg: serde_json::Value) -> Plan {
    match plan::from_json(&cfg.to_string(), &|_| None).unwrap() {
        plan::Compiled::Inbound(p) => p,
        plan::Compiled::Outbound(_) => panic!("not inbound"),
    }
}

fn base_config() -> serde_json::Value {
    json!({
        "max_body_bytes": 64,
        "triggers": [{
            "id": "t1",
            "secret": "s3cr3t",
            "match": {"jsonpath": "$.action", "equals": "escalated"},
            "action": {"agent_id": "ticket-triage", "inputs": {"id": "{{ payload.id }}", "who": "{{ headers['x-user'] }}"}}
        }, {
            "id": "locked",
            "secret": "s",
            "allow_cidrs": ["10.0.0.0/8"],
            "mtls": {"required": true, "allowed_peers": ["spiffe://ok"]},
            "action": {"agent_id": "a"}
        }]
    })
}

fn signed(body: &str, ts: i64, secret: &str) -> Headers {
    let sig = sign_generic(&Secret::new("k".into(), secret.as_bytes(), None, None), ts, body.as_bytes());
    Headers::from_pairs([
        (":method", "POST"),
        (":path", "/v1/webhook/generic/t1"),
        ("content-type", "application/json; charset=utf-8"),
        ("x-combo-signature", sig.as_str()),
        ("x-combo-timestamp", ts.to_string().as_str()),
        ("x-user", "ada"),
    ])
}

fn head(plan: &Plan, method: &str, path: &str, h: &Headers, conn: &Conn) -> Result<Pending, Reject> {
    match check_head(plan, method, path, h, conn, NOW) {
        Head::ReadBody(p) => Ok(p),
        Head::Reject(r) => Err(r),
        Head::PassThrough => panic!("unexpected pass-through"),
    }
}

fn deliver(plan: &Plan, body: &str, h: &Headers) -> Result<Verdict, Reject> {
    let p = head(plan, "POST", "/v1/webhook/generic/t1", h, &LOCAL)?;
    let secret = verify_body(&p, body.as_bytes(), NOW)?;
    Ok(annotate(plan, &p, secret, h, body.as_bytes()))
}

#[test]
fn valid_delivery_is_annotated() {
    let plan = plan_of(base_config());
    let body = r#"{"action":"escalated","id":7}"#;
    let Verdict::Forward(a) = deliver(&plan, body, &signed(body, NOW - 10, "s3cr3t")).unwrap() else {
        panic!("not forwarded")
    };
    let h: std::collections::HashMap<_, _> = a.headers.iter().cloned().collect();
    assert_eq!(h["x-combo-trigger-id"], "t1");
    assert_eq!(h["x-combo-agent-id"], "ticket-triage");
    assert_eq!(h["x-combo-inputs"], r#"{"id":7,"who":"ada"}"#);
    assert_eq!(h["x-combo-source"], "generic_webhook");
    assert_eq!(h["x-combo-key-id"], "0");
    assert_eq!(h["x-combo-matched"], "true");
    assert_eq!(h["x-combo-delivery-id"].len(), 32);
    assert!(a.body.is_none());
}

#[test]
fn non_match_is_ignored_or_forwarded() {
    let body = r#"{"action":"closed"}"#;
    let plan = plan_of(base_config());
    assert!(matches!(deliver(&plan, body, &signed(body, NOW, "s3cr3t")), Ok(Verdict::Ignored)));
    let mut cfg = base_config();
    cfg["on_no_match"] = json!("forward");
    let plan = plan_of(cfg);
    let Ok(Verdict::Forward(a)) = deliver(&plan, body, &signed(body, NOW, "s3cr3t")) else { panic!() };
    assert!(!a.matched);
    assert!(a.headers.contains(&("x-combo-matched", "false".to_string())));
}

#[test]
fn envelope_rewrites_body() {
    let mut cfg = base_config();
    cfg["inputs_delivery"] = json!("envelope");
    let plan = plan_of(cfg);
    let body = r#"{"action":"escalated","id":7}"#;
    let Ok(Verdict::Forward(a)) = deliver(&plan, body, &signed(body, NOW, "s3cr3t")) else { panic!() };
    let env: serde_json::Value = serde_json::from_slice(&a.body.unwrap()).unwrap();
    assert_eq!(env, json!({"trigger_id": "t1", "agent_id": "ticket-triage",
        "inputs": {"id": 7, "who": "ada"}, "payload": {"action": "escalated", "id": 7}}));
}

#[test]
fn checks_run_in_spec_order() {
    let plan = plan_of(base_config());
    let body = "{}";
    let h = signed(body, NOW, "s3cr3t");
    let p = "/v1/webhook/generic/t1";
    assert_eq!(head(&plan, "GET", "/v1/webhook/generic/nope", &h, &LOCAL).unwrap_err(), Reject::MethodNotAllowed);
    assert_eq!(head(&plan, "POST", "/v1/webhook/generic/nope", &h, &LOCAL).unwrap_err(), Reject::UnknownTrigger);
    assert_eq!(head(&plan, "POST", "/v1/webhook/generic/t1/x", &h, &LOCAL).unwrap_err(), Reject::UnknownTrigger);
    assert_eq!(head(&plan, "POST", "/v1/webhook/generic/", &h, &LOCAL).unwrap_err(), Reject::UnknownTrigger);
    assert!(head(&plan, "POST", "/v1/webhook/generic/t1?x=1", &h, &LOCAL).is_ok());
    assert!(matches!(check_head(&plan, "GET", "/healthz", &h, &LOCAL, NOW), Head::PassThrough));

    let mut pairs: Vec<(String, String)> = h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let set = |pairs: &mut Vec<(String, String)>, k: &str, v: Option<&str>| {
        pairs.retain(|(n, _)| n != k);
        if let Some(v) = v {
            pairs.push((k.to_string(), v.to_string()));
        }
    };
    set(&mut pairs, "content-type", Some("text/plain"));
    assert_eq!(head(&plan, "POST", p, &Headers::new(pairs.clone()), &LOCAL).unwrap_err(), Reject::UnsupportedMediaType);
    set(&mut pairs, "content-type", Some("Application/JSON"));
    set(&mut pairs, "content-length", Some("65"));
    assert_eq!(head(&plan, "POST", p, &Headers::new(pairs.clone()), &LOCAL).unwrap_err(), Reject::PayloadTooLarge);
    set(&mut pairs, "content-length", Some("64"));
    assert!(head(&plan, "POST", p, &Headers::new(pairs.clone()), &LOCAL).is_ok());
    set(&mut pairs, "x-combo-timestamp", Some(&(NOW - 301).to_string()));
    assert_eq!(head(&plan, "POST", p, &Headers::new(pairs.clone()), &LOCAL).unwrap_err(), Reject::TimestampOutOfTolerance);
    set(&mut pairs, "x-combo-timestamp", Some(&(NOW + 301).to_string()));
    assert_eq!(head(&plan, "POST", p, &Headers::new(pairs.clone()), &LOCAL).unwrap_err(), Reject::TimestampOutOfTolerance);
    set(&mut pairs, "x-combo-timestamp", Some(&(NOW + 300).to_string()));
    assert!(head(&plan, "POST", p, &Headers::new(pairs.clone()), &LOCAL).is_ok());
    set(&mut pairs, "x-combo-signature", None);
    assert_eq!(head(&plan, "POST", p, &Headers::new(pairs.clone()), &LOCAL).unwrap_err(), Reject::MissingSignature);
}

#[test]
fn body_errors() {
    let plan = plan_of(base_config());
    let h = signed("{}", NOW, "s3cr3t");
    assert_eq!(deliver(&plan, "{} ", &h).unwrap_err(), Reject::SignatureMismatch);
    let h = signed("{}", NOW, "wrong");
    assert_eq!(deliver(&plan, "{}", &h).unwrap_err(), Reject::SignatureMismatch);
    let h = signed("{not json", NOW, "s3cr3t");
    assert!(matches!(deliver(&plan, "{not json", &h), Ok(Verdict::Reject(Reject::InvalidJson))));
    assert!(body_over_limit(&plan, 65));
    assert!(!body_over_limit(&plan, 64));
}

#[test]
fn allowlists_and_mtls() {
    let mut cfg = base_config();
    cfg["allow_cidrs"] = json!(["10.0.0.0/8", "127.0.0.1/32"]);
    let plan = plan_of(cfg);
    let h = signed("{}", NOW, "s");
    let p = "/v1/webhook/generic/locked";
    let outside = Conn { ip: Some("192.0.2.1"), peer: None };
    // Global allowlist is checked before the trigger lookup.
    assert_eq!(head(&plan, "POST", "/v1/webhook/generic/nope", &h, &outside).unwrap_err(), Reject::IpNotAllowed);
    assert_eq!(head(&plan, "POST", "/v1/webhook/generic/nope", &h, &LOCAL).unwrap_err(), Reject::UnknownTrigger);
    // Trigger allowlist.
    assert_eq!(head(&plan, "POST", p, &h, &LOCAL).unwrap_err(), Reject::IpNotAllowed);
    let inside = |peer| Conn { ip: Some("10.1.2.3"), peer };
    assert_eq!(head(&plan, "POST", p, &h, &inside(None)).unwrap_err(), Reject::MtlsRequired);
    let other = Peer { uri_san: Some("spiffe://other".into()), ..Default::default() };
    assert_eq!(head(&plan, "POST", p, &h, &inside(Some(other))).unwrap_err(), Reject::PeerNotAllowed);
    let ok = Peer { subject: Some("CN=x".into()), uri_san: Some("spiffe://ok".into()), dns_san: None };
    let h = Headers::from_pairs(h.iter().map(|(k, v)| if k == ":path" { (k, p) } else { (k, v) }));
    assert!(head(&plan, "POST", p, &h, &inside(Some(ok))).is_ok());
}

#[test]
fn template_context_hides_signature() {
    let mut cfg = base_config();
    cfg["triggers"][0]["action"]["inputs"] = json!({"sig": "{{ headers['x-combo-signature'] }}"});
    let plan = plan_of(cfg);
    let body = r#"{"action":"escalated"}"#;
    let Ok(Verdict::Forward(a)) = deliver(&plan, body, &signed(body, NOW, "s3cr3t")) else { panic!() };
    assert!(a.headers.contains(&("x-combo-inputs", r#"{"sig":null}"#.to_string())));
}
