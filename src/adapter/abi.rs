//! The proxy-wasm host ABI, called directly so that every failure is a value.
//! The SDK's `hostcalls` panic on any status they do not expect, and a panic
//! traps the VM (the worker then answers 503 until it is reloaded).
//!
//! Memory the host returns was allocated through the SDK's exported
//! allocator, so it is taken over as a `Vec`.

#![allow(clashing_extern_declarations)]

use std::ptr::null_mut;

use super::wire;
use crate::host::Level;

/// A non-Ok status of a host call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

pub const NOT_FOUND: Status = Status(1);
pub const CAS_MISMATCH: Status = Status(8);

pub const REQUEST_HEADERS: u32 = 0;
pub const RESPONSE_HEADERS: u32 = 2;
pub const REQUEST_BODY: u32 = 0;
pub const CALLOUT_RESPONSE_HEADERS: u32 = 6;
pub const CALLOUT_RESPONSE_BODY: u32 = 4;
pub const HTTP_REQUEST_STREAM: u32 = 0;
pub const HTTP_RESPONSE_STREAM: u32 = 1;
pub const PLUGIN_CONFIGURATION: u32 = 7;
pub const COUNTER: u32 = 0;
pub const GAUGE: u32 = 1;
pub const HISTOGRAM: u32 = 2;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_log_level(level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_buffer_bytes(buffer: u32, start: usize, max: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_set_buffer_bytes(buffer: u32, start: usize, size: usize, data: *const u8, data_size: usize) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_get_property(path: *const u8, path_size: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_set_property(path: *const u8, path_size: usize, value: *const u8, value_size: usize) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(key: *const u8, key_size: usize, value: *const u8, value_size: usize, cas: u32) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
}

fn status(code: u32) -> Result<(), Status> {
    if code == 0 {
        Ok(())
    } else {
        Err(Status(code))
    }
}

/// Takes over a host-allocated buffer (`None` when the host returned none).
///
/// # Safety
/// `data` is null or points to `size` bytes the host allocated with the
/// module's allocator and handed over.
unsafe fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    (!data.is_null()).then(|| Vec::from_raw_parts(data, size, size))
}

/// Bench builds count every host call and the bytes it moves across the VM
/// boundary (`make bench`'s per-feature table); other builds compile it away.
#[inline]
fn hostcall(kind: &'static str, bytes: usize) {
    #[cfg(feature = "bench-stages")]
    crate::bench::tally::add(kind, bytes);
    #[cfg(not(feature = "bench-stages"))]
    let _ = (kind, bytes);
}

/// proxy-wasm's number for a log level (trace 0 ... critical 5).
pub fn level(level: Level) -> u32 {
    match level {
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

pub fn log(level: Level, message: &str) {
    hostcall("log", message.len());
    // Nothing sensible is left to do when logging itself fails.
    let _ = unsafe { proxy_log(self::level(level), message.as_ptr(), message.len()) };
}

pub fn log_level() -> Result<u32, Status> {
    hostcall("get_log_level", 0);
    let mut level = 0;
    status(unsafe { proxy_get_log_level(&mut level) }).map(|()| level)
}

pub fn now_nanos() -> Result<u64, Status> {
    hostcall("get_current_time", 0);
    let mut t = 0;
    status(unsafe { proxy_get_current_time_nanoseconds(&mut t) }).map(|()| t)
}

pub fn header_pairs(map: u32) -> Result<Vec<(String, Vec<u8>)>, Status> {
    let (mut data, mut size) = (null_mut(), 0);
    status(unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) })?;
    let bytes = unsafe { take(data, size) }.unwrap_or_default();
    hostcall("get_header_map_pairs", bytes.len());
    wire::decode_map(&bytes).ok_or(Status(3))
}

pub fn header_value(map: u32, name: &str) -> Result<Option<Vec<u8>>, Status> {
    hostcall("get_header_map_value", name.len());
    let (mut data, mut size) = (null_mut(), 0);
    match status(unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size) }) {
        Ok(()) => Ok(unsafe { take(data, size) }),
        Err(NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn set_header(map: u32, name: &str, value: &str) -> Result<(), Status> {
    hostcall("replace_header_map_value", name.len() + value.len());
    status(unsafe { proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

pub fn remove_header(map: u32, name: &str) -> Result<(), Status> {
    hostcall("remove_header_map_value", name.len());
    status(unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) })
}

pub fn buffer(kind: u32, start: usize, max: usize) -> Result<Vec<u8>, Status> {
    hostcall("get_buffer_bytes", max);
    let (mut data, mut size) = (null_mut(), 0);
    match status(unsafe { proxy_get_buffer_bytes(kind, start, max, &mut data, &mut size) }) {
        Ok(()) => Ok(unsafe { take(data, size) }.unwrap_or_default()),
        Err(NOT_FOUND) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub fn set_buffer(kind: u32, start: usize, size: usize, data: &[u8]) -> Result<(), Status> {
    hostcall("set_buffer_bytes", data.len());
    status(unsafe { proxy_set_buffer_bytes(kind, start, size, data.as_ptr(), data.len()) })
}

pub fn send_local_response(code: u32, details: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(), Status> {
    hostcall("send_local_response", details.len() + body.len());
    let headers = wire::encode_map(headers);
    status(unsafe {
        proxy_send_local_response(
            code,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    hostcall("get_property", 0);
    let path = wire::encode_path(path);
    let (mut data, mut size) = (null_mut(), 0);
    match status(unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) }) {
        Ok(()) => Ok(unsafe { take(data, size) }),
        Err(NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), Status> {
    hostcall("set_property", value.len());
    let path = wire::encode_path(path);
    status(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

pub fn shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status> {
    hostcall("get_shared_data", key.len());
    let (mut data, mut size, mut cas) = (null_mut(), 0, 0);
    match status(unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) }) {
        Ok(()) => Ok((unsafe { take(data, size) }, (cas != 0).then_some(cas))),
        Err(NOT_FOUND) => Ok((None, None)),
        Err(e) => Err(e),
    }
}

pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    hostcall("set_shared_data", key.len() + value.len());
    status(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas.unwrap_or(0)) })
}

pub fn define_metric(kind: u32, name: &str) -> Result<u32, Status> {
    let mut id = 0;
    status(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) }).map(|()| id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    hostcall("increment_metric", 0);
    status(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    hostcall("record_metric", 0);
    status(unsafe { proxy_record_metric(id, value) })
}

pub fn continue_stream(stream: u32) -> Result<(), Status> {
    hostcall("continue_stream", 0);
    status(unsafe { proxy_continue_stream(stream) })
}
