//! `impl Host` over the dynamic-module ABI (`abi.rs`). Every call's failure
//! is a value; nothing here decides anything.

use std::sync::Arc;

use super::abi;
use super::ffi::{self, FilterEnvoy};
use crate::adapter::core::Metrics;
use crate::contract::metrics::Counter;
use crate::host::local_store::LocalStore;
use crate::host::{Callout, Host, HostError, Level, LocalReply, Peer, SharedStore, StoreError};

/// The audit record's filter-state key: the name the .wasm's record has in
/// Envoy (`wasm.` + key), so one access-log format serves both builds.
const AUDIT_FILTER_STATE: &str = "wasm.combo_webhook_audit";

pub(super) struct NativeHost {
    filter: FilterEnvoy,
    metrics: Arc<Metrics<usize>>,
    store: &'static LocalStore,
    /// Set while Envoy runs the request-body hook: only then does the
    /// latest chunk live outside the buffered body.
    pub(super) in_body_hook: bool,
    /// Envoy's callout ids; a stream's token is the position plus one.
    callouts: Vec<u64>,
    /// Request headers changed: Envoy must pick the route again (the
    /// annotations route the delivery), once, when the hook returns.
    headers_changed: bool,
}

impl NativeHost {
    pub(super) fn new(filter: FilterEnvoy, metrics: Arc<Metrics<usize>>, store: &'static LocalStore) -> Self {
        NativeHost { filter, metrics, store, in_body_hook: false, callouts: Vec::new(), headers_changed: false }
    }

    /// The latest chunk is not yet part of the buffered body (Envoy moves
    /// it there when the hook returns).
    fn received_apart(&self) -> bool {
        self.in_body_hook && !abi::received_is_buffered(self.filter)
    }

    /// Everything buffered so far, the latest chunk included.
    pub(super) fn buffered_len(&self) -> usize {
        let received = if self.received_apart() { abi::body_size(self.filter, ffi::RECEIVED_REQUEST_BODY) } else { 0 };
        abi::body_size(self.filter, ffi::BUFFERED_REQUEST_BODY).saturating_add(received)
    }

    /// Has Envoy recompute the route after the hook changed request headers
    /// (the .wasm host does this on every header write).
    pub(super) fn refresh_route(&mut self) {
        if std::mem::take(&mut self.headers_changed) {
            abi::clear_route_cache(self.filter);
        }
    }

    /// The stream token of Envoy's callout `id`.
    pub(super) fn callout_token(&self, id: u64) -> Option<u32> {
        let at = self.callouts.iter().position(|c| *c == id)?;
        u32::try_from(at + 1).ok()
    }

    fn set_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.headers_changed = true;
        abi::set_header(self.filter, ffi::REQUEST_HEADER, name, value).then_some(()).ok_or(HostError)
    }
}

impl SharedStore for NativeHost {
    fn store_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        self.store.store_get(key)
    }

    fn store_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.store.store_set(key, value, cas)
    }
}

impl Host for NativeHost {
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        #[cfg(any(test, feature = "fake-envoy"))]
        injected_panic("request");
        abi::headers(self.filter, ffi::REQUEST_HEADER).ok_or(HostError)
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.set_header(name, Some(value))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.set_header(name, None)
    }

    fn request_body(&mut self, len: usize) -> Result<Vec<u8>, HostError> {
        let mut body = Vec::with_capacity(len);
        if len == 0 {
            return Ok(body);
        }
        let ok = abi::read_body(self.filter, ffi::BUFFERED_REQUEST_BODY, &mut body, len)
            && (!self.received_apart() || abi::read_body(self.filter, ffi::RECEIVED_REQUEST_BODY, &mut body, len));
        ok.then_some(body).ok_or(HostError)
    }

    fn replace_request_body(&mut self, _old_len: usize, body: &[u8]) -> Result<(), HostError> {
        let received_apart = self.received_apart();
        let drained = abi::drain_body(self.filter, ffi::BUFFERED_REQUEST_BODY)
            && (!received_apart || abi::drain_body(self.filter, ffi::RECEIVED_REQUEST_BODY));
        // In the body hook the chunk in flight is what Envoy sends on.
        let target = if received_apart { ffi::RECEIVED_REQUEST_BODY } else { ffi::BUFFERED_REQUEST_BODY };
        (drained && abi::append_body(self.filter, target, body)).then_some(()).ok_or(HostError)
    }

    fn send_reply(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        abi::send_response(self.filter, reply.status, &reply.headers, &reply.body, &reply.details);
        Ok(())
    }

    fn response_status(&mut self) -> Option<u32> {
        #[cfg(any(test, feature = "fake-envoy"))]
        injected_panic("response");
        crate::host::parse_status(abi::header_value(self.filter, ffi::RESPONSE_HEADER, ":status")?)
    }

    fn response_code_details(&mut self) -> Option<String> {
        abi::attribute_string(self.filter, ffi::ATTRIBUTE_RESPONSE_CODE_DETAILS)
    }

    fn upstream_attempts(&mut self) -> Option<u64> {
        abi::attribute_int(self.filter, ffi::ATTRIBUTE_UPSTREAM_REQUEST_ATTEMPT_COUNT)
    }

    fn clock_nanos(&mut self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }

    fn source_address(&mut self) -> Option<String> {
        abi::attribute_string(self.filter, ffi::ATTRIBUTE_SOURCE_ADDRESS)
    }

    fn peer_certificate(&mut self) -> Option<Peer> {
        if abi::attribute_bool(self.filter, ffi::ATTRIBUTE_CONNECTION_MTLS) != Some(true) {
            return None;
        }
        let attribute = |id| abi::attribute_string(self.filter, id);
        Some(Peer {
            uri_sans: attribute(ffi::ATTRIBUTE_URI_SAN_PEER_CERTIFICATE).into_iter().collect(),
            dns_sans: attribute(ffi::ATTRIBUTE_DNS_SAN_PEER_CERTIFICATE).into_iter().collect(),
            subject: attribute(ffi::ATTRIBUTE_SUBJECT_PEER_CERTIFICATE),
        })
    }

    fn count(&mut self, counter: Counter) {
        if let Some(id) = self.metrics.counter(counter) {
            abi::increment_counter(self.filter, id);
        }
    }

    fn observe_filter_us(&mut self, us: u64) {
        if let Some(id) = self.metrics.filter_us {
            abi::record_histogram(self.filter, id, us);
        }
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        let key = if key == crate::contract::audit::FILTER_STATE_KEY { AUDIT_FILTER_STATE } else { key };
        abi::set_filter_state(self.filter, key, value).then_some(()).ok_or(HostError)
    }

    fn log_enabled(&self, level: Level) -> bool {
        abi::log_enabled(level)
    }

    fn log(&mut self, level: Level, message: &str) {
        abi::log(level, message);
    }

    fn http_call(&mut self, call: &Callout) -> Result<u32, HostError> {
        let owned = call.headers();
        let headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let id = abi::callout(self.filter, &call.cluster, &headers, &call.body, call.timeout_ms).ok_or(HostError)?;
        // The stream's tokens are u32, Envoy's ids u64 of its choosing.
        self.callouts.push(id);
        u32::try_from(self.callouts.len()).map_err(|_| HostError)
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        self.refresh_route();
        abi::continue_decoding(self.filter);
        Ok(())
    }

    fn resume_response(&mut self) -> Result<(), HostError> {
        abi::continue_encoding(self.filter);
        Ok(())
    }
}

/// Tests only: a panic where the fake Envoy asks for one.
#[cfg(any(test, feature = "fake-envoy"))]
#[allow(clippy::panic)]
fn injected_panic(at: &str) {
    if super::fake_envoy::PANIC_AT.with(|p| p.get() == Some(at)) {
        super::fake_envoy::PANIC_AT.with(|p| p.set(None));
        panic!("injected by the test");
    }
}
