//! `impl Host` over the dynamic-module ABI. Every call's failure is a value;
//! nothing here decides anything.

use std::sync::Arc;

use super::config::FilterConfig;
use super::ffi::{self, EnvoyBuffer, EnvoyHttpHeader, FilterEnvoy, ModuleBuffer, ModuleHttpHeader};
use crate::contract::metrics::Counter;
use crate::host::memory::MemoryStore;
use crate::host::{Callout, CalloutResponse, Host, HostError, Level, Peer, SharedStore, StoreError};
use crate::plan::inbound::Stage;

/// The audit record's filter-state key: the name the .wasm's record has in
/// Envoy (`wasm.` + key), so one access-log format serves both builds.
const AUDIT_FILTER_STATE: &str = "wasm.combo_webhook_audit";

pub(super) struct NativeHost {
    filter: FilterEnvoy,
    config: Arc<FilterConfig>,
    store: &'static MemoryStore,
    /// Set while Envoy runs the request-body hook: only then does the
    /// latest chunk live outside the buffered body.
    pub(super) in_body_hook: bool,
    /// The answer of the callout being delivered (`on_http_callout_done`).
    pub(super) callout: Option<CalloutResponse>,
    /// Envoy's callout ids; a stream's token is the position plus one.
    callouts: Vec<u64>,
    /// Request headers changed: Envoy must pick the route again (the
    /// annotations route the delivery), once, when the hook returns.
    headers_changed: bool,
    /// Always `Full` outside bench builds.
    #[cfg_attr(not(feature = "bench-stages"), allow(dead_code))]
    stage: Stage,
}

/// Bytes Envoy lent for the running hook.
///
/// # Safety
/// `b` comes from Envoy and is valid until the hook returns.
unsafe fn lent(b: EnvoyBuffer) -> &'static [u8] {
    if b.ptr.is_null() || b.length == 0 {
        return &[];
    }
    std::slice::from_raw_parts(b.ptr, b.length)
}

impl NativeHost {
    pub(super) fn new(
        filter: FilterEnvoy,
        config: Arc<FilterConfig>,
        store: &'static MemoryStore,
        stage: Stage,
    ) -> Self {
        NativeHost {
            filter,
            config,
            store,
            in_body_hook: false,
            callout: None,
            callouts: Vec::new(),
            headers_changed: false,
            stage,
        }
    }

    #[cfg(feature = "bench-stages")]
    fn skips(&self, stage: Stage) -> bool {
        self.stage < stage
    }

    #[cfg(not(feature = "bench-stages"))]
    fn skips(&self, _stage: Stage) -> bool {
        false
    }

    fn attribute(&self, id: u32) -> Option<String> {
        let mut out = EnvoyBuffer { ptr: std::ptr::null(), length: 0 };
        // SAFETY: `filter` is live for the stream; `out` is a valid pointer.
        let ok =
            unsafe { ffi::envoy_dynamic_module_callback_http_filter_get_attribute_string(self.filter, id, &mut out) };
        if !ok {
            return None;
        }
        // SAFETY: Envoy lent `out` for this hook; it is copied at once.
        let bytes = unsafe { lent(out) };
        String::from_utf8(bytes.to_vec()).ok().filter(|s| !s.is_empty())
    }

    fn body_size(&self, kind: u32) -> usize {
        // SAFETY: `filter` is live for the stream.
        unsafe { ffi::envoy_dynamic_module_callback_http_get_body_size(self.filter, kind) }
    }

    /// The latest chunk is not yet part of the buffered body (Envoy moves
    /// it there when the hook returns).
    fn received_apart(&self) -> bool {
        // SAFETY: `filter` is live for the stream.
        self.in_body_hook
            && !unsafe { ffi::envoy_dynamic_module_callback_http_received_buffered_request_body(self.filter) }
    }

    /// Everything buffered so far, the latest chunk included.
    pub(super) fn buffered_len(&self) -> usize {
        let received = if self.received_apart() { self.body_size(ffi::RECEIVED_REQUEST_BODY) } else { 0 };
        self.body_size(ffi::BUFFERED_REQUEST_BODY).saturating_add(received)
    }

    fn append_chunks(&self, kind: u32, out: &mut Vec<u8>, limit: usize) -> Result<(), HostError> {
        // SAFETY: `filter` is live; the vector holds `n` buffers as Envoy asks.
        let n = unsafe { ffi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.filter, kind) };
        if n == 0 {
            return Ok(());
        }
        let mut chunks = vec![EnvoyBuffer { ptr: std::ptr::null(), length: 0 }; n];
        if !unsafe { ffi::envoy_dynamic_module_callback_http_get_body_chunks(self.filter, kind, chunks.as_mut_ptr()) } {
            return Err(HostError);
        }
        for c in chunks {
            let room = limit.saturating_sub(out.len());
            // SAFETY: lent for this hook, copied at once.
            let bytes = unsafe { lent(c) };
            out.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        Ok(())
    }

    /// Has Envoy recompute the route after the hook changed request headers
    /// (the .wasm host does this on every header write).
    pub(super) fn refresh_route(&mut self) {
        if std::mem::take(&mut self.headers_changed) {
            // SAFETY: `filter` is live.
            unsafe { ffi::envoy_dynamic_module_callback_http_clear_route_cache(self.filter) };
        }
    }

    /// The stream token of Envoy's callout `id`.
    pub(super) fn callout_token(&self, id: u64) -> Option<u32> {
        let at = self.callouts.iter().position(|c| *c == id)?;
        u32::try_from(at + 1).ok()
    }

    pub(super) fn log_at(level: Level, message: &str) {
        let level = native_level(level);
        // SAFETY: plain calls with a lent buffer.
        unsafe {
            if ffi::envoy_dynamic_module_callback_log_enabled(level) {
                ffi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes()));
            }
        }
    }
}

pub(super) fn native_level(level: Level) -> u32 {
    match level {
        Level::Debug => ffi::LOG_DEBUG,
        Level::Info => ffi::LOG_INFO,
        Level::Warn => ffi::LOG_WARN,
        Level::Error => ffi::LOG_ERROR,
    }
}

fn header(name: &str, value: &str) -> ModuleHttpHeader {
    ModuleHttpHeader {
        key_ptr: name.as_ptr(),
        key_length: name.len(),
        value_ptr: value.as_ptr(),
        value_length: value.len(),
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
        #[allow(clippy::panic)]
        if super::fake_envoy::PANIC_ON_HEADERS.with(|p| p.replace(false)) {
            panic!("injected by the test");
        }
        // SAFETY: `filter` is live; the vector holds `n` entries as Envoy asks.
        let n = unsafe { ffi::envoy_dynamic_module_callback_http_get_headers_size(self.filter, ffi::REQUEST_HEADER) };
        let empty =
            EnvoyHttpHeader { key_ptr: std::ptr::null(), key_length: 0, value_ptr: std::ptr::null(), value_length: 0 };
        let mut raw = vec![empty; n];
        if n > 0
            && !unsafe {
                ffi::envoy_dynamic_module_callback_http_get_headers(self.filter, ffi::REQUEST_HEADER, raw.as_mut_ptr())
            }
        {
            return Err(HostError);
        }
        Ok(raw
            .into_iter()
            .map(|h| {
                // SAFETY: lent for this hook, copied at once.
                let (k, v) = unsafe {
                    (
                        lent(EnvoyBuffer { ptr: h.key_ptr, length: h.key_length }),
                        lent(EnvoyBuffer { ptr: h.value_ptr, length: h.value_length }),
                    )
                };
                (String::from_utf8_lossy(k).to_ascii_lowercase(), v.to_vec())
            })
            .collect())
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        // SAFETY: `filter` is live; both buffers outlive the call.
        let ok = unsafe {
            ffi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                ffi::REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
        self.headers_changed = true;
        ok.then_some(()).ok_or(HostError)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        // SAFETY: as above; a null value removes the header.
        let ok = unsafe {
            ffi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                ffi::REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::null(),
            )
        };
        self.headers_changed = true;
        ok.then_some(()).ok_or(HostError)
    }

    fn request_body(&mut self, len: usize) -> Result<Vec<u8>, HostError> {
        let mut body = Vec::with_capacity(len);
        if len == 0 {
            return Ok(body);
        }
        self.append_chunks(ffi::BUFFERED_REQUEST_BODY, &mut body, len)?;
        if self.received_apart() {
            self.append_chunks(ffi::RECEIVED_REQUEST_BODY, &mut body, len)?;
        }
        Ok(body)
    }

    fn replace_request_body(&mut self, _old_len: usize, body: &[u8]) -> Result<(), HostError> {
        let buffered = self.body_size(ffi::BUFFERED_REQUEST_BODY);
        let received_apart = self.received_apart();
        // SAFETY: `filter` is live; `body` outlives the call.
        let ok = unsafe {
            let mut ok = buffered == 0
                || ffi::envoy_dynamic_module_callback_http_drain_body(
                    self.filter,
                    ffi::BUFFERED_REQUEST_BODY,
                    buffered,
                );
            if received_apart {
                let received = self.body_size(ffi::RECEIVED_REQUEST_BODY);
                ok = ok
                    && (received == 0
                        || ffi::envoy_dynamic_module_callback_http_drain_body(
                            self.filter,
                            ffi::RECEIVED_REQUEST_BODY,
                            received,
                        ));
            }
            // In the body hook the chunk in flight is what Envoy sends on.
            let target = if received_apart { ffi::RECEIVED_REQUEST_BODY } else { ffi::BUFFERED_REQUEST_BODY };
            ok && ffi::envoy_dynamic_module_callback_http_append_body(self.filter, target, ModuleBuffer::of(body))
        };
        ok.then_some(()).ok_or(HostError)
    }

    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let headers: Vec<ModuleHttpHeader> = headers.iter().map(|(k, v)| header(k, v)).collect();
        // SAFETY: `filter` is live; every buffer outlives the call.
        unsafe {
            ffi::envoy_dynamic_module_callback_http_send_response(
                self.filter,
                status,
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            );
        }
        Ok(())
    }

    fn response_status(&mut self) -> Option<u32> {
        let mut out = EnvoyBuffer { ptr: std::ptr::null(), length: 0 };
        // SAFETY: `filter` is live; `out` is valid; the count pointer may be null.
        let ok = unsafe {
            ffi::envoy_dynamic_module_callback_http_get_header(
                self.filter,
                ffi::RESPONSE_HEADER,
                ModuleBuffer::of(b":status"),
                &mut out,
                0,
                std::ptr::null_mut(),
            )
        };
        if !ok {
            return None;
        }
        // SAFETY: lent for this hook.
        std::str::from_utf8(unsafe { lent(out) }).ok()?.parse().ok()
    }

    fn clock_nanos(&mut self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }

    fn source_address(&mut self) -> Option<String> {
        self.attribute(ffi::ATTRIBUTE_SOURCE_ADDRESS)
    }

    fn peer_certificate(&mut self) -> Option<Peer> {
        let mut mtls = false;
        // SAFETY: `filter` is live; `mtls` is a valid pointer.
        let ok = unsafe {
            ffi::envoy_dynamic_module_callback_http_filter_get_attribute_bool(
                self.filter,
                ffi::ATTRIBUTE_CONNECTION_MTLS,
                &mut mtls,
            )
        };
        if !ok || !mtls {
            return None;
        }
        Some(Peer {
            uri_sans: self.attribute(ffi::ATTRIBUTE_URI_SAN_PEER_CERTIFICATE).into_iter().collect(),
            dns_sans: self.attribute(ffi::ATTRIBUTE_DNS_SAN_PEER_CERTIFICATE).into_iter().collect(),
            subject: self.attribute(ffi::ATTRIBUTE_SUBJECT_PEER_CERTIFICATE),
        })
    }

    fn count(&mut self, counter: Counter) {
        if self.skips(Stage::Metrics) {
            return;
        }
        if let Some(Some(id)) = self.config.metrics.counters.get(counter.index()) {
            // SAFETY: `filter` is live; no labels.
            unsafe {
                ffi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    self.filter,
                    *id,
                    std::ptr::null(),
                    0,
                    1,
                );
            }
        }
    }

    fn observe_filter_us(&mut self, us: u64) {
        if self.skips(Stage::Metrics) {
            return;
        }
        if let Some(id) = self.config.metrics.filter_us {
            // SAFETY: `filter` is live; no labels.
            unsafe {
                ffi::envoy_dynamic_module_callback_http_filter_record_histogram_value(
                    self.filter,
                    id,
                    std::ptr::null(),
                    0,
                    us,
                );
            }
        }
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        if self.skips(Stage::Audit) {
            return Ok(());
        }
        let key = if key == crate::contract::audit::FILTER_STATE_KEY { AUDIT_FILTER_STATE } else { key };
        // SAFETY: `filter` is live; both buffers outlive the call.
        let ok = unsafe {
            ffi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.filter,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value),
            )
        };
        ok.then_some(()).ok_or(HostError)
    }

    fn log_enabled(&self, level: Level) -> bool {
        // SAFETY: a plain call.
        !self.skips(Stage::Audit) && unsafe { ffi::envoy_dynamic_module_callback_log_enabled(native_level(level)) }
    }

    fn log(&mut self, level: Level, message: &str) {
        if !self.skips(Stage::Audit) {
            NativeHost::log_at(level, message);
        }
    }

    fn http_call(&mut self, call: &Callout) -> Result<u32, HostError> {
        let length = call.body.len().to_string();
        let headers = [
            header(":method", "POST"),
            header(":path", call.path),
            header(":authority", &call.authority),
            header("host", &call.authority),
            header("content-type", "application/json"),
            header("content-length", &length),
        ];
        let mut id: u64 = 0;
        // SAFETY: `filter` is live; every buffer outlives the call.
        let result = unsafe {
            ffi::envoy_dynamic_module_callback_http_filter_http_callout(
                self.filter,
                &mut id,
                ModuleBuffer::of(call.cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(&call.body),
                call.timeout_ms,
            )
        };
        if result != ffi::CALLOUT_SUCCESS {
            return Err(HostError);
        }
        // The stream's tokens are u32, Envoy's ids u64 of its choosing.
        self.callouts.push(id);
        u32::try_from(self.callouts.len()).map_err(|_| HostError)
    }

    fn callout_response(&mut self, _body_size: usize) -> CalloutResponse {
        self.callout.take().unwrap_or_default()
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        self.refresh_route();
        // SAFETY: `filter` is live.
        unsafe { ffi::envoy_dynamic_module_callback_http_filter_continue_decoding(self.filter) };
        Ok(())
    }

    fn resume_response(&mut self) -> Result<(), HostError> {
        // SAFETY: `filter` is live.
        unsafe { ffi::envoy_dynamic_module_callback_http_filter_continue_encoding(self.filter) };
        Ok(())
    }
}
