//! The Envoy dynamic-module C ABI, declared by hand and pinned: only the hooks
//! this filter exports and the callbacks it calls. Checked against the pinned
//! Envoy binary (`tools/abi_check.py` in `make abi-check`: every name below exists
//! in `nm -D`, the exported callback list hashes as recorded) and exercised in
//! a real Envoy by the integration suite. Re-review every signature when the
//! pinned Envoy changes: names can stay while arguments change.
//!
//! Enums travel as `u32` (C `enum`, x86-64 System V); the orders below were
//! read from the binary's jump tables.

#![allow(dead_code)]

use std::ffi::c_void;

/// What `envoy_dynamic_module_on_program_init` answers; Envoy 1.40 expects it.
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";
/// What Envoy 1.38 and 1.39 expect (they have no SDS callbacks).
pub const ABI_VERSION_WITHOUT_SDS: &[u8] = b"v0.1.0\0";

/// A buffer Envoy owns; valid until the end of the running hook.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

/// A buffer the module owns, lent for one call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> Self {
        ModuleBuffer { ptr: bytes.as_ptr(), length: bytes.len() }
    }

    /// A null buffer: `set_header` removes the header.
    pub fn null() -> Self {
        ModuleBuffer { ptr: std::ptr::null(), length: 0 }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

pub type ConfigEnvoy = *mut c_void;
pub type FilterEnvoy = *mut c_void;

// envoy_dynamic_module_type_http_header_type
pub const REQUEST_HEADER: u32 = 0;
pub const RESPONSE_HEADER: u32 = 2;
// envoy_dynamic_module_type_http_body_type
pub const RECEIVED_REQUEST_BODY: u32 = 0;
pub const BUFFERED_REQUEST_BODY: u32 = 1;
// envoy_dynamic_module_type_log_level
pub const LOG_TRACE: u32 = 0;
pub const LOG_DEBUG: u32 = 1;
pub const LOG_INFO: u32 = 2;
pub const LOG_WARN: u32 = 3;
pub const LOG_ERROR: u32 = 4;
// Hook answers: `Continue` is 0 for every phase; the "stop" value differs in
// name only (StopIteration, StopIterationAndBuffer), never in value.
pub const CONTINUE: u32 = 0;
pub const STOP: u32 = 1;
/// Headers hooks only: StopAllIterationAndBuffer.
pub const STOP_ALL_AND_BUFFER: u32 = 3;
// envoy_dynamic_module_type_metrics_result
pub const METRICS_SUCCESS: u32 = 0;
// envoy_dynamic_module_type_http_callout_init_result
pub const CALLOUT_SUCCESS: u32 = 0;
// envoy_dynamic_module_type_http_callout_result
pub const CALLOUT_RESULT_SUCCESS: u32 = 0;
// envoy_dynamic_module_type_attribute_id
// envoy_dynamic_module_type_http_filter_stream_reset_reason
pub const RESET_LOCAL: u32 = 0;
// envoy_dynamic_module_type_attribute_id
pub const ATTRIBUTE_RESPONSE_CODE_DETAILS: u32 = 16;
pub const ATTRIBUTE_SOURCE_ADDRESS: u32 = 24;
pub const ATTRIBUTE_UPSTREAM_REQUEST_ATTEMPT_COUNT: u32 = 53;
pub const ATTRIBUTE_CONNECTION_MTLS: u32 = 29;
pub const ATTRIBUTE_SUBJECT_PEER_CERTIFICATE: u32 = 33;
pub const ATTRIBUTE_DNS_SAN_PEER_CERTIFICATE: u32 = 35;
pub const ATTRIBUTE_URI_SAN_PEER_CERTIFICATE: u32 = 37;

/// Every callback this module imports, by name (`tools/abi_check.py` reads
/// this list; keep it in step with the `extern` block).
pub const IMPORTED: &[&str] = &[
    "envoy_dynamic_module_callback_log",
    "envoy_dynamic_module_callback_log_enabled",
    "envoy_dynamic_module_callback_http_filter_config_define_counter",
    "envoy_dynamic_module_callback_http_filter_config_define_histogram",
    "envoy_dynamic_module_callback_http_filter_config_define_gauge",
    "envoy_dynamic_module_callback_http_filter_increment_counter",
    "envoy_dynamic_module_callback_http_filter_record_histogram_value",
    "envoy_dynamic_module_callback_http_get_headers_size",
    "envoy_dynamic_module_callback_http_get_headers",
    "envoy_dynamic_module_callback_http_get_header",
    "envoy_dynamic_module_callback_http_set_header",
    "envoy_dynamic_module_callback_http_send_response",
    "envoy_dynamic_module_callback_http_get_body_size",
    "envoy_dynamic_module_callback_http_get_body_chunks_size",
    "envoy_dynamic_module_callback_http_get_body_chunks",
    "envoy_dynamic_module_callback_http_append_body",
    "envoy_dynamic_module_callback_http_drain_body",
    "envoy_dynamic_module_callback_http_received_buffered_request_body",
    "envoy_dynamic_module_callback_http_set_filter_state_bytes",
    "envoy_dynamic_module_callback_http_filter_get_attribute_string",
    "envoy_dynamic_module_callback_http_filter_get_attribute_bool",
    "envoy_dynamic_module_callback_http_filter_get_attribute_int",
    "envoy_dynamic_module_callback_http_filter_http_callout",
    "envoy_dynamic_module_callback_http_filter_continue_decoding",
    "envoy_dynamic_module_callback_http_filter_continue_encoding",
    "envoy_dynamic_module_callback_http_filter_reset_stream",
    "envoy_dynamic_module_callback_http_clear_route_cache",
];

/// Callbacks only newer Envoys have: the SDS subscriptions (Envoy 1.40) and
/// the config-time gauge (1.39). They are resolved when the module loads
/// (`optional()`), never imported, so the module loads on Envoy 1.38 and
/// 1.39 as well; a configuration that needs one that is missing is refused
/// (`tools/abi_check.py` checks the .so imports none of them).
pub const OPTIONAL: &[&str] = &[
    "envoy_dynamic_module_callback_http_filter_config_set_gauge",
    "envoy_dynamic_module_callback_http_filter_config_generic_secret_subscribe",
    "envoy_dynamic_module_callback_http_filter_config_get_generic_secret",
    "envoy_dynamic_module_callback_http_filter_get_generic_secret",
];

/// `..._config_set_gauge(config, id, label_values, label_values_length, value)`.
pub type ConfigSetGauge = unsafe extern "C" fn(ConfigEnvoy, usize, *const ModuleBuffer, usize, u64) -> u32;
/// `..._config_generic_secret_subscribe(config, name, config_source)`:
/// subscribes to an SDS generic secret (only while the config is being
/// created). `config_source` is a `ConfigSource` as JSON, or empty for a
/// static bootstrap secret. Answers the secret's index (from 1), 0 when
/// refused. (Read from the 1.40 binary: it is newer than any public header
/// this project could reach.)
pub type SecretSubscribe = unsafe extern "C" fn(ConfigEnvoy, ModuleBuffer, ModuleBuffer) -> usize;
/// `..._config_get_generic_secret(config, index, result)`: the secret's
/// current value (empty until SDS delivered it), at configure time.
pub type ConfigGetSecret = unsafe extern "C" fn(ConfigEnvoy, usize, *mut EnvoyBuffer) -> bool;
/// `..._http_filter_get_generic_secret(filter, index, result)`: the same,
/// from a stream.
pub type GetSecret = unsafe extern "C" fn(FilterEnvoy, usize, *mut EnvoyBuffer) -> bool;

/// The optional callbacks this Envoy has.
#[derive(Clone, Copy, Default)]
pub struct Optional {
    pub config_set_gauge: Option<ConfigSetGauge>,
    pub secret_subscribe: Option<SecretSubscribe>,
    pub config_get_secret: Option<ConfigGetSecret>,
    pub get_secret: Option<GetSecret>,
}

impl Optional {
    /// SDS secrets need all three of their callbacks.
    pub fn has_sds(&self) -> bool {
        self.secret_subscribe.is_some() && self.config_get_secret.is_some() && self.get_secret.is_some()
    }
}

/// The optional callbacks of the Envoy that loaded the module, looked up
/// once (`dlsym` in the process: Envoy exports its callbacks dynamically).
#[cfg(not(any(test, feature = "fake-envoy")))]
pub fn optional() -> Optional {
    static RESOLVED: std::sync::OnceLock<Optional> = std::sync::OnceLock::new();
    *RESOLVED.get_or_init(|| {
        extern "C" {
            fn dlsym(handle: *mut c_void, symbol: *const std::ffi::c_char) -> *mut c_void;
        }
        // RTLD_DEFAULT (glibc: a null handle): every object of the process.
        let find = |name: &std::ffi::CStr| {
            // SAFETY: a plain lookup; `name` is NUL-terminated.
            let found = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
            (!found.is_null()).then_some(found)
        };
        // SAFETY: each name is Envoy's function of the type it is cast to
        // (the declarations above, checked against every supported Envoy).
        unsafe {
            Optional {
                config_set_gauge: find(c"envoy_dynamic_module_callback_http_filter_config_set_gauge")
                    .map(|f| std::mem::transmute::<*mut c_void, ConfigSetGauge>(f)),
                secret_subscribe: find(c"envoy_dynamic_module_callback_http_filter_config_generic_secret_subscribe")
                    .map(|f| std::mem::transmute::<*mut c_void, SecretSubscribe>(f)),
                config_get_secret: find(c"envoy_dynamic_module_callback_http_filter_config_get_generic_secret")
                    .map(|f| std::mem::transmute::<*mut c_void, ConfigGetSecret>(f)),
                get_secret: find(c"envoy_dynamic_module_callback_http_filter_get_generic_secret")
                    .map(|f| std::mem::transmute::<*mut c_void, GetSecret>(f)),
            }
        }
    })
}

/// Tests: the fake Envoy's callbacks, or none of them (an older Envoy).
#[cfg(any(test, feature = "fake-envoy"))]
pub fn optional() -> Optional {
    super::fake_envoy::optional()
}

/// Every hook Envoy 1.40 requires of an HTTP filter module (it refuses the
/// filter config, naming the symbol, when one is missing).
pub const EXPORTED: &[&str] = &[
    "envoy_dynamic_module_on_program_init",
    "envoy_dynamic_module_on_http_filter_config_new",
    "envoy_dynamic_module_on_http_filter_config_destroy",
    "envoy_dynamic_module_on_http_filter_new",
    "envoy_dynamic_module_on_http_filter_destroy",
    "envoy_dynamic_module_on_http_filter_request_headers",
    "envoy_dynamic_module_on_http_filter_request_body",
    "envoy_dynamic_module_on_http_filter_request_trailers",
    "envoy_dynamic_module_on_http_filter_response_headers",
    "envoy_dynamic_module_on_http_filter_response_body",
    "envoy_dynamic_module_on_http_filter_response_trailers",
    "envoy_dynamic_module_on_http_filter_stream_complete",
    "envoy_dynamic_module_on_http_filter_scheduled",
    "envoy_dynamic_module_on_http_filter_http_callout_done",
    "envoy_dynamic_module_on_http_filter_http_stream_headers",
    "envoy_dynamic_module_on_http_filter_http_stream_data",
    "envoy_dynamic_module_on_http_filter_http_stream_trailers",
    "envoy_dynamic_module_on_http_filter_http_stream_complete",
    "envoy_dynamic_module_on_http_filter_http_stream_reset",
    "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
    "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
];

extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    pub fn envoy_dynamic_module_callback_log_enabled(level: u32) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoy,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: ConfigEnvoy,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: ConfigEnvoy,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoy,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoy,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_get_headers_size(filter: FilterEnvoy, header_type: u32) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoy,
        header_type: u32,
        result: *mut EnvoyHttpHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoy,
        header_type: u32,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoy,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoy,
        status_code: u32,
        headers: *const ModuleHttpHeader,
        headers_length: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_http_get_body_size(filter: FilterEnvoy, body_type: u32) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(filter: FilterEnvoy, body_type: u32) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoy,
        body_type: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter: FilterEnvoy,
        body_type: u32,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_drain_body(filter: FilterEnvoy, body_type: u32, bytes: usize) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_request_body(filter: FilterEnvoy) -> bool;

    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoy,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoy,
        attribute: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_bool(
        filter: FilterEnvoy,
        attribute: u32,
        result: *mut bool,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_reset_stream(
        filter: FilterEnvoy,
        reason: u32,
        details: ModuleBuffer,
    );
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: FilterEnvoy,
        attribute: u32,
        result: *mut u64,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: FilterEnvoy,
        callout_id_out: *mut u64,
        cluster: ModuleBuffer,
        headers: *const ModuleHttpHeader,
        headers_length: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoy);
    pub fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: FilterEnvoy);
    pub fn envoy_dynamic_module_callback_http_clear_route_cache(filter: FilterEnvoy);
}
