//! The inbound rules, driven through the stream over an in-memory host.

use super::*;
use crate::host::testing::MemoryHost;
use crate::host::Action;
use crate::host::Peer;
use crate::plan::{self, Compiled};
use crate::rules::scheme::sign_generic;
use crate::rules::scheme::Key;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn plan_of(cfg: serde_json::Value) -> Arc<InboundPlan> {
    match plan::from_json(&cfg.to_string(), &|_| None, NOW).unwrap() {
        Compiled::Inbound(p) => Arc::new(p),
        Compiled::Outbound(_) => panic!("not inbound"),
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
            "mtls": {"required": true, "allowed_peers": ["uri:spiffe://ok"]},
            "action": {"agent_id": "a"}
        }]
    })
}

/// A signed POST to trigger `t1`.
fn signed(body: &str, ts: i64, secret: &str) -> MemoryHost {
    let sig = sign_generic(&Key::hmac_sha256("k", secret.as_bytes()), ts, body.as_bytes()).unwrap();
    let ts = ts.to_string();
    let mut host = MemoryHost::new(
        &[
            (":method", "POST"),
            (":path", "/v1/webhook/generic/t1"),
            ("content-type", "application/json; charset=utf-8"),
            ("x-combo-signature", &sig),
            ("x-combo-timestamp", &ts),
            ("x-user", "ada"),
        ],
        body.as_bytes(),
        NOW,
    );
    host.response_status = Some(200);
    host
}

fn set(host: &mut MemoryHost, name: &str, value: Option<&str>) {
    host.headers.retain(|(k, _)| k != name);
    if let Some(v) = value {
        host.headers.push((name.to_string(), v.as_bytes().to_vec()));
    }
}

/// One whole exchange: headers, body in one piece, the upstream's answer
/// (`host.response_status`) when forwarded, then the end of the stream.
fn send(plan: &Arc<InboundPlan>, host: MemoryHost) -> MemoryHost {
    let len = host.body.len();
    let mut s = Stream::new(host, Inbound::new(Arc::clone(plan)));
    if s.on_request_headers(false) == Action::Pause && s.host().reply.is_none() {
        s.on_request_body(len, true);
    }
    if s.host().reply.is_none() {
        s.on_response_headers();
    }
    s.on_done();
    s.into_host()
}

fn code(host: &MemoryHost) -> Option<String> {
    host.reply.as_ref().and_then(|r| r.json()["error"]["code"].as_str().map(str::to_string))
}

#[test]
fn valid_delivery_is_annotated() {
    let plan = plan_of(base_config());
    let body = r#"{"action":"escalated","id":7}"#;
    let h = send(&plan, signed(body, NOW - 10, "s3cr3t"));
    assert!(h.reply.is_none(), "forwarded");
    assert_eq!(h.header("x-combo-trigger-id").unwrap(), "t1");
    assert_eq!(h.header("x-combo-agent-id").unwrap(), "ticket-triage");
    assert_eq!(h.header("x-combo-inputs").unwrap(), r#"{"id":7,"who":"ada"}"#);
    assert_eq!(h.header("x-combo-source").unwrap(), "generic_webhook");
    assert_eq!(h.header("x-combo-key-id").unwrap(), "0");
    assert_eq!(h.header("x-combo-matched").unwrap(), "true");
    assert_eq!(h.header("x-combo-delivery-id").unwrap().len(), 32);
    assert_eq!(h.body, body.as_bytes(), "body untouched");
    assert_eq!(h.count_of(Counter::Accepted), 1);
}

#[test]
fn non_match_is_ignored_or_forwarded() {
    let body = r#"{"action":"closed"}"#;
    let h = send(&plan_of(base_config()), signed(body, NOW, "s3cr3t"));
    let reply = h.reply.unwrap();
    assert_eq!((reply.status, reply.json()), (202, json!({"status": "ignored"})));
    let mut cfg = base_config();
    cfg["on_no_match"] = json!("forward");
    let h = send(&plan_of(cfg), signed(body, NOW, "s3cr3t"));
    assert!(h.reply.is_none());
    assert_eq!(h.header("x-combo-matched").unwrap(), "false");
}

#[test]
fn envelope_rewrites_body_and_length() {
    let mut cfg = base_config();
    cfg["inputs_delivery"] = json!("envelope");
    let body = r#"{"action":"escalated","id":7}"#;
    let h = send(&plan_of(cfg), signed(body, NOW, "s3cr3t"));
    let env: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(
        env,
        json!({"trigger_id": "t1", "agent_id": "ticket-triage",
        "inputs": {"id": 7, "who": "ada"}, "payload": {"action": "escalated", "id": 7}})
    );
    assert_eq!(h.header("content-length").unwrap(), h.body.len().to_string());
}

#[test]
fn checks_run_in_order() {
    let plan = plan_of(base_config());
    let with = |f: &dyn Fn(&mut MemoryHost)| {
        let mut h = signed("{}", NOW, "s3cr3t");
        f(&mut h);
        code(&send(&plan, h))
    };
    let path = |p: &'static str| move |h: &mut MemoryHost| set(h, ":path", Some(p));
    assert_eq!(
        with(&|h| {
            set(h, ":method", Some("GET"));
            path("/v1/webhook/generic/nope")(h)
        })
        .as_deref(),
        Some("method_not_allowed")
    );
    assert_eq!(with(&path("/v1/webhook/generic/nope")).as_deref(), Some("unknown_trigger"));
    assert_eq!(with(&path("/v1/webhook/generic/t1/x")).as_deref(), Some("unknown_trigger"));
    assert_eq!(with(&path("/v1/webhook/generic/")).as_deref(), Some("unknown_trigger"));
    assert_eq!(with(&path("/v1/webhook/generic/t1?x=1")), None);
    assert_eq!(with(&|h| set(h, "content-type", Some("text/plain"))).as_deref(), Some("unsupported_media_type"));
    assert_eq!(with(&|h| set(h, "content-length", Some("65"))).as_deref(), Some("payload_too_large"));
    assert_eq!(
        with(&|h| set(h, "x-combo-timestamp", Some(&(NOW - 301).to_string()))).as_deref(),
        Some("timestamp_out_of_tolerance")
    );
    assert_eq!(
        with(&|h| set(h, "x-combo-timestamp", Some(&(NOW + 301).to_string()))).as_deref(),
        Some("timestamp_out_of_tolerance")
    );
    assert_eq!(with(&|h| set(h, "x-combo-signature", None)).as_deref(), Some("missing_signature"));
    // Method before trigger, trigger before media type.
    assert_eq!(
        with(&|h| {
            set(h, ":method", Some("PUT"));
            set(h, "content-type", None)
        })
        .as_deref(),
        Some("method_not_allowed")
    );
}

#[test]
fn method_not_allowed_names_post() {
    let mut h = signed("{}", NOW, "s3cr3t");
    set(&mut h, ":method", Some("GET"));
    let reply = send(&plan_of(base_config()), h).reply.unwrap();
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.details, "combo_webhook_method_not_allowed", "for %RESPONSE_CODE_DETAILS%");
}

#[test]
fn non_canonical_webhook_paths_are_refused_never_passed() {
    let plan = plan_of(base_config());
    for p in [
        "//v1/webhook/generic/t1",
        "/v1/webhook//generic/t1",
        "/v1/./webhook/generic/t1",
        "/v1/webhook%2Fgeneric/t1",
        "http://x/v1/webhook/generic/t1",
    ] {
        let mut h = signed("{}", NOW, "wrong-secret");
        set(&mut h, ":path", Some(p));
        let h = send(&plan, h);
        assert_eq!(code(&h).as_deref(), Some("non_canonical_path"), "{p}");
        assert_eq!(h.reply.unwrap().status, 400);
    }
    let mut h = signed("{}", NOW, "s3cr3t");
    set(&mut h, ":path", Some("/healthz"));
    assert!(send(&plan, h).reply.is_none(), "other paths pass through");
}

#[test]
fn body_errors() {
    let plan = plan_of(base_config());
    let mut h = signed("{}", NOW, "s3cr3t");
    h.body = b"{} ".to_vec();
    assert_eq!(code(&send(&plan, h)).as_deref(), Some("signature_mismatch"));
    assert_eq!(code(&send(&plan, signed("{}", NOW, "wrong"))).as_deref(), Some("signature_mismatch"));
    assert_eq!(code(&send(&plan, signed("{not json", NOW, "s3cr3t"))).as_deref(), Some("invalid_json"));
}

#[test]
fn allowlists_and_typed_mtls_peers() {
    let mut cfg = base_config();
    cfg["allow_cidrs"] = json!(["10.0.0.0/8", "127.0.0.1/32"]);
    let plan = plan_of(cfg);
    let at = |path: &'static str, source: &str, peer: Option<Peer>| {
        let mut h = signed("{}", NOW, "s");
        set(&mut h, ":path", Some(path));
        h.source = Some(source.to_string());
        h.peer = peer;
        code(&send(&plan, h))
    };
    // The global allowlist is checked before the trigger lookup.
    assert_eq!(at("/v1/webhook/generic/nope", "192.0.2.1:1", None).as_deref(), Some("ip_not_allowed"));
    assert_eq!(at("/v1/webhook/generic/nope", "127.0.0.1:1", None).as_deref(), Some("unknown_trigger"));
    let p = "/v1/webhook/generic/locked";
    assert_eq!(at(p, "127.0.0.1:1", None).as_deref(), Some("ip_not_allowed"));
    assert_eq!(at(p, "10.1.2.3:1", None).as_deref(), Some("mtls_required"));
    let peer = |uris: &[&str], dns: &[&str]| Peer {
        uri_sans: uris.iter().map(|s| s.to_string()).collect(),
        dns_sans: dns.iter().map(|s| s.to_string()).collect(),
        subject: Some("CN=x".into()),
    };
    assert_eq!(at(p, "10.1.2.3:1", Some(peer(&["spiffe://other"], &[]))).as_deref(), Some("peer_not_allowed"));
    assert_eq!(
        at(p, "10.1.2.3:1", Some(peer(&[], &["spiffe://ok"]))).as_deref(),
        Some("peer_not_allowed"),
        "DNS SAN is not a URI"
    );
    assert_eq!(at(p, "10.1.2.3:1", Some(peer(&["spiffe://a", "spiffe://ok"], &[]))), None, "any URI SAN");
}

#[test]
fn template_context_hides_signature() {
    let mut cfg = base_config();
    cfg["triggers"][0]["action"]["inputs"] = json!({"sig": "{{ headers['x-combo-signature'] }}"});
    let body = r#"{"action":"escalated"}"#;
    let h = send(&plan_of(cfg), signed(body, NOW, "s3cr3t"));
    assert_eq!(h.header("x-combo-inputs").unwrap(), r#"{"sig":null}"#);
}

#[test]
fn inputs_over_the_cap_are_refused_in_header_mode() {
    let mut cfg = base_config();
    cfg["max_body_bytes"] = json!(4096);
    cfg["max_inputs_bytes"] = json!(64);
    cfg["triggers"][0]["action"]["inputs"] = json!({"p": "{{ payload.pad }}"});
    let body = format!(r#"{{"action":"escalated","pad":"{}"}}"#, "x".repeat(100));
    let h = send(&plan_of(cfg.clone()), signed(&body, NOW, "s3cr3t"));
    assert_eq!(code(&h).as_deref(), Some("inputs_too_large"));
    assert_eq!(h.reply.unwrap().status, 413);
    cfg["inputs_delivery"] = json!("envelope");
    let h = send(&plan_of(cfg), signed(&body, NOW, "s3cr3t"));
    assert!(h.reply.is_none(), "the envelope carries large inputs");
    assert!(h.header("x-combo-inputs").is_none());
}

#[test]
fn spoofed_annotations_are_removed_everywhere() {
    let plan = plan_of(base_config());
    let mut h = signed("{}", NOW, "s3cr3t");
    set(&mut h, ":path", Some("/other"));
    set(&mut h, "x-combo-agent-id", Some("evil"));
    set(&mut h, "x-combo-inputs", Some("{}"));
    let h = send(&plan, h);
    assert!(h.reply.is_none());
    assert!(h.header("x-combo-agent-id").is_none() && h.header("x-combo-inputs").is_none());
    assert!(h.filter_state.is_empty(), "pass-through requests are not audited");
}

#[test]
fn key_and_delivery_id_ignore_the_spelling_of_the_signature() {
    let plan = plan_of(base_config());
    let body = r#"{"action":"escalated","id":1}"#;
    let first = send(&plan, signed(body, NOW, "s3cr3t"));
    let id = first.header("x-combo-delivery-id").unwrap();
    // Upper-case hex is the same signature: a duplicate with the same key.
    let mut again = signed(body, NOW, "s3cr3t");
    let sig = again.header("x-combo-signature").unwrap().replace("sha256=", "");
    set(&mut again, "x-combo-signature", Some(&format!("sha256={}", sig.to_uppercase())));
    again.store = first.store.clone();
    let again = send(&plan, again);
    assert_eq!(again.reply.as_ref().unwrap().json(), json!({"status": "duplicate"}));
    let audit: serde_json::Value = serde_json::from_slice(&again.filter_state[0].1).unwrap();
    assert_eq!(audit["delivery_id"], id.as_str());
}

/// A trigger whose own scheme takes multipart/form-data (GitHub-style HMAC
/// over the body), matching `$.kind`, and a multipart delivery to it.
fn multipart_case(body: &[u8], secret: &[u8], content_type: &str) -> (Arc<InboundPlan>, MemoryHost) {
    let plan = plan_of(json!({"triggers": [{
        "id": "up", "secret": "s3cr3t",
        "scheme": {"algorithm": "hmac-sha256", "signature": {"header": "x-sig", "prefix": "sha256="},
                   "content_types": ["multipart/form-data"]},
        "match": {"jsonpath": "$.kind", "equals": "report"},
        "action": {"agent_id": "a", "inputs": {"kind": "{{ payload.kind }}", "file": {"jsonpath": "$.doc", "first": true}}}
    }]}));
    let tag = Key::hmac_sha256("k", secret).material.tag(&[std::borrow::Cow::Borrowed(body)]).unwrap();
    let sig = format!("sha256={}", hex::encode(tag));
    let headers =
        [(":method", "POST"), (":path", "/v1/webhook/generic/up"), ("content-type", content_type), ("x-sig", &sig)];
    let mut host = MemoryHost::new(&headers, body, NOW);
    host.response_status = Some(200);
    (plan, host)
}

const MULTIPART: &str = "multipart/form-data; boundary=b0";

fn multipart_body(kind: &str) -> Vec<u8> {
    format!(
        "--b0\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n{kind}\r\n\
         --b0\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"r.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\
         \x00\x01\r\n--b0--\r\n"
    )
    .into_bytes()
}

#[test]
fn multipart_deliveries_are_verified_then_read_as_fields() {
    let body = multipart_body("report");
    let (plan, host) = multipart_case(&body, b"s3cr3t", MULTIPART);
    let h = send(&plan, host);
    assert!(h.reply.is_none(), "forwarded: {:?}", code(&h));
    assert_eq!(h.body, body, "body untouched");
    let inputs: serde_json::Value = serde_json::from_str(&h.header("x-combo-inputs").unwrap()).unwrap();
    let sha = "b413f47d13ee2fe6c845b2ee141af81de858df4ec549a58b7970bb96645bc8d2"; // sha256 of 00 01
    assert_eq!(
        inputs,
        json!({"kind": "report", "file": {"filename": "r.bin", "content_type": "application/octet-stream", "size": 2, "sha256": sha}})
    );
    let (plan, host) = multipart_case(&multipart_body("other"), b"s3cr3t", MULTIPART);
    assert_eq!(send(&plan, host).reply.map(|r| r.status), Some(202), "the match sees the text field");
    let (plan, host) = multipart_case(&body, b"wrong", MULTIPART);
    assert_eq!(code(&send(&plan, host)).as_deref(), Some("signature_mismatch"));
    // A scheme without multipart in content_types refuses it (the generic one: JSON only).
    let mut host = signed("{}", NOW, "s3cr3t");
    set(&mut host, "content-type", Some(MULTIPART));
    assert_eq!(code(&send(&plan_of(base_config()), host)).as_deref(), Some("unsupported_media_type"));
}

#[test]
fn multipart_bounds_and_malformed_bodies() {
    // Too many parts: counted before the signature, so a forged one is 413 too.
    let part = "--b0\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nx\r\n";
    let many = format!("{}--b0--", part.repeat(crate::rules::scheme::form::MAX_FORM_FIELDS + 1)).into_bytes();
    let (plan, host) = multipart_case(&many, b"wrong", MULTIPART);
    assert_eq!(code(&send(&plan, host)).as_deref(), Some("too_many_fields"));
    // Malformed: refused once the signature holds, never forwarded.
    let unclosed = b"--b0\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nreport".to_vec();
    let (plan, host) = multipart_case(&unclosed, b"s3cr3t", MULTIPART);
    assert_eq!(code(&send(&plan, host)).as_deref(), Some("invalid_multipart"));
    let (plan, host) = multipart_case(&unclosed, b"wrong", MULTIPART);
    assert_eq!(code(&send(&plan, host)).as_deref(), Some("signature_mismatch"));
    let (plan, host) = multipart_case(&multipart_body("report"), b"s3cr3t", "multipart/form-data");
    assert_eq!(code(&send(&plan, host)).as_deref(), Some("invalid_multipart"), "no boundary");
}
