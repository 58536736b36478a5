//! Driving the exported hooks the way Envoy does, against the fake Envoy:
//! shared by the adapter's unit tests and the `native_hooks` fuzz target.
// Test and fuzz support: `config` is always what `configure` returned.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::c_void;
use std::sync::OnceLock;

use super::fake_envoy::{FakeConfig, FakeStream};
use super::ffi::EnvoyBuffer;

pub use super::ffi::{CONTINUE, STOP};

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn buf(b: &[u8]) -> EnvoyBuffer {
    EnvoyBuffer { ptr: b.as_ptr(), length: b.len() }
}

/// `on_http_filter_config_new` on `json`; null when refused.
pub fn configure(fake: &mut FakeConfig, json: &str) -> *const c_void {
    // SAFETY: `fake` is a live FakeConfig, the buffers outlive the call.
    unsafe {
        super::exports::envoy_dynamic_module_on_http_filter_config_new(
            (fake as *mut FakeConfig).cast(),
            buf(b"combo_webhook"),
            buf(json.as_bytes()),
        )
    }
}

/// The fuzz target's configuration, created once and kept for the process.
pub fn fuzz_config() -> (*const c_void, &'static FakeConfig) {
    static CONFIG: OnceLock<(usize, usize)> = OnceLock::new();
    let (config, fake) = *CONFIG.get_or_init(|| {
        let fake: &'static mut FakeConfig = Box::leak(Box::default());
        let json = r#"{"max_body_bytes": 4096, "max_inputs_bytes": 512, "triggers": [
            {"id": "t", "secret": "k", "match": {"jsonpath": "$.a", "exists": true},
             "action": {"agent_id": "a", "inputs": {"a": "{{ payload.a }}", "all": {"jsonpath": "$..*"}}}},
            {"id": "g", "source": "github", "secret": "k", "action": {"agent_id": "a"}}]}"#;
        let config = configure(fake, json);
        assert!(!config.is_null(), "the fuzz configuration compiles");
        (config as usize, fake as *const FakeConfig as usize)
    });
    // SAFETY: both were leaked above and live for the process.
    (config as *const c_void, unsafe { &*(fake as *const FakeConfig) })
}

/// One request through the hooks: headers, the body in two chunks (Envoy
/// moving each paused chunk into the buffered body), response headers,
/// stream complete, destroy. Returns the request hooks' answers.
pub fn run(config: *const c_void, stream: &mut FakeStream, body: &[u8]) -> Vec<u32> {
    let envoy = stream.ptr();
    let mut answers = Vec::new();
    // SAFETY: `envoy` is the live FakeStream for every call; `filter` lives
    // until the destroy hook.
    unsafe {
        let filter = super::exports::envoy_dynamic_module_on_http_filter_new(config, envoy);
        assert!(!filter.is_null());
        answers.push(super::exports::envoy_dynamic_module_on_http_filter_request_headers(
            envoy,
            filter,
            body.is_empty(),
        ));
        if !body.is_empty() {
            let (first, second) = body.split_at(body.len() / 2);
            for (chunk, end) in [(first, false), (second, true)] {
                let s = &mut *envoy.cast::<FakeStream>();
                let received = std::mem::take(&mut s.received);
                s.buffered.extend(received);
                s.received = chunk.to_vec();
                answers.push(super::exports::envoy_dynamic_module_on_http_filter_request_body(envoy, filter, end));
            }
        }
        if answers.last() == Some(&CONTINUE) {
            super::exports::envoy_dynamic_module_on_http_filter_response_headers(envoy, filter, false);
        }
        super::exports::envoy_dynamic_module_on_http_filter_stream_complete(envoy, filter);
        super::exports::envoy_dynamic_module_on_http_filter_destroy(filter);
    }
    answers
}
