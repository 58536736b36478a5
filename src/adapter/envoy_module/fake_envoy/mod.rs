//! Envoy's side of the dynamic-module ABI, in Rust, for unit tests and the
//! `native_hooks` fuzz target only (`cfg(test)` / `fake-envoy`; never in a
//! shipped build, where these symbols come from Envoy). The pointers Envoy
//! would pass are `FakeConfig` and `FakeStream` values; the exported hooks run
//! unchanged against them (`callbacks.rs` answers their calls).

pub(super) mod callbacks;

use std::ffi::c_void;

use super::ffi;

/// The filter config Envoy owns: SDS secrets and defined metrics.
#[derive(Debug, Default)]
pub struct FakeConfig {
    /// Generic secrets by name; `subscribed` lists names in index order.
    pub secrets: Vec<(String, Vec<u8>)>,
    pub subscribed: Vec<String>,
    pub refuse_subscriptions: bool,
    pub metrics: Vec<String>,
    pub gauges: Vec<(usize, u64)>,
}

/// A local reply the module sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub details: String,
}

/// One HTTP stream as Envoy holds it.
#[derive(Debug, Default)]
pub struct FakeStream {
    pub config: *const FakeConfig,
    pub request_headers: Vec<(String, Vec<u8>)>,
    pub response_headers: Vec<(String, Vec<u8>)>,
    /// What earlier body hooks buffered, and the chunk of the running hook.
    pub buffered: Vec<u8>,
    pub received: Vec<u8>,
    pub reply: Option<SentReply>,
    pub filter_state: Vec<(String, Vec<u8>)>,
    pub counters: Vec<(usize, u64)>,
    pub histograms: Vec<(usize, u64)>,
    pub route_cleared: u32,
    pub continued: u32,
    pub continued_response: u32,
    pub callouts: Vec<(String, Vec<u8>)>,
    pub attributes: Vec<(u32, String)>,
    /// Stream resets the module asked for.
    pub resets: u32,
    /// Local replies sent (`reply` is the last one).
    pub replies: u32,
    pub mtls: bool,
    /// Hooks refuse (return false) every header write.
    pub refuse_writes: bool,
    /// The module's filter, destroyed inside the next local reply (as Envoy
    /// 1.38 and 1.39 do); then `destroyed`, and every later callback counted.
    pub destroy_on_reply: Option<*const c_void>,
    pub destroyed: bool,
    pub calls_after_destroy: u32,
    /// Tests: the module's live filters right after that destroy returned.
    pub live_after_destroy: Option<usize>,
}

impl FakeStream {
    /// A stream whose upstream answers on its only try (`via_upstream`).
    pub fn new(config: &FakeConfig) -> Self {
        let attributes = vec![
            (ffi::ATTRIBUTE_RESPONSE_CODE_DETAILS, crate::host::VIA_UPSTREAM.to_string()),
            (ffi::ATTRIBUTE_UPSTREAM_REQUEST_ATTEMPT_COUNT, "1".to_string()),
        ];
        FakeStream { config, attributes, ..FakeStream::default() }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.request_headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn ptr(&mut self) -> *mut c_void {
        (self as *mut FakeStream).cast()
    }
}

thread_local! {
    /// The next read of the request headers (`"request"`) or of the
    /// response status (`"response"`) panics inside the module (the
    /// catch_unwind tests): a bug, which no input may cause.
    pub static PANIC_AT: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
    pub static LOGS: std::cell::RefCell<Vec<(u32, String)>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Play an Envoy older than 1.39: none of the optional callbacks.
    pub static OLD_ENVOY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The optional callbacks this fake Envoy offers: all, or none (`OLD_ENVOY`).
pub fn optional() -> super::ffi::Optional {
    if OLD_ENVOY.with(std::cell::Cell::get) {
        return super::ffi::Optional::default();
    }
    super::ffi::Optional {
        config_set_gauge: Some(callbacks::envoy_dynamic_module_callback_http_filter_config_set_gauge),
        secret_subscribe: Some(callbacks::envoy_dynamic_module_callback_http_filter_config_generic_secret_subscribe),
        config_get_secret: Some(callbacks::envoy_dynamic_module_callback_http_filter_config_get_generic_secret),
        get_secret: Some(callbacks::envoy_dynamic_module_callback_http_filter_get_generic_secret),
    }
}
