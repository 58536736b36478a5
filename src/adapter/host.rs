//! Thin wrappers over host calls that can fail: each failure is logged and
//! mapped, never unwrapped.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, MapType, Status};

use std::cell::OnceCell;

use proxy_wasm::types::MetricType;

use crate::allowlist::parse_source_address;
use crate::audit::{AuditRecord, FILTER_STATE_KEY};
use crate::metrics::Counter;
use crate::error::Reject;
use crate::headers::Headers;
use crate::inbound::{Connection, Peer};
use crate::replay::SharedStore;

/// Unix seconds from the host clock.
pub fn now() -> i64 {
    let t = hostcalls::get_current_time().unwrap_or_else(|_| SystemTime::now());
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// All request headers, each value of a repeated header kept. Read as bytes:
/// the SDK's `get_map` unwraps UTF-8 and would trap the VM on a header value
/// with obs-text (bytes 0x80-0xFF), which HTTP allows and Envoy passes on.
pub fn request_header_pairs() -> Vec<(String, String)> {
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())))
        .collect()
}

pub fn request_headers() -> Headers {
    Headers::new(request_header_pairs())
}

pub fn set_header(name: &str, value: &str) {
    if let Err(s) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)) {
        log::warn!("combo_webhook: cannot set header {name}: {s:?}");
    }
}

pub fn remove_header(name: &str) {
    if let Err(s) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name) {
        log::warn!("combo_webhook: cannot remove header {name}: {s:?}");
    }
}

pub fn response_status() -> Option<u32> {
    hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status").ok().flatten()?.parse().ok()
}

/// What to do with a body callback while the body is being buffered.
pub enum BodyStep {
    TooLarge,
    Complete,
    More,
}

pub fn body_step(buffered: usize, end_of_stream: bool, limit: u64) -> BodyStep {
    if buffered as u64 > limit {
        BodyStep::TooLarge
    } else if end_of_stream {
        BodyStep::Complete
    } else {
        BodyStep::More
    }
}

/// The buffered request body (`size` bytes); `None` when the host refused.
pub fn request_body(size: usize) -> Option<Vec<u8>> {
    if size == 0 {
        return Some(Vec::new());
    }
    match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size) {
        Ok(b) => Some(b.unwrap_or_default()),
        Err(status) => {
            log::warn!("combo_webhook: cannot read request body: {status:?}");
            None
        }
    }
}

/// Replaces the body and fixes `content-length`.
pub fn replace_body(old_len: usize, body: &[u8]) {
    if let Err(s) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, old_len, body) {
        log::warn!("combo_webhook: cannot replace body: {s:?}");
        return;
    }
    set_header("content-length", &body.len().to_string());
}

/// A local reply; the caller returns the `Action::Pause` this gives.
pub fn reply(status: u32, headers: Vec<(&str, &str)>, body: &[u8]) -> Action {
    if let Err(s) = hostcalls::send_http_response(status, headers, Some(body)) {
        log::warn!("combo_webhook: cannot send local reply {status}: {s:?}");
    }
    Action::Pause
}

/// The JSON error reply of SPEC.md.
pub fn reject(r: Reject) -> Action {
    log::debug!("combo_webhook: rejected {} ({})", r.status(), r.code());
    let mut headers = vec![("content-type", "application/json")];
    if r == Reject::MethodNotAllowed {
        headers.push(("allow", "POST"));
    }
    reply(r.status(), headers, r.body().as_bytes())
}

fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

fn property_string(path: &[&str]) -> Option<String> {
    property(path).and_then(|b| String::from_utf8(b).ok()).filter(|s| !s.is_empty())
}

/// Connection facts read from Envoy's attributes, each at most once.
#[derive(Default)]
pub struct HostConnection {
    source: OnceCell<Option<String>>,
}

impl HostConnection {
    /// `source.address` as Envoy gives it (`ip:port`).
    pub fn source_address(&self) -> Option<&str> {
        self.source.get_or_init(|| property_string(&["source", "address"])).as_deref()
    }
}

impl Connection for HostConnection {
    fn source_ip(&self) -> Option<IpAddr> {
        self.source_address().and_then(parse_source_address)
    }

    fn peer(&self) -> Option<Peer> {
        // `connection.mtls` is true once the peer presented a certificate that
        // the listener's validation context accepted.
        if property(&["connection", "mtls"])?.first() != Some(&1) {
            return None;
        }
        Some(Peer {
            uri_san: property_string(&["connection", "uri_san_peer_certificate"]),
            dns_san: property_string(&["connection", "dns_san_peer_certificate"]),
            subject: property_string(&["connection", "subject_peer_certificate"]),
        })
    }
}

/// Envoy's shared data: one map per vm_id, shared by all workers.
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), bool> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(true),
            Err(_) => Err(false),
        }
    }
}

/// Counter ids, defined once per VM at configure time.
pub struct Metrics {
    ids: Vec<Option<u32>>,
}

impl Metrics {
    pub fn define() -> Self {
        let ids = Counter::all()
            .map(|c| match hostcalls::define_metric(MetricType::Counter, &c.name()) {
                Ok(id) => Some(id),
                Err(s) => {
                    log::warn!("combo_webhook: cannot define metric {}: {s:?}", c.name());
                    None
                }
            })
            .collect();
        Metrics { ids }
    }

    pub fn inc(&self, c: Counter) {
        if let Some(Some(id)) = self.ids.get(c.index()) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }
}

/// Publishes the record as filter state, for access logs.
pub fn publish(record: &AuditRecord) {
    let json = record.to_json();
    if let Err(s) = hostcalls::set_property(vec![FILTER_STATE_KEY], Some(json.as_bytes())) {
        log::debug!("combo_webhook: cannot set filter state: {s:?}");
    }
}

/// Writes the audit log line (once per delivery, at the end of the stream).
pub fn log_audit(record: &AuditRecord) {
    log::info!("{}", record.log_line());
}
