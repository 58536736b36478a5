//! The proxy-wasm adapter: the root context compiles the plan once, and each
//! HTTP context forwards its callbacks to a `Stream` over `WasmHost`. No
//! domain rule lives here.

use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action as WasmAction, ContextType, LogLevel};

use super::abi;
use super::core::{self, seam, MetricKind, Metrics, Plan};
use crate::contract::metrics::{Counter, VM_MEMORY_BYTES};
use crate::host::{
    parse_status, Action, Callout, CalloutResponse, Host, HostError, Level, LocalReply, Peer, SharedStore, StoreError,
};
use crate::plan;
use crate::stream::outbound::Outbound;
use crate::stream::{Mode, Stream};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plan: None, metrics: None, memory_gauge: None, log_level: abi::level(Level::Info) }) });
}}

struct Root {
    plan: Option<Plan>,
    /// Metric ids, defined once per VM.
    metrics: Option<Rc<Metrics<u32>>>,
    /// `combo_webhook_vm_memory_bytes`: the VM's linear memory, so a soak can
    /// tell that it stays flat.
    memory_gauge: Option<u32>,
    /// Envoy's `wasm` log level, read at configure time (not per request).
    log_level: u32,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let started = std::time::Instant::now();
        self.log_level = abi::log_level().unwrap_or(self.log_level);
        let mut log = |level: Level, message: &str| abi::log(level, message);
        let bytes = match abi::buffer(abi::PLUGIN_CONFIGURATION, 0, size) {
            Ok(b) => b,
            Err(s) => {
                log(Level::Error, &format!("combo_webhook: cannot read the plugin configuration: status {}", s.0));
                return false;
            }
        };
        let now = (WasmHost::clock() / 1_000_000_000) as i64;
        let compiled = plan::from_plugin_bytes(&bytes, &|name| std::env::var(name).ok(), now);
        let expiring = compiled.as_ref().map_or(0, |c| c.expiring());
        let Some(plan) = core::configure(compiled, &self.host(), &mut log) else { return false };
        let metrics = Rc::clone(self.metrics.get_or_insert_with(|| {
            Rc::new(Metrics::define(|kind, name| abi::define_metric(wasm_metric(kind), name).ok(), &mut log))
        }));
        if self.memory_gauge.is_none() {
            self.memory_gauge = abi::define_metric(abi::GAUGE, VM_MEMORY_BYTES).ok();
        }
        if let Some(id) = metrics.secrets_expiring {
            let _ = abi::record_metric(id, expiring);
        }
        record_memory(self.memory_gauge);
        log(Level::Info, &core::configured_line(&plan, "proxy-wasm", started));
        self.plan = Some(plan);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let host = seam::host(self.host());
        Some(match self.plan.as_ref()? {
            Plan::Inbound(p) => {
                Box::new(Filter(Stream::new(host, seam::Inbound::new(Arc::clone(p))), self.memory_gauge))
            }
            Plan::Outbound(p) => Box::new(Filter(Stream::new(host, Outbound::new(Arc::clone(p))), self.memory_gauge)),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    /// A host for one stream (or for configuring): debug lines are formatted
    /// only when Envoy would print them.
    fn host(&self) -> WasmHost {
        WasmHost { metrics: self.metrics.clone().unwrap_or_default(), log_level: self.log_level }
    }
}

fn wasm_metric(kind: MetricKind) -> u32 {
    match kind {
        MetricKind::Counter => abi::COUNTER,
        MetricKind::Gauge => abi::GAUGE,
        MetricKind::Histogram => abi::HISTOGRAM,
    }
}

/// One HTTP stream: callbacks forwarded, nothing decided here.
struct Filter<M: Mode>(Stream<seam::Host<WasmHost>, M>, Option<u32>);

/// Records the VM's linear memory in the gauge, every 64th stream per worker.
fn record_memory(gauge: Option<u32>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static STREAMS: AtomicU32 = AtomicU32::new(0);
    if let Some(id) = gauge {
        if STREAMS.fetch_add(1, Ordering::Relaxed) % 64 == 0 {
            let bytes = ::core::arch::wasm32::memory_size(0) as u64 * 65_536;
            let _ = abi::record_metric(id, bytes);
        }
    }
}

/// The answer of the callout being delivered (`body_size` bytes of body).
fn callout_response(body_size: usize) -> CalloutResponse {
    let status =
        abi::header_value(abi::CALLOUT_RESPONSE_HEADERS, ":status").ok().flatten().and_then(|v| parse_status(&v));
    let body = abi::buffer(abi::CALLOUT_RESPONSE_BODY, 0, body_size).unwrap_or_default();
    CalloutResponse { status, body }
}

fn action(a: Action) -> WasmAction {
    match a {
        Action::Continue => WasmAction::Continue,
        Action::Pause => WasmAction::Pause,
    }
}

impl<M: Mode> Context for Filter<M> {
    fn on_http_call_response(&mut self, token: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let response = callout_response(body_size);
        self.0.on_callout_response(token, response);
    }
}

impl<M: Mode> HttpContext for Filter<M> {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> WasmAction {
        #[cfg(feature = "bench-stages")]
        if crate::bench::probe::enabled() {
            probe_calls::on_request_headers();
        }
        action(self.0.on_request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> WasmAction {
        #[cfg(feature = "bench-stages")]
        if end_of_stream && crate::bench::probe::enabled() {
            probe_calls::on_request_body(body_size);
        }
        action(self.0.on_request_body(body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> WasmAction {
        action(self.0.on_request_trailers())
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> WasmAction {
        action(self.0.on_response_headers())
    }

    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> WasmAction {
        action(self.0.on_response_data())
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> WasmAction {
        action(self.0.on_response_data())
    }

    fn on_log(&mut self) {
        self.0.on_done();
        record_memory(self.1);
        #[cfg(feature = "bench-stages")]
        if let Some(totals) = crate::bench::tally::stream_done(1000) {
            abi::log(Level::Warn, &format!("bench_hostcalls {totals}"));
        }
    }
}

/// `impl Host` over the proxy-wasm ABI. Every call's failure is a value.
struct WasmHost {
    metrics: Rc<Metrics<u32>>,
    log_level: u32,
}

impl WasmHost {
    fn property_string(&self, path: &[&str]) -> Option<String> {
        abi::property(path).ok().flatten().and_then(|b| String::from_utf8(b).ok()).filter(|s| !s.is_empty())
    }

    fn clock() -> u64 {
        abi::now_nanos().unwrap_or_else(|_| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        })
    }
}

impl SharedStore for WasmHost {
    fn store_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        abi::shared_data(key).map_err(|_| HostError)
    }

    fn store_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        abi::set_shared_data(key, value, cas).map_err(|s| {
            if s == abi::CAS_MISMATCH {
                StoreError::CasMismatch
            } else {
                StoreError::Unavailable
            }
        })
    }
}

impl Host for WasmHost {
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        abi::header_pairs(abi::REQUEST_HEADERS).map_err(|_| HostError)
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        abi::set_header(abi::REQUEST_HEADERS, name, value).map_err(|_| HostError)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        abi::remove_header(abi::REQUEST_HEADERS, name).map_err(|_| HostError)
    }

    fn request_body(&mut self, len: usize) -> Result<Vec<u8>, HostError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        abi::buffer(abi::REQUEST_BODY, 0, len).map_err(|_| HostError)
    }

    fn replace_request_body(&mut self, old_len: usize, body: &[u8]) -> Result<(), HostError> {
        abi::set_buffer(abi::REQUEST_BODY, 0, old_len, body).map_err(|_| HostError)
    }

    fn send_reply(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        abi::send_local_response(reply.status, &reply.details, &reply.headers, &reply.body).map_err(|_| HostError)
    }

    fn response_status(&mut self) -> Option<u32> {
        crate::host::parse_status(&abi::header_value(abi::RESPONSE_HEADERS, ":status").ok().flatten()?)
    }

    fn response_code_details(&mut self) -> Option<String> {
        self.property_string(&["response", "code_details"])
    }

    fn upstream_attempts(&mut self) -> Option<u64> {
        let bytes = abi::property(&["upstream", "request_attempt_count"]).ok().flatten()?;
        Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
    }

    fn clock_nanos(&mut self) -> u64 {
        WasmHost::clock()
    }

    fn source_address(&mut self) -> Option<String> {
        self.property_string(&["source", "address"])
    }

    fn peer_certificate(&mut self) -> Option<Peer> {
        // `connection.mtls` is true once the peer presented a certificate that
        // the listener's validation context accepted.
        if abi::property(&["connection", "mtls"]).ok().flatten()?.first() != Some(&1) {
            return None;
        }
        Some(Peer {
            uri_sans: self.property_string(&["connection", "uri_san_peer_certificate"]).into_iter().collect(),
            dns_sans: self.property_string(&["connection", "dns_san_peer_certificate"]).into_iter().collect(),
            subject: self.property_string(&["connection", "subject_peer_certificate"]),
        })
    }

    fn count(&mut self, counter: Counter) {
        if let Some(id) = self.metrics.counter(counter) {
            let _ = abi::increment_metric(id, 1);
        }
    }

    fn observe_filter_us(&mut self, us: u64) {
        if let Some(id) = self.metrics.filter_us {
            let _ = abi::record_metric(id, us);
        }
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        abi::set_property(&[key], value).map_err(|_| HostError)
    }

    fn log_enabled(&self, level: Level) -> bool {
        abi::level(level) >= self.log_level
    }

    fn log(&mut self, level: Level, message: &str) {
        if self.log_enabled(level) {
            abi::log(level, message);
        }
    }

    fn http_call(&mut self, call: &Callout) -> Result<u32, HostError> {
        let owned = call.headers();
        let headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Through the SDK, not the raw ABI: its dispatcher must learn the
        // token, or the answer traps the VM ("invalid token_id"). Its
        // `dispatch_http_call` handles every status Envoy returns for this
        // call (Ok, BadArgument for an unknown cluster, InternalFailure).
        let timeout = std::time::Duration::from_millis(call.timeout_ms);
        proxy_wasm::hostcalls::dispatch_http_call(&call.cluster, headers.to_vec(), Some(&call.body), vec![], timeout)
            .map_err(|_| HostError)
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        abi::continue_stream(abi::HTTP_REQUEST_STREAM).map_err(|_| HostError)
    }

    fn resume_response(&mut self) -> Result<(), HostError> {
        abi::continue_stream(abi::HTTP_RESPONSE_STREAM).map_err(|_| HostError)
    }
}

/// Bench builds only: the host calls `crate::bench::probe` times, as this
/// adapter makes them (the probe knows no ABI).
#[cfg(feature = "bench-stages")]
mod probe_calls {
    use super::abi;
    use crate::bench::probe::{self, ignore};
    use crate::host::Level;

    fn clock() -> u64 {
        abi::now_nanos().unwrap_or(0)
    }

    pub fn on_request_headers() {
        let audit = vec![b'x'; 480];
        let value = vec![b'v'; 64];
        let counter = abi::define_metric(abi::COUNTER, "combo_webhook_probe_total").unwrap_or(0);
        let histogram = abi::define_metric(abi::HISTOGRAM, "combo_webhook_probe_us").unwrap_or(0);
        let _ = abi::set_shared_data("combo_probe", &value, None);
        // A replay bucket after a long window at a high rate: 146 entries of 25 bytes.
        let _ = abi::set_shared_data("combo_probe_full_bucket", &[7u8; 146 * 25], None);
        probe::time_header_calls(
            &clock,
            &mut [
                ("get_current_time", &mut || ignore(abi::now_nanos())),
                ("get_header_map_pairs", &mut || ignore(abi::header_pairs(abi::REQUEST_HEADERS))),
                ("get_header_map_value", &mut || ignore(abi::header_value(abi::REQUEST_HEADERS, ":path"))),
                ("replace_header_map_value", &mut || ignore(abi::set_header(abi::REQUEST_HEADERS, "x-probe", "1"))),
                ("remove_header_map_value", &mut || ignore(abi::remove_header(abi::REQUEST_HEADERS, "x-probe"))),
                ("get_property", &mut || ignore(abi::property(&["source", "address"]))),
                ("set_property", &mut || ignore(abi::set_property(&["wasm.combo_probe"], &audit))),
                ("get_shared_data", &mut || ignore(abi::shared_data("combo_probe"))),
                ("set_shared_data", &mut || ignore(abi::set_shared_data("combo_probe", &value, None))),
                ("increment_metric", &mut || ignore(abi::increment_metric(counter, 1))),
                ("record_metric", &mut || ignore(abi::record_metric(histogram, 5))),
                ("get_log_level", &mut || ignore(abi::log_level())),
                ("get_shared_data_3650_bytes", &mut || ignore(abi::shared_data("combo_probe_full_bucket"))),
            ],
        );
    }

    pub fn on_request_body(size: usize) {
        let line = probe::time_body(&clock, &mut || ignore(abi::buffer(abi::REQUEST_BODY, 0, size)), size);
        abi::log(Level::Warn, &line);
    }
}
