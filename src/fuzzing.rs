//! Fuzz entry points, one per attack surface. `cargo fuzz` (fuzz/, nightly)
//! drives them with libFuzzer; `tests/fuzz_corpus.rs` replays the kept corpus
//! through them on stable in `make test`. Each must never panic, and asserts
//! the invariants that hold for any input (the asserts are the fuzz oracle).
#![allow(clippy::panic)]

use std::sync::{Arc, OnceLock};

use crate::host::testing::{FaultyStore, MemoryHost};
use crate::host::{Action, Headers};
use crate::plan::{self, Compiled, InboundPlan};
use crate::rules::inputs::{RenderContext, TemplateSet};
use crate::rules::paths;
use crate::rules::scheme::{self, presets, Handshake, Key, KeyMaterial, Request, Scheme};
use crate::stream::inbound::{Inbound, Stream};

const NOW: i64 = 1_800_000_000;

/// Configuration text (JSON) and plugin bytes (JSON or a Struct's wire form).
pub fn config(data: &[u8]) {
    let _ = plan::from_plugin_bytes(data, &|_| Some("x".to_string()), NOW);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = plan::from_json(text, &|_| None, NOW);
    }
}

/// Every preset's compiled scheme, with a key where one can be made from text.
fn preset_schemes() -> &'static [(Scheme, Vec<Key>)] {
    static SCHEMES: OnceLock<Vec<(Scheme, Vec<Key>)>> = OnceLock::new();
    SCHEMES.get_or_init(|| {
        presets::all()
            .into_iter()
            .filter_map(|(name, p)| scheme::compile(&name, p.scheme, 300).ok())
            .map(|s| {
                let keys = KeyMaterial::secret(s.algorithm, "whsec_a2V5", s.secret_encoding)
                    .map(|m| vec![Key::new("k".into(), m, None, None)])
                    .unwrap_or_default();
                (s, keys)
            })
            .collect()
    })
}

/// Every preset's reading of the same arbitrary request: header values,
/// query and body from the input.
pub fn signature_headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut values = text.split('\n');
    let mut next = || values.next().unwrap_or("").to_string();
    let mut pairs = vec![(":method".to_string(), "POST".to_string()), (":path".to_string(), format!("/h?{}", next()))];
    for (s, _) in preset_schemes() {
        for name in &s.audit_headers {
            pairs.push((name.clone(), next()));
        }
    }
    let headers = Headers::new(pairs);
    for (s, keys) in preset_schemes() {
        if let Ok(mut c) = s.read_head(&headers) {
            if s.read_body(&mut c, data).is_ok() {
                let message = s.message(&c, &Request { headers: &headers, body: data });
                let _ = s.verify_message(&c, &message, keys, NOW);
                let content = s.replay_content(&message, &[0; 32]);
                assert!(!content.is_empty());
            }
        }
    }
}

/// Before any signature holds: every preset's reading of an arbitrary body
/// (a scan, never a tree), and the keyed handshakes (X CRC, Zoom), which
/// answer only a challenge that can never be a deliverable body.
pub fn body_fields(data: &[u8]) {
    for (s, _) in preset_schemes() {
        let mut c = scheme::Credentials::default();
        let _ = s.read_body(&mut c, data);
    }
    let token = String::from_utf8_lossy(data);
    let is_json = serde_json::from_str::<serde::de::IgnoredAny>(&token).is_ok();
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("crc_token", &token).finish();
    let get = Headers::new(vec![(":method".into(), "GET".into()), (":path".into(), format!("/h?{query}"))]);
    let key = Key::hmac_sha256("k", b"k");
    if let Some(Ok(_)) = Handshake::XCrc.answer_head(&get, Some(&key), None) {
        assert!(!is_json, "a CRC answer for a JSON document: {token:?}");
    }
    let zoom = serde_json::json!({"event": "endpoint.url_validation", "payload": {"plainToken": token}});
    if let Some(Ok(_)) = Handshake::ZoomUrlValidation.answer_body(&Headers::default(), Some(&zoom), &key) {
        assert!(!is_json && !token.contains(':'), "a Zoom answer for signed-content text: {token:?}");
    }
}

/// A multipart body read as `match` and `inputs` see it: the first line is
/// the content-type (its boundary), the rest the body. A read body has at
/// most `MAX_FORM_FIELDS` values, and a file is only its summary.
pub fn multipart(data: &[u8]) {
    use crate::rules::scheme::{form::MAX_FORM_FIELDS, multipart};
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let content_type = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = multipart::parts_within_bound(&content_type, body);
    let Ok(serde_json::Value::Object(fields)) = multipart::to_json(&content_type, body) else { return };
    let mut values = 0;
    for v in fields.values() {
        let items = match v {
            serde_json::Value::Array(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        values += items.len();
        for item in items {
            if let serde_json::Value::Object(file) = item {
                let keys: Vec<&str> = file.keys().map(String::as_str).collect();
                assert_eq!(keys.len(), 4, "a file is its summary: {keys:?}");
                assert!(file["sha256"].as_str().is_some_and(|h| h.len() == 64));
            } else {
                assert!(item.is_string(), "a text field is a string: {item}");
            }
        }
    }
    assert!(values <= MAX_FORM_FIELDS, "{values} parts read");
}

/// The path canonicaliser: its output is absolute, has no empty, `.` or `..`
/// segment, and decoding it again changes nothing.
pub fn path(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let c = paths::canonicalize(&raw);
    assert!(c.path.starts_with('/'));
    let inner = c.path.trim_start_matches('/').trim_end_matches('/');
    assert!(inner.is_empty() || inner.split('/').all(|s| !s.is_empty() && s != "." && s != ".."), "{:?}", c.path);
    if c.converged {
        assert_eq!(paths::percent_decode(&c.path), c.path, "fully decoded");
    } else {
        assert!(!c.was_canonical);
    }
}

/// A template compiled from the first line, rendered over the rest as JSON.
pub fn template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (template, payload) = text.split_once('\n').unwrap_or((&text, "{}"));
    let Ok(set) = TemplateSet::compile(vec![vec![("x".to_string(), serde_json::Value::String(template.to_string()))]])
    else {
        return;
    };
    let payload = Arc::new(serde_json::from_str::<serde_json::Value>(payload).unwrap_or_default());
    let headers = Headers::default();
    let ctx = RenderContext {
        payload: &payload,
        headers: &headers,
        hidden_headers: &[],
        trigger_id: "t",
        agent_id: "a",
        source: "generic_webhook",
    };
    let _ = set.render(0, &ctx, 4096, &mut Vec::new());
}

/// The plan the pipeline target runs (compiled once; the config is fixed and
/// tested to compile).
fn fuzz_plan() -> Option<Arc<InboundPlan>> {
    static PLAN: OnceLock<Option<Arc<InboundPlan>>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let cfg = r#"{"max_body_bytes": 4096, "max_inputs_bytes": 512, "triggers": [
            {"id": "t", "secret": "k", "match": {"jsonpath": "$.a", "exists": true},
             "action": {"agent_id": "a", "inputs": {"a": "{{ payload.a }}", "all": {"jsonpath": "$..*"},
               "n": {"jsonpath": "$.n", "first": true, "type": "integer", "default": 0}}}},
            {"id": "g", "source": "github", "secret": "k", "action": {"agent_id": "a"}}]}"#;
        match plan::from_json(cfg, &|_| None, NOW) {
            Ok(Compiled::Inbound(p)) => Some(Arc::new(p)),
            _ => None,
        }
    })
    .clone()
}

/// The whole inbound stream over an in-memory host: the first line is the
/// path, the next lines headers (`name: value`), then a blank line and the
/// body. When the body is signed correctly half the time (the fuzzer cannot
/// forge HMACs), deeper stages are reached too.
pub fn inbound(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let path = lines.next().unwrap_or("/");
    let mut headers: Vec<(String, String)> = vec![(":method".into(), "POST".into()), (":path".into(), path.into())];
    headers
        .extend(lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().into())));
    if data.first().is_some_and(|b| b % 2 == 0) {
        let sig = scheme::sign_generic(&Key::hmac_sha256("k", b"k"), NOW, body.as_bytes()).unwrap_or_default();
        headers.push(("content-type".into(), "application/json".into()));
        headers.push(("x-combo-timestamp".into(), NOW.to_string()));
        headers.push(("x-combo-signature".into(), sig));
    }
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut host = MemoryHost::new(&pairs, body.as_bytes(), NOW);
    host.store = store();
    host.response_status = Some(200);
    let len = host.body.len();
    let Some(plan) = fuzz_plan() else { return };
    let mut s = Stream::new(host, Inbound::new(plan));
    let first = s.on_request_headers(false);
    let then = s.on_request_body(len, true);
    s.on_response_headers();
    s.on_done();
    let h = s.host();
    // Invariants: an answered stream paused; a 5xx only from the store or host; a
    // forwarded one carries every annotation.
    if let Some(r) = &h.reply {
        assert!(first == Action::Pause || then == Action::Pause);
        assert!(r.status < 500, "no input gets a 5xx: {}", r.status);
    } else if h.header("x-combo-trigger-id").is_some() {
        assert!(h.header("x-combo-agent-id").is_some() && h.header("x-combo-delivery-id").is_some());
    }
}

/// The native module's exported hooks, called as Envoy calls them (the fake
/// Envoy of `fake-envoy` on Envoy's side), on the same input as `inbound`:
/// the body arrives in two chunks, and the same invariants hold.
#[cfg(feature = "fake-envoy")]
pub fn native_hooks(data: &[u8]) {
    use crate::adapter::envoy_module::{drive as hooks, fake_envoy::FakeStream};

    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let path = lines.next().unwrap_or("/");
    let mut headers: Vec<(String, Vec<u8>)> =
        vec![(":method".into(), b"POST".to_vec()), (":path".into(), path.as_bytes().to_vec())];
    headers.extend(
        lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec())),
    );
    if data.first().is_some_and(|b| b % 2 == 0) {
        let now = hooks::now();
        let sig = scheme::sign_generic(&Key::hmac_sha256("k", b"k"), now, body.as_bytes()).unwrap_or_default();
        headers.push(("content-type".into(), b"application/json".to_vec()));
        headers.push(("x-combo-timestamp".into(), now.to_string().into_bytes()));
        headers.push(("x-combo-signature".into(), sig.into_bytes()));
    }
    let (config, fake) = hooks::fuzz_config();
    let mut stream = FakeStream::new(fake);
    stream.request_headers = headers;
    stream.response_headers = vec![(":status".into(), b"200".to_vec())];
    let answers = hooks::run(config, &mut stream, body.as_bytes());
    if let Some(r) = &stream.reply {
        assert!(answers.contains(&hooks::STOP), "answered yet continued: {answers:?}");
        assert!(r.status < 500, "no input gets a 5xx: {}", r.status);
        assert!(stream.header("x-combo-agent-id").is_none(), "a refused delivery was annotated");
    } else if answers.last() == Some(&hooks::CONTINUE) && stream.header("x-combo-trigger-id").is_some() {
        assert!(stream.header("x-combo-agent-id").is_some() && stream.header("x-combo-delivery-id").is_some());
        assert_eq!(stream.filter_state.len(), 1, "one audit record");
    }
}

fn store() -> FaultyStore {
    thread_local! {
        static STORE: FaultyStore = {
            let s = FaultyStore::default();
            crate::rules::replay::create_buckets(&s);
            s
        };
    }
    STORE.with(FaultyStore::clone)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pipeline_plan_compiles() {
        assert!(super::fuzz_plan().is_some());
    }
}
