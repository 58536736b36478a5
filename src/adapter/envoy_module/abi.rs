//! Safe calls over the declarations in `ffi.rs`: every `unsafe` call into
//! Envoy lives here or, for the calls made at configure time, in
//! `abi_config.rs`, each with the one invariant it relies on. Envoy's
//! pointers (`FilterEnvoy`, `ConfigEnvoy`) are live for the hook that handed
//! them over (a filter's until its destroy hook), and the buffers Envoy lends
//! are copied before the hook returns.

use super::ffi::{self, EnvoyBuffer, EnvoyHttpHeader, FilterEnvoy, ModuleBuffer, ModuleHttpHeader};
use crate::host::Level;

pub(super) const NO_BUFFER: EnvoyBuffer = EnvoyBuffer { ptr: std::ptr::null(), length: 0 };

/// Bytes Envoy lent for the running hook.
pub fn lent<'a>(b: EnvoyBuffer) -> &'a [u8] {
    if b.ptr.is_null() || b.length == 0 {
        return &[];
    }
    // SAFETY: Envoy's buffer, valid for the running hook (module docs).
    unsafe { std::slice::from_raw_parts(b.ptr, b.length) }
}

fn header(name: &str, value: &str) -> ModuleHttpHeader {
    ModuleHttpHeader {
        key_ptr: name.as_ptr(),
        key_length: name.len(),
        value_ptr: value.as_ptr(),
        value_length: value.len(),
    }
}

/// Envoy's number for a log level.
fn level(level: Level) -> u32 {
    match level {
        Level::Debug => ffi::LOG_DEBUG,
        Level::Info => ffi::LOG_INFO,
        Level::Warn => ffi::LOG_WARN,
        Level::Error => ffi::LOG_ERROR,
    }
}

pub fn log(level: Level, message: &str) {
    let level = self::level(level);
    // SAFETY: plain calls; the buffer outlives them.
    unsafe {
        if timed!("log_enabled", 0, ffi::envoy_dynamic_module_callback_log_enabled(level)) {
            timed!(
                "log",
                message.len(),
                ffi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes()))
            );
        }
    }
}

pub fn log_enabled(level: Level) -> bool {
    // SAFETY: a plain call.
    unsafe { timed!("log_enabled", 0, ffi::envoy_dynamic_module_callback_log_enabled(self::level(level))) }
}

// ------------------------------------------------------------ stream time

/// An SDS secret's current value from a stream (empty until delivered).
pub fn secret<'a>(filter: FilterEnvoy, index: usize) -> &'a [u8] {
    let Some(get) = ffi::optional().get_secret else { return &[] };
    let mut out = NO_BUFFER;
    // SAFETY: `filter` is live; `out` is a valid pointer.
    let ok = unsafe { timed!("http_filter_get_secret", 0, get(filter, index, &mut out)) };
    if ok {
        lent(out)
    } else {
        &[]
    }
}

/// Every header of a map: names as Envoy holds them (lowercase), values as bytes.
pub fn headers(filter: FilterEnvoy, kind: u32) -> Option<Vec<(String, Vec<u8>)>> {
    let empty =
        EnvoyHttpHeader { key_ptr: std::ptr::null(), key_length: 0, value_ptr: std::ptr::null(), value_length: 0 };
    // SAFETY: `filter` is live; the vector holds the `n` entries Envoy fills.
    let n = unsafe {
        timed!("http_get_headers_size", 0, ffi::envoy_dynamic_module_callback_http_get_headers_size(filter, kind))
    };
    let mut raw = vec![empty; n];
    if n > 0
        && !unsafe {
            timed!(
                "http_get_headers",
                n,
                ffi::envoy_dynamic_module_callback_http_get_headers(filter, kind, raw.as_mut_ptr())
            )
        }
    {
        return None;
    }
    Some(
        raw.into_iter()
            .map(|h| {
                let k = lent(EnvoyBuffer { ptr: h.key_ptr, length: h.key_length });
                let v = lent(EnvoyBuffer { ptr: h.value_ptr, length: h.value_length });
                (String::from_utf8_lossy(k).to_ascii_lowercase(), v.to_vec())
            })
            .collect(),
    )
}

/// The first value of one header.
pub fn header_value<'a>(filter: FilterEnvoy, kind: u32, name: &str) -> Option<&'a [u8]> {
    let mut out = NO_BUFFER;
    // SAFETY: `filter` is live; `out` is valid; the count pointer may be null.
    let ok = unsafe {
        timed!(
            "http_get_header",
            name.len(),
            ffi::envoy_dynamic_module_callback_http_get_header(
                filter,
                kind,
                ModuleBuffer::of(name.as_bytes()),
                &mut out,
                0,
                std::ptr::null_mut(),
            )
        )
    };
    ok.then(|| lent(out))
}

/// Sets a header, or removes it (`None`).
pub fn set_header(filter: FilterEnvoy, kind: u32, name: &str, value: Option<&str>) -> bool {
    let value = value.map_or(ModuleBuffer::null(), |v| ModuleBuffer::of(v.as_bytes()));
    // SAFETY: `filter` is live; the buffers outlive the call.
    unsafe {
        timed!(
            "http_set_header",
            name.len() + value.length,
            ffi::envoy_dynamic_module_callback_http_set_header(filter, kind, ModuleBuffer::of(name.as_bytes()), value)
        )
    }
}

/// Resets the stream (a local reset): what a response hook can still do.
pub fn reset_stream(filter: FilterEnvoy, details: &str) {
    // SAFETY: `filter` is live; the buffer outlives the call.
    unsafe {
        ffi::envoy_dynamic_module_callback_http_filter_reset_stream(
            filter,
            ffi::RESET_LOCAL,
            ModuleBuffer::of(details.as_bytes()),
        )
    };
}

pub fn send_response(filter: FilterEnvoy, status: u32, headers: &[(&str, &str)], body: &[u8], details: &str) {
    let headers: Vec<ModuleHttpHeader> = headers.iter().map(|(k, v)| header(k, v)).collect();
    // SAFETY: `filter` is live; every buffer outlives the call.
    unsafe {
        timed!(
            "http_send_response",
            body.len(),
            ffi::envoy_dynamic_module_callback_http_send_response(
                filter,
                status,
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            )
        );
    }
}

pub fn body_size(filter: FilterEnvoy, kind: u32) -> usize {
    // SAFETY: `filter` is live.
    unsafe { timed!("http_get_body_size", 0, ffi::envoy_dynamic_module_callback_http_get_body_size(filter, kind)) }
}

/// Appends up to `limit - out.len()` bytes of a body to `out`.
pub fn read_body(filter: FilterEnvoy, kind: u32, out: &mut Vec<u8>, limit: usize) -> bool {
    // SAFETY: `filter` is live; the vector holds the `n` buffers Envoy fills.
    let n = unsafe {
        timed!(
            "http_get_body_chunks_size",
            0,
            ffi::envoy_dynamic_module_callback_http_get_body_chunks_size(filter, kind)
        )
    };
    if n == 0 {
        return true;
    }
    let mut chunks = vec![NO_BUFFER; n];
    if !unsafe {
        timed!(
            "http_get_body_chunks",
            n,
            ffi::envoy_dynamic_module_callback_http_get_body_chunks(filter, kind, chunks.as_mut_ptr())
        )
    } {
        return false;
    }
    for c in chunks {
        let bytes = lent(c);
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    true
}

/// Drains a whole body.
pub fn drain_body(filter: FilterEnvoy, kind: u32) -> bool {
    let n = body_size(filter, kind);
    // SAFETY: `filter` is live.
    n == 0
        || unsafe { timed!("http_drain_body", n, ffi::envoy_dynamic_module_callback_http_drain_body(filter, kind, n)) }
}

pub fn append_body(filter: FilterEnvoy, kind: u32, data: &[u8]) -> bool {
    // SAFETY: `filter` is live; `data` outlives the call.
    unsafe {
        timed!(
            "http_append_body",
            data.len(),
            ffi::envoy_dynamic_module_callback_http_append_body(filter, kind, ModuleBuffer::of(data))
        )
    }
}

/// Whether the chunk of the running body hook is the buffered body itself.
pub fn received_is_buffered(filter: FilterEnvoy) -> bool {
    // SAFETY: `filter` is live.
    unsafe {
        timed!(
            "http_received_buffered_request_body",
            0,
            ffi::envoy_dynamic_module_callback_http_received_buffered_request_body(filter)
        )
    }
}

pub fn attribute_string(filter: FilterEnvoy, id: u32) -> Option<String> {
    let mut out = NO_BUFFER;
    // SAFETY: `filter` is live; `out` is a valid pointer.
    let ok = unsafe {
        timed!(
            "http_filter_get_attribute_string",
            0,
            ffi::envoy_dynamic_module_callback_http_filter_get_attribute_string(filter, id, &mut out)
        )
    };
    ok.then(|| String::from_utf8(lent(out).to_vec()).ok()).flatten().filter(|s| !s.is_empty())
}

pub fn attribute_bool(filter: FilterEnvoy, id: u32) -> Option<bool> {
    let mut out = false;
    // SAFETY: `filter` is live; `out` is a valid pointer.
    let ok = unsafe {
        timed!(
            "http_filter_get_attribute_bool",
            0,
            ffi::envoy_dynamic_module_callback_http_filter_get_attribute_bool(filter, id, &mut out)
        )
    };
    ok.then_some(out)
}

pub fn attribute_int(filter: FilterEnvoy, id: u32) -> Option<u64> {
    let mut out = 0u64;
    // SAFETY: `filter` is live; `out` is a valid pointer.
    let ok = unsafe {
        timed!(
            "http_filter_get_attribute_int",
            0,
            ffi::envoy_dynamic_module_callback_http_filter_get_attribute_int(filter, id, &mut out)
        )
    };
    ok.then_some(out)
}

pub fn increment_counter(filter: FilterEnvoy, id: usize) {
    // SAFETY: `filter` is live; no labels.
    unsafe {
        timed!(
            "http_filter_increment_counter",
            0,
            ffi::envoy_dynamic_module_callback_http_filter_increment_counter(filter, id, std::ptr::null(), 0, 1)
        )
    };
}

pub fn record_histogram(filter: FilterEnvoy, id: usize, value: u64) {
    // SAFETY: `filter` is live; no labels.
    unsafe {
        timed!(
            "http_filter_record_histogram_value",
            0,
            ffi::envoy_dynamic_module_callback_http_filter_record_histogram_value(
                filter,
                id,
                std::ptr::null(),
                0,
                value
            )
        )
    };
}

pub fn set_filter_state(filter: FilterEnvoy, key: &str, value: &[u8]) -> bool {
    // SAFETY: `filter` is live; the buffers outlive the call.
    unsafe {
        timed!(
            "http_set_filter_state_bytes",
            key.len() + value.len(),
            ffi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                filter,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value),
            )
        )
    }
}

/// A POST callout; Envoy's id for it, or `None` when it was not sent.
pub fn callout(
    filter: FilterEnvoy,
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> Option<u64> {
    let headers: Vec<ModuleHttpHeader> = headers.iter().map(|(k, v)| header(k, v)).collect();
    let mut id: u64 = 0;
    // SAFETY: `filter` is live; every buffer outlives the call.
    let result = unsafe {
        timed!(
            "http_filter_http_callout",
            body.len(),
            ffi::envoy_dynamic_module_callback_http_filter_http_callout(
                filter,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        )
    };
    (result == ffi::CALLOUT_SUCCESS).then_some(id)
}

pub fn continue_decoding(filter: FilterEnvoy) {
    // SAFETY: `filter` is live.
    unsafe {
        timed!(
            "http_filter_continue_decoding",
            0,
            ffi::envoy_dynamic_module_callback_http_filter_continue_decoding(filter)
        )
    };
}

pub fn continue_encoding(filter: FilterEnvoy) {
    // SAFETY: `filter` is live.
    unsafe {
        timed!(
            "http_filter_continue_encoding",
            0,
            ffi::envoy_dynamic_module_callback_http_filter_continue_encoding(filter)
        )
    };
}

pub fn clear_route_cache(filter: FilterEnvoy) {
    // SAFETY: `filter` is live.
    unsafe { timed!("http_clear_route_cache", 0, ffi::envoy_dynamic_module_callback_http_clear_route_cache(filter)) };
}
