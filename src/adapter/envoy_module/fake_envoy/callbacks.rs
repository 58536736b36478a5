//! The callbacks the module imports, answered from `FakeConfig` and
//! `FakeStream` (their pointers are what the fake Envoy hands the hooks).
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::c_void;

use super::{FakeConfig, FakeStream, SentReply, LOGS};
use crate::adapter::envoy_module::ffi::{self, EnvoyBuffer, EnvoyHttpHeader, ModuleBuffer, ModuleHttpHeader};

/// The stream a callback is for; a call after the module's filter was
/// destroyed is counted (Envoy's stream is gone by then).
unsafe fn stream<'a>(p: *mut c_void) -> &'a mut FakeStream {
    let s = &mut *(p.cast::<FakeStream>());
    if s.destroyed {
        s.calls_after_destroy += 1;
    }
    s
}

unsafe fn config<'a>(p: *mut c_void) -> &'a mut FakeConfig {
    &mut *(p.cast::<FakeConfig>())
}

unsafe fn read(b: ModuleBuffer) -> Vec<u8> {
    if b.ptr.is_null() {
        return Vec::new();
    }
    std::slice::from_raw_parts(b.ptr, b.length).to_vec()
}

fn lend(bytes: &[u8]) -> EnvoyBuffer {
    EnvoyBuffer { ptr: bytes.as_ptr(), length: bytes.len() }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer) {
    let text = String::from_utf8_lossy(&read(message)).into_owned();
    LOGS.with(|l| l.borrow_mut().push((level, text)));
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_log_enabled(_level: u32) -> bool {
    true
}

unsafe fn define(c: *mut c_void, name: ModuleBuffer, id: *mut usize) -> u32 {
    let c = config(c);
    c.metrics.push(String::from_utf8_lossy(&read(name)).into_owned());
    *id = c.metrics.len();
    0
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_counter(
    c: *mut c_void,
    name: ModuleBuffer,
    _labels: *const ModuleBuffer,
    _n: usize,
    id: *mut usize,
) -> u32 {
    define(c, name, id)
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
    c: *mut c_void,
    name: ModuleBuffer,
    _labels: *const ModuleBuffer,
    _n: usize,
    id: *mut usize,
) -> u32 {
    define(c, name, id)
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
    c: *mut c_void,
    name: ModuleBuffer,
    _labels: *const ModuleBuffer,
    _n: usize,
    id: *mut usize,
) -> u32 {
    define(c, name, id)
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
    c: *mut c_void,
    id: usize,
    _labels: *const ModuleBuffer,
    _n: usize,
    value: u64,
) -> u32 {
    config(c).gauges.push((id, value));
    0
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_increment_counter(
    f: *mut c_void,
    id: usize,
    _labels: *const ModuleBuffer,
    _n: usize,
    value: u64,
) -> u32 {
    stream(f).counters.push((id, value));
    0
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
    f: *mut c_void,
    id: usize,
    _labels: *const ModuleBuffer,
    _n: usize,
    value: u64,
) -> u32 {
    stream(f).histograms.push((id, value));
    0
}

unsafe fn map(f: *mut c_void, kind: u32) -> &'static mut Vec<(String, Vec<u8>)> {
    let s = stream(f);
    if kind == ffi::RESPONSE_HEADER {
        &mut s.response_headers
    } else {
        &mut s.request_headers
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_headers_size(f: *mut c_void, kind: u32) -> usize {
    map(f, kind).len()
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_headers(
    f: *mut c_void,
    kind: u32,
    out: *mut EnvoyHttpHeader,
) -> bool {
    for (i, (k, v)) in map(f, kind).iter().enumerate() {
        *out.add(i) =
            EnvoyHttpHeader { key_ptr: k.as_ptr(), key_length: k.len(), value_ptr: v.as_ptr(), value_length: v.len() };
    }
    true
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_header(
    f: *mut c_void,
    kind: u32,
    key: ModuleBuffer,
    out: *mut EnvoyBuffer,
    index: usize,
    count: *mut usize,
) -> bool {
    let key = read(key);
    let values: Vec<&Vec<u8>> = map(f, kind).iter().filter(|(k, _)| k.as_bytes() == key).map(|(_, v)| v).collect();
    if !count.is_null() {
        *count = values.len();
    }
    match values.get(index) {
        Some(v) => {
            *out = lend(v);
            true
        }
        None => false,
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_set_header(
    f: *mut c_void,
    kind: u32,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    if stream(f).refuse_writes {
        return false;
    }
    let key = String::from_utf8_lossy(&read(key)).into_owned();
    let headers = map(f, kind);
    headers.retain(|(k, _)| *k != key);
    if !value.ptr.is_null() {
        headers.push((key, read(value)));
    }
    true
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_send_response(
    f: *mut c_void,
    status: u32,
    headers: *const ModuleHttpHeader,
    n: usize,
    body: ModuleBuffer,
    details: ModuleBuffer,
) {
    let headers = (0..n)
        .map(|i| {
            let h = *headers.add(i);
            let k = read(ModuleBuffer { ptr: h.key_ptr, length: h.key_length });
            let v = read(ModuleBuffer { ptr: h.value_ptr, length: h.value_length });
            (String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned())
        })
        .collect();
    let details = String::from_utf8_lossy(&read(details)).into_owned();
    let s = stream(f);
    s.replies += 1;
    s.reply = Some(SentReply { status, headers, body: read(body), details });
    // As Envoy before 1.40: the filter is destroyed inside this call.
    if let Some(filter) = s.destroy_on_reply.take() {
        s.destroyed = true;
        crate::adapter::envoy_module::exports::envoy_dynamic_module_on_http_filter_destroy(filter);
        #[cfg(test)]
        {
            s.live_after_destroy = Some(crate::adapter::envoy_module::LIVE_SLOTS.with(std::cell::Cell::get));
        }
    }
}

unsafe fn body(f: *mut c_void, kind: u32) -> &'static mut Vec<u8> {
    let s = stream(f);
    if kind == ffi::RECEIVED_REQUEST_BODY {
        &mut s.received
    } else {
        &mut s.buffered
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_body_size(f: *mut c_void, kind: u32) -> usize {
    body(f, kind).len()
}

/// Envoy hands a body as several slices: two here, when it has two bytes.
fn halves(b: &[u8]) -> Vec<&[u8]> {
    match b.len() {
        0 => vec![],
        1 => vec![b],
        n => vec![&b[..n / 2], &b[n / 2..]],
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks_size(f: *mut c_void, kind: u32) -> usize {
    halves(body(f, kind)).len()
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks(
    f: *mut c_void,
    kind: u32,
    out: *mut EnvoyBuffer,
) -> bool {
    for (i, c) in halves(body(f, kind)).into_iter().enumerate() {
        *out.add(i) = lend(c);
    }
    true
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_append_body(
    f: *mut c_void,
    kind: u32,
    data: ModuleBuffer,
) -> bool {
    body(f, kind).extend_from_slice(&read(data));
    true
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_drain_body(f: *mut c_void, kind: u32, n: usize) -> bool {
    let b = body(f, kind);
    b.drain(..n.min(b.len()));
    true
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_http_received_buffered_request_body(_f: *mut c_void) -> bool {
    false
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
    f: *mut c_void,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    let key = String::from_utf8_lossy(&read(key)).into_owned();
    stream(f).filter_state.push((key, read(value)));
    true
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
    f: *mut c_void,
    id: u32,
    out: *mut EnvoyBuffer,
) -> bool {
    match stream(f).attributes.iter().find(|(a, _)| *a == id) {
        Some((_, v)) => {
            *out = lend(v.as_bytes());
            true
        }
        None => false,
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_bool(
    f: *mut c_void,
    _id: u32,
    out: *mut bool,
) -> bool {
    *out = stream(f).mtls;
    true
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_reset_stream(
    f: *mut c_void,
    _reason: u32,
    _details: ModuleBuffer,
) {
    stream(f).resets += 1;
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
    f: *mut c_void,
    id: u32,
    out: *mut u64,
) -> bool {
    match stream(f).attributes.iter().find(|(a, _)| *a == id).and_then(|(_, v)| v.parse().ok()) {
        Some(n) => {
            *out = n;
            true
        }
        None => false,
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_http_callout(
    f: *mut c_void,
    id: *mut u64,
    cluster: ModuleBuffer,
    _headers: *const ModuleHttpHeader,
    _n: usize,
    body: ModuleBuffer,
    _timeout: u64,
) -> u32 {
    let s = stream(f);
    s.callouts.push((String::from_utf8_lossy(&read(cluster)).into_owned(), read(body)));
    // Envoy's ids are its own: far from the stream's small tokens.
    *id = 1_000_000_000_000 + s.callouts.len() as u64;
    0
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_continue_decoding(f: *mut c_void) {
    stream(f).continued += 1;
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_continue_encoding(f: *mut c_void) {
    stream(f).continued_response += 1;
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_clear_route_cache(f: *mut c_void) {
    stream(f).route_cleared += 1;
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_generic_secret_subscribe(
    c: *mut c_void,
    name: ModuleBuffer,
    _source: ModuleBuffer,
) -> usize {
    let c = config(c);
    if c.refuse_subscriptions {
        return 0;
    }
    c.subscribed.push(String::from_utf8_lossy(&read(name)).into_owned());
    c.subscribed.len()
}

unsafe fn secret(c: &FakeConfig, index: usize, out: *mut EnvoyBuffer) -> bool {
    let Some(name) = index.checked_sub(1).and_then(|i| c.subscribed.get(i)) else {
        return false;
    };
    match c.secrets.iter().find(|(n, _)| n == name) {
        Some((_, v)) => *out = lend(v),
        None => *out = EnvoyBuffer { ptr: std::ptr::null(), length: 0 },
    }
    true
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_get_generic_secret(
    c: *mut c_void,
    index: usize,
    out: *mut EnvoyBuffer,
) -> bool {
    secret(config(c), index, out)
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_generic_secret(
    f: *mut c_void,
    index: usize,
    out: *mut EnvoyBuffer,
) -> bool {
    secret(&*stream(f).config, index, out)
}
