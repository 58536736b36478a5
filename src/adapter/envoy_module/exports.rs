//! Every hook the module exports to Envoy: callbacks forwarded to the
//! stream (`Filter`), each under `stream_hook` or `guard`.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::abi_config;
use super::config::{self, FilterConfig};
use super::ffi::{self, ConfigEnvoy, EnvoyBuffer, EnvoyHttpHeader, FilterEnvoy, ABI_VERSION, ABI_VERSION_WITHOUT_SDS};
use super::host::NativeHost;
use super::{bytes, guard, status, stream_hook, Filter, Phase, Slot};
use crate::adapter::core::{seam, Plan};
use crate::host::{Action, CalloutResponse};
use crate::stream::outbound::Outbound;
use crate::stream::Stream;

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    // An Envoy without the SDS callbacks speaks the ABI before them (1.38,
    // 1.39: v0.1.0); answering its version keeps its log free of a
    // mismatch warning. The module needs nothing else of the newer ABI.
    if abi_config::has_sds() { ABI_VERSION } else { ABI_VERSION_WITHOUT_SDS }.as_ptr().cast()
}

/// # Safety
/// Called by Envoy with its config pointer and buffers valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: ConfigEnvoy,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard(std::ptr::null(), || match FilterConfig::new(envoy, bytes(config)) {
        Some(c) => Arc::into_raw(Arc::new(c)).cast(),
        None => std::ptr::null(),
    })
}

/// # Safety
/// `config` is a pointer `on_http_filter_config_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    guard((), || {
        if !config.is_null() {
            drop(Arc::from_raw(config.cast::<FilterConfig>()));
        }
    })
}

/// # Safety
/// `config` is a live pointer `on_http_filter_config_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    envoy: FilterEnvoy,
) -> *const c_void {
    timed!(
        "hook_http_filter_new",
        0,
        guard(std::ptr::null(), || {
            let config = config.cast::<FilterConfig>();
            if config.is_null() {
                return std::ptr::null();
            }
            Arc::increment_strong_count(config);
            let config = Arc::from_raw(config);
            let host = seam::host(NativeHost::new(envoy, Arc::clone(&config.metrics), config::store()));
            let filter = match config.plan(envoy) {
                Plan::Inbound(p) => Filter::Inbound(Stream::new(host, seam::Inbound::new(p))),
                Plan::Outbound(p) => Filter::Outbound(Stream::new(host, Outbound::new(p))),
            };
            Slot::into_raw(filter)
        })
    )
}

/// # Safety
/// `filter` is a pointer `on_http_filter_new` returned; Envoy destroys it once.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    timed!(
        "hook_http_filter_destroy",
        0,
        guard((), || {
            if !filter.is_null() {
                Slot::destroy(filter);
            }
        })
    );
    #[cfg(feature = "bench-stages")]
    if let Some(totals) = crate::bench::tally::stream_done(1000) {
        super::abi::log(crate::host::Level::Warn, &format!("bench_hostcalls {totals}"));
    }
}

/// # Safety
/// Envoy's live pointers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoy,
    filter: *const c_void,
    end_of_stream: bool,
) -> u32 {
    timed!(
        "hook_http_filter_request_headers",
        0,
        stream_hook(envoy, filter, Phase::Request, |f| {
            each!(f, s => status(s.on_request_headers(end_of_stream)), ffi::STOP)
        })
    )
}

/// # Safety
/// Envoy's live pointers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoy,
    filter: *const c_void,
    end_of_stream: bool,
) -> u32 {
    timed!(
        "hook_http_filter_request_body",
        0,
        stream_hook(envoy, filter, Phase::Request, |f| {
            each!(f, s => {
                s.host_mut().in_body_hook = true;
                let size = s.host().buffered_len();
                let action = s.on_request_body(size, end_of_stream);
                s.host_mut().in_body_hook = false;
                status(action)
            }, ffi::STOP)
        })
    )
}

/// # Safety
/// Envoy's live pointers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy: FilterEnvoy,
    filter: *const c_void,
) -> u32 {
    stream_hook(envoy, filter, Phase::Request, |f| each!(f, s => status(s.on_request_trailers()), ffi::STOP))
}

/// # Safety
/// Envoy's live pointers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoy,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // A pause holds the whole response (headers and body) until the store
    // settled: Envoy 1.40 let a response through past a plain StopIteration
    // (seen in the etcd suite), not past StopAllIterationAndBuffer.
    timed!(
        "hook_http_filter_response_headers",
        0,
        stream_hook(envoy, filter, Phase::Response, |f| {
            each!(f, s => match s.on_response_headers() {
                Action::Continue => ffi::CONTINUE,
                Action::Pause => ffi::STOP_ALL_AND_BUFFER,
            }, ffi::CONTINUE)
        })
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    ffi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
) -> u32 {
    ffi::CONTINUE
}

/// Before the access log is written: the audit record is published here.
///
/// # Safety
/// Envoy's live pointers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy: FilterEnvoy,
    filter: *const c_void,
) {
    timed!(
        "hook_http_filter_stream_complete",
        0,
        stream_hook(envoy, filter, Phase::Completion, |f| {
            each!(f, s => s.on_done(), ());
            ffi::CONTINUE
        })
    );
}

/// # Safety
/// Envoy's live pointers; headers and chunks are valid for the call.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy: FilterEnvoy,
    filter: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) {
    let response =
        guard(CalloutResponse::default(), || callout_response(result, headers, headers_size, chunks, chunks_size));
    // A callout answers while the request (etcd's reservation) or the
    // response (its settle) waits; a local reply then is refused by Envoy
    // past the response's start, so the request phase's 500 serves both.
    stream_hook(envoy, filter, Phase::Request, |f| {
        each!(f, s => {
            if let Some(token) = s.host().callout_token(callout_id) {
                s.on_callout_response(token, response);
            }
        }, ());
        ffi::CONTINUE
    });
}

/// Envoy's callout answer as the stream wants it (`status` `None` when
/// it failed or has no valid `:status`).
///
/// # Safety
/// Pointers from Envoy, valid for the running hook.
unsafe fn callout_response(
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) -> CalloutResponse {
    if result != ffi::CALLOUT_RESULT_SUCCESS {
        return CalloutResponse::default();
    }
    let headers = if headers.is_null() { &[][..] } else { std::slice::from_raw_parts(headers, headers_size) };
    let status = headers.iter().find_map(|h| {
        let key = bytes(EnvoyBuffer { ptr: h.key_ptr, length: h.key_length });
        (key == b":status")
            .then(|| crate::host::parse_status(bytes(EnvoyBuffer { ptr: h.value_ptr, length: h.value_length })))
            .flatten()
    });
    let chunks = if chunks.is_null() { &[][..] } else { std::slice::from_raw_parts(chunks, chunks_size) };
    let body = chunks.iter().flat_map(|c| bytes(*c).iter().copied()).collect();
    CalloutResponse { status, body }
}

// Hooks Envoy requires but this filter has no use for: the filter starts no
// streams, schedules nothing, and never writes to the client itself.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
    _event: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
    _stream: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
    _stream: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
    _stream: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
    _stream: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
    _stream: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: FilterEnvoy,
    _filter: *const c_void,
) {
}
