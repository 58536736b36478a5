//! The exported hooks, called as Envoy calls them, against the fake Envoy.

use super::exports::*;
use super::fake_envoy::{FakeConfig, FakeStream, LOGS, PANIC_AT};
use super::*;
use crate::rules::scheme::{sign_generic, Key};

const CONFIG: &str = r#"{"max_body_bytes": 64, "triggers": [{"id": "t1", "secret": "k",
    "action": {"agent_id": "agent-a", "inputs": {"id": "{{ payload.id }}"}}}]}"#;

fn configure(fake: &mut FakeConfig, json: &str) -> *const c_void {
    drive::configure(fake, json)
}

fn now() -> i64 {
    drive::now()
}

fn request(stream: &mut FakeStream, secret: &[u8], body: &str) {
    let ts = now();
    let sig = sign_generic(&Key::hmac_sha256("k", secret), ts, body.as_bytes()).unwrap();
    for (k, v) in [
        (":method", "POST"),
        (":path", "/v1/webhook/generic/t1"),
        ("content-type", "application/json"),
        ("x-combo-signature", sig.as_str()),
        ("x-combo-timestamp", ts.to_string().as_str()),
    ] {
        stream.request_headers.push((k.to_string(), v.as_bytes().to_vec()));
    }
}

fn run(config: *const c_void, stream: &mut FakeStream, body: &str) -> Vec<u32> {
    drive::run(config, stream, body.as_bytes())
}

#[test]
fn a_signed_delivery_is_annotated_and_routed_again() {
    let mut fake = FakeConfig::default();
    let config = configure(&mut fake, CONFIG);
    assert!(!config.is_null());
    let mut stream = FakeStream::new(&fake);
    let body = r#"{"id": "abc"}"#;
    request(&mut stream, b"k", body);
    assert_eq!(run(config, &mut stream, body), [ffi::STOP, ffi::STOP, ffi::CONTINUE]);
    assert_eq!(stream.reply, None);
    assert_eq!(stream.header("x-combo-agent-id").as_deref(), Some("agent-a"));
    assert_eq!(stream.header("x-combo-trigger-id").as_deref(), Some("t1"));
    assert!(stream.route_cleared >= 1, "Envoy must pick the agent's route");
    // The whole body, both chunks, went through untouched.
    assert_eq!(String::from_utf8_lossy(&[stream.buffered.clone(), stream.received.clone()].concat()), body);
    let (key, record) = &stream.filter_state[0];
    assert_eq!(key, "wasm.combo_webhook_audit");
    assert!(String::from_utf8_lossy(record).contains(r#""verdict":"accepted""#));
    let accepted = fake.metrics.iter().position(|m| m == "combo_webhook_deliveries_accepted").unwrap() + 1;
    assert_eq!(stream.counters, [(accepted, 1)]);
    assert_eq!(stream.histograms.len(), 1);
    unsafe { envoy_dynamic_module_on_http_filter_config_destroy(config) };
}

#[test]
fn a_forged_delivery_is_answered_401_and_never_continues() {
    let mut fake = FakeConfig::default();
    let config = configure(&mut fake, CONFIG);
    let mut stream = FakeStream::new(&fake);
    let body = r#"{"id": "abc"}"#;
    request(&mut stream, b"not-the-key", body);
    let answers = run(config, &mut stream, body);
    assert!(answers.iter().all(|a| *a == ffi::STOP), "{answers:?}");
    let reply = stream.reply.clone().unwrap();
    assert_eq!((reply.status, reply.details.as_str()), (401, "combo_webhook_signature_mismatch"));
    assert_eq!(stream.header("x-combo-agent-id"), None);
    unsafe { envoy_dynamic_module_on_http_filter_config_destroy(config) };
}

#[test]
fn a_refused_header_write_fails_closed() {
    let mut fake = FakeConfig::default();
    let config = configure(&mut fake, CONFIG);
    let mut stream = FakeStream::new(&fake);
    stream.refuse_writes = true;
    let body = r#"{"id": "refused-write"}"#;
    request(&mut stream, b"k", body);
    assert_eq!(run(config, &mut stream, body).last(), Some(&ffi::STOP));
    assert_eq!(stream.reply.unwrap().status, 500);
    unsafe { envoy_dynamic_module_on_http_filter_config_destroy(config) };
}

#[test]
fn a_panic_in_a_hook_is_caught_and_the_stream_answers_500_once() {
    let mut fake = FakeConfig::default();
    let config = configure(&mut fake, CONFIG);
    let mut stream = FakeStream::new(&fake);
    let body = r#"{"id": "panics"}"#;
    request(&mut stream, b"k", body);
    PANIC_AT.with(|p| p.set(Some("request")));
    let answers = run(config, &mut stream, body);
    assert_eq!(answers, [ffi::STOP, ffi::STOP, ffi::STOP]);
    let reply = stream.reply.clone().unwrap();
    assert_eq!((reply.status, reply.details.as_str()), (500, "combo_webhook_host_error"));
    assert_eq!(stream.replies, 1, "answered once, whatever hooks come after");
    assert_eq!(stream.resets, 0);
    assert_eq!(stream.header("x-combo-agent-id"), None);
    assert!(LOGS.with(|l| l.borrow().iter().any(|(_, m)| m.contains("a hook panicked"))));
    unsafe { envoy_dynamic_module_on_http_filter_config_destroy(config) };
}

#[test]
fn a_panic_in_a_response_hook_resets_the_stream_and_answers_nothing() {
    let mut fake = FakeConfig::default();
    let config = configure(&mut fake, CONFIG);
    let mut stream = FakeStream::new(&fake);
    let body = r#"{"id": "abd"}"#;
    request(&mut stream, b"k", body);
    PANIC_AT.with(|p| p.set(Some("response")));
    let answers = run(config, &mut stream, body);
    assert_eq!(answers.last(), Some(&ffi::CONTINUE), "the request went upstream: {answers:?}");
    assert_eq!((stream.replies, stream.resets), (0, 1), "a response under way is cut, never replaced");
    assert!(LOGS.with(|l| l.borrow().iter().any(|(_, m)| m.contains("a hook panicked"))));
    unsafe { envoy_dynamic_module_on_http_filter_config_destroy(config) };
}

#[test]
fn an_invalid_config_is_refused_with_its_field_in_the_log() {
    let mut fake = FakeConfig::default();
    let config = configure(&mut fake, r#"{"triggers": [{"id": "t1", "action": {"agent_id": "a"}}]}"#);
    assert!(config.is_null());
    let logs = LOGS.with(|l| l.borrow().clone());
    assert!(
        logs.iter()
            .any(|(level, m)| *level == ffi::LOG_ERROR && m.contains("triggers[0].secrets: a secret is required")),
        "{logs:?}"
    );
}

#[test]
fn sds_secrets_are_subscribed_once_and_a_rotation_recompiles() {
    let mut fake = FakeConfig { secrets: vec![("combo".into(), b"old\n".to_vec())], ..FakeConfig::default() };
    let json = r#"{"triggers": [{"id": "t1", "secrets": [{"sds": "combo"}], "action": {"agent_id": "a"}},
        {"id": "t2", "secrets": [{"sds": "combo"}], "action": {"agent_id": "b"}}]}"#;
    let config = configure(&mut fake, json);
    assert_eq!(fake.subscribed, ["combo"]);
    let deliver = |fake: &FakeConfig, secret: &[u8]| {
        let mut stream = FakeStream::new(fake);
        request(&mut stream, secret, "{}");
        run(config, &mut stream, "{}");
        stream.reply.map_or(200, |r| r.status)
    };
    assert_eq!((deliver(&fake, b"old"), deliver(&fake, b"new")), (200, 401));
    let recompiles = || LOGS.with(|l| l.borrow().iter().filter(|(_, m)| m.contains("SDS secrets changed")).count());
    assert_eq!(recompiles(), 0, "the plan was compiled with what SDS held");
    fake.secrets[0].1 = b"new\nold\n".to_vec();
    assert_eq!((deliver(&fake, b"old"), deliver(&fake, b"new")), (200, 200));
    fake.secrets[0].1 = b"new".to_vec();
    assert_eq!((deliver(&fake, b"old"), deliver(&fake, b"new")), (401, 200));
    assert_eq!(recompiles(), 2, "once per rotation");
    unsafe { envoy_dynamic_module_on_http_filter_config_destroy(config) };
}

#[test]
fn a_callout_answer_reaches_the_stream_by_envoy_id() {
    let mut fake = FakeConfig::default();
    let json = r#"{"replay": {"store": "etcd", "etcd": {"cluster": "etcd"}},
        "triggers": [{"id": "t1", "secret": "k", "action": {"agent_id": "a"}}]}"#;
    let config = configure(&mut fake, json);
    assert!(!config.is_null(), "{:?}", LOGS.with(|l| l.borrow().clone()));
    let mut stream = FakeStream::new(&fake);
    request(&mut stream, b"k", "{}");
    let envoy = stream.ptr();
    unsafe {
        let filter = envoy_dynamic_module_on_http_filter_new(config, envoy);
        assert_eq!(envoy_dynamic_module_on_http_filter_request_headers(envoy, filter, false), ffi::STOP);
        (*envoy.cast::<FakeStream>()).received = b"{}".to_vec();
        assert_eq!(envoy_dynamic_module_on_http_filter_request_body(envoy, filter, true), ffi::STOP);
        let s = &*envoy.cast::<FakeStream>();
        assert_eq!(s.callouts.len(), 1, "the replay store is asked first");
        // Envoy's answer: the store is down (a reset): the delivery fails closed.
        envoy_dynamic_module_on_http_filter_http_callout_done(
            envoy,
            filter,
            1_000_000_000_001,
            1,
            std::ptr::null(),
            0,
            std::ptr::null(),
            0,
        );
        let s = &*envoy.cast::<FakeStream>();
        assert_eq!(s.reply.as_ref().map(|r| r.status), Some(503));
        assert_eq!(s.continued, 0);
        envoy_dynamic_module_on_http_filter_destroy(filter);
        envoy_dynamic_module_on_http_filter_config_destroy(config);
    }
}

#[test]
fn the_abi_version_is_the_pinned_one() {
    let v = unsafe { std::ffi::CStr::from_ptr(envoy_dynamic_module_on_program_init()) };
    assert_eq!(v.to_str().unwrap(), "v0.2.0");
}

/// Envoy 1.38 and 1.39 destroy the filter inside the hook whose local reply
/// they send: the filter lives until that hook returns, and nothing calls
/// into Envoy for the stream after the destroy.
#[test]
fn a_filter_destroyed_inside_its_own_reply_is_freed_after_the_hook() {
    let mut fake = FakeConfig::default();
    let config = configure(&mut fake, CONFIG);
    let mut stream = FakeStream::new(&fake);
    request(&mut stream, b"not-the-key", r#"{"id": "x"}"#);
    let envoy = stream.ptr();
    unsafe {
        let filter = envoy_dynamic_module_on_http_filter_new(config, envoy);
        let s = &mut *envoy.cast::<FakeStream>();
        s.destroy_on_reply = Some(filter);
        s.received = br#"{"id": "x"}"#.to_vec();
        assert_eq!(envoy_dynamic_module_on_http_filter_request_headers(envoy, filter, false), ffi::STOP);
        assert_eq!(envoy_dynamic_module_on_http_filter_request_body(envoy, filter, true), ffi::STOP);
        let s = &*envoy.cast::<FakeStream>();
        assert_eq!(s.reply.as_ref().map(|r| r.status), Some(401));
        assert!(s.destroyed, "the fake destroyed the filter inside the reply");
        assert_eq!(s.live_after_destroy, Some(1), "the destroy inside the hook left the filter the hook runs on");
        assert_eq!(LIVE_SLOTS.with(std::cell::Cell::get), 0, "freed when the hook returned");
        assert_eq!(s.calls_after_destroy, 0, "no callback after the destroy (route refresh above all)");
        envoy_dynamic_module_on_http_filter_config_destroy(config);
    }
}

/// On an Envoy without the optional callbacks (1.38, 1.39) the module says
/// the older ABI, a configuration with `sds:` secrets is refused naming the
/// field, and one without runs.
#[test]
fn an_envoy_without_sds_refuses_sds_secrets_by_field_and_runs_the_rest() {
    super::fake_envoy::OLD_ENVOY.with(|o| o.set(true));
    let abi = unsafe { std::ffi::CStr::from_ptr(envoy_dynamic_module_on_program_init()) };
    assert_eq!(abi.to_bytes_with_nul(), ffi::ABI_VERSION_WITHOUT_SDS);
    LOGS.with(|l| l.borrow_mut().clear());
    let mut fake = FakeConfig::default();
    let sds = r#"{"triggers": [{"id": "t1", "secrets": [{"sds": "combo_hmac"}], "action": {"agent_id": "a"}}]}"#;
    assert!(configure(&mut fake, sds).is_null(), "refused");
    let logged = LOGS.with(|l| l.borrow().iter().map(|(_, m)| m.clone()).collect::<Vec<_>>().join("\n"));
    assert!(logged.contains("triggers[0].secrets[0].sds: this Envoy has no SDS callbacks"), "{logged}");
    assert!(fake.subscribed.is_empty(), "nothing subscribed");
    let mut fake = FakeConfig::default();
    let config = configure(&mut fake, CONFIG);
    assert!(!config.is_null());
    assert!(fake.gauges.is_empty(), "no config-time gauge without its callback");
    let mut stream = FakeStream::new(&fake);
    // A body of its own: the replay store is the process's, shared by tests.
    let body = r#"{"id": "on-an-older-envoy"}"#;
    request(&mut stream, b"k", body);
    assert_eq!(run(config, &mut stream, body), [ffi::STOP, ffi::STOP, ffi::CONTINUE]);
    assert_eq!(stream.header("x-combo-agent-id").as_deref(), Some("agent-a"));
    unsafe { envoy_dynamic_module_on_http_filter_config_destroy(config) };
    super::fake_envoy::OLD_ENVOY.with(|o| o.set(false));
    let abi = unsafe { std::ffi::CStr::from_ptr(envoy_dynamic_module_on_program_init()) };
    assert_eq!(abi.to_bytes_with_nul(), ffi::ABI_VERSION);
}

/// Envoy 1.38 and 1.39 call the hooks with a null filter when
/// `on_http_filter_new` failed: the request is refused, never passed.
#[test]
fn a_stream_without_a_filter_is_refused_not_passed() {
    let fake = FakeConfig::default();
    let mut stream = FakeStream::new(&fake);
    request(&mut stream, b"k", "{}");
    let envoy = stream.ptr();
    let null = std::ptr::null();
    unsafe {
        assert_eq!(envoy_dynamic_module_on_http_filter_request_headers(envoy, null, false), ffi::STOP);
        assert_eq!(envoy_dynamic_module_on_http_filter_request_body(envoy, null, true), ffi::STOP);
        assert_eq!(envoy_dynamic_module_on_http_filter_response_headers(envoy, null, false), ffi::CONTINUE);
    }
    let s = unsafe { &*envoy.cast::<FakeStream>() };
    let reply = s.reply.clone().unwrap();
    assert_eq!((reply.status, reply.details.as_str()), (500, "combo_webhook_host_error"));
    assert_eq!(s.continued, 0);
}
