//! The host port: everything one request needs from its proxy. The stream
//! state machines (`crate::stream`) are generic over it, so the proxy-wasm
//! adapter, the in-memory host of the tests and any later adapter drive the
//! very same code, and the generic costs nothing at run time.
//!
//! Every call that can fail returns a value; the core decides what a failure
//! means (fail closed), never the adapter.

mod headers;
pub mod local_store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use headers::{Headers, Repeated};

use crate::contract::metrics::Counter;

/// Envoy's response code details when the upstream itself answered
/// (`Host::response_code_details`).
pub const VIA_UPSTREAM: &str = "via_upstream";

/// A reply the filter answers with itself (a local reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    /// `combo_webhook_<code or verdict>`, for `%RESPONSE_CODE_DETAILS%` (no whitespace).
    pub details: String,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: std::borrow::Cow<'static, [u8]>,
}

/// What a callback tells the proxy to do with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

/// The host refused a call (it said why in its own log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError;

/// A failed shared-store write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Another writer changed the value since it was read: read again.
    CasMismatch,
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// The verified client certificate of the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    pub subject: Option<String>,
}

/// An HTTP callout to an upstream cluster of the proxy: a POST of JSON
/// (etcd, a key server that takes a query), or a GET (a published key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    pub cluster: String,
    pub authority: String,
    /// `POST` with a JSON body, or `GET` without one.
    pub post: bool,
    pub path: String,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

impl Callout {
    /// The callout's request headers, built here once for every adapter (the
    /// adapters used to build their own, and drifted).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (":method", if self.post { "POST" } else { "GET" }.to_string()),
            (":path", self.path.clone()),
            (":authority", self.authority.clone()),
        ];
        if self.post {
            headers.push(("content-type", "application/json".to_string()));
            headers.push(("content-length", self.body.len().to_string()));
        }
        headers
    }
}

/// An HTTP `:status` value as the proxy hands it over; anything else is
/// `None` (read the same way for the upstream's answer and a callout's).
pub fn parse_status(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.trim().parse().ok().filter(|s| (100..1000).contains(s))
}

/// A callout's answer: `status` is `None` when it failed or timed out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalloutResponse {
    pub status: Option<u32>,
    pub body: Vec<u8>,
}

/// A key-value store shared by every worker of one proxy, with
/// compare-and-swap (Envoy's shared data).
pub trait SharedStore {
    /// The value and its CAS token.
    fn store_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError>;
    /// Writes when `cas` still matches (`None`: unconditionally).
    fn store_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

pub trait Host: SharedStore {
    /// Request headers: lowercase names, every value of a repeated header,
    /// values as the bytes on the wire.
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError>;
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// The first `len` bytes of the buffered request body.
    fn request_body(&mut self, len: usize) -> Result<Vec<u8>, HostError>;
    /// Replaces the buffered body (`old_len` bytes) with `body`.
    fn replace_request_body(&mut self, old_len: usize, body: &[u8]) -> Result<(), HostError>;
    /// A local reply; the stream then pauses for good.
    fn send_reply(&mut self, reply: &LocalReply) -> Result<(), HostError>;
    /// The upstream response's `:status`.
    fn response_status(&mut self) -> Option<u32>;
    /// Envoy's response code details (`via_upstream` when the backend itself
    /// answered): read only to settle a forwarded delivery.
    fn response_code_details(&mut self) -> Option<String>;
    /// How many upstream requests the router started for this stream (0:
    /// none; more than 1: it retried): read only to settle.
    fn upstream_attempts(&mut self) -> Option<u64>;
    /// Unix time in nanoseconds. The stream reads it at the start and at the
    /// end of each callback only: the start gives the second every check of
    /// the phase agrees on, the two give the filter's own time. (In the VM a
    /// clock read is a host call.)
    fn clock_nanos(&mut self) -> u64;
    /// The downstream address (`ip:port`) after the proxy's XFF handling.
    fn source_address(&mut self) -> Option<String>;
    /// The verified peer certificate, when the client presented one.
    fn peer_certificate(&mut self) -> Option<Peer>;
    fn count(&mut self, counter: Counter);
    /// The filter's own time on one delivery (the `combo_webhook_filter_us` histogram).
    fn observe_filter_us(&mut self, us: u64);
    /// Filter state for access logs (`%FILTER_STATE(...)%`).
    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError>;
    fn log_enabled(&self, level: Level) -> bool;
    fn log(&mut self, level: Level, message: &str);
    /// Sends a callout; the adapter hands its answer to the stream's
    /// `on_callout_response` with the token returned here.
    fn http_call(&mut self, call: &Callout) -> Result<u32, HostError>;
    /// Resumes a request paused while a callout was out.
    fn resume_request(&mut self) -> Result<(), HostError>;
    /// Resumes a response paused while the replay store settled.
    fn resume_response(&mut self) -> Result<(), HostError>;
}
