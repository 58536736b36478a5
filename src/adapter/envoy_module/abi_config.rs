//! The safe calls into Envoy made at configure time (`abi.rs` holds the
//! ones a stream makes): metrics, the config-time gauge, SDS subscriptions,
//! and what this Envoy's ABI offers. `config` is the configuration being
//! created, live for the call.

use super::abi::{lent, NO_BUFFER};
use super::ffi::{self, ConfigEnvoy, ModuleBuffer};
use crate::adapter::core::MetricKind;

/// Defines a label-less metric; its id, or `None` when Envoy refused.
pub fn define_metric(config: ConfigEnvoy, kind: MetricKind, name: &str) -> Option<usize> {
    let mut id = 0usize;
    let name = ModuleBuffer::of(name.as_bytes());
    let no_labels = std::ptr::null();
    // SAFETY: `config` is the config being created; `id` is a valid pointer.
    let result = unsafe {
        match kind {
            MetricKind::Counter => ffi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                config, name, no_labels, 0, &mut id,
            ),
            MetricKind::Histogram => ffi::envoy_dynamic_module_callback_http_filter_config_define_histogram(
                config, name, no_labels, 0, &mut id,
            ),
            MetricKind::Gauge => {
                ffi::envoy_dynamic_module_callback_http_filter_config_define_gauge(config, name, no_labels, 0, &mut id)
            }
        }
    };
    (result == ffi::METRICS_SUCCESS).then_some(id)
}

/// Sets a gauge at configure time; nothing on an Envoy without the callback
/// (before 1.39: the gauge then stays 0).
pub fn set_gauge(config: ConfigEnvoy, id: usize, value: u64) {
    if let Some(set) = ffi::optional().config_set_gauge {
        // SAFETY: `config` is live; no labels.
        unsafe { set(config, id, std::ptr::null(), 0, value) };
    }
}

/// Whether this Envoy resumes a response the module held (1.39 and newer;
/// the config-time gauge, which 1.38 lacks, marks that ABI generation).
pub fn resumes_held_responses() -> bool {
    ffi::optional().config_set_gauge.is_some()
}

/// Whether this Envoy has the SDS callbacks (1.40 and newer).
pub fn has_sds() -> bool {
    ffi::optional().has_sds()
}

/// Subscribes to an SDS generic secret; Envoy's index for it (from 1), 0
/// when refused or when this Envoy has no SDS callbacks. `source` is a
/// ConfigSource as JSON, or empty.
pub fn subscribe_secret(config: ConfigEnvoy, name: &str, source: &str) -> usize {
    let Some(subscribe) = ffi::optional().secret_subscribe else { return 0 };
    // SAFETY: `config` is the config being created; the buffers outlive the call.
    unsafe { subscribe(config, ModuleBuffer::of(name.as_bytes()), ModuleBuffer::of(source.as_bytes())) }
}

/// An SDS secret at configure time; `None` when Envoy has none for `index`.
pub fn config_secret<'a>(config: ConfigEnvoy, index: usize) -> Option<&'a [u8]> {
    let get = ffi::optional().config_get_secret?;
    let mut out = NO_BUFFER;
    // SAFETY: `config` is live; `out` is a valid pointer.
    let ok = unsafe { get(config, index, &mut out) };
    (ok && !out.ptr.is_null()).then(|| lent(out))
}
