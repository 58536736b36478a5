//! The proxy-wasm adapter: the root and HTTP contexts, and every host call.
//!
//! Host calls go through `proxy_wasm::hostcalls`, which return `Result`: the
//! SDK's trait helpers unwrap the host status, and a panic would trap the VM
//! and turn this worker into a 503 machine.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::allowlist::parse_source_address;
use crate::annotate::ANNOTATION_HEADERS;
use crate::error::Reject;
use crate::headers::Headers;
use crate::inbound::{self, Connection, Head, Peer, Pending, Verdict};
use crate::plan::{self, Plan};
use crate::replay::{self, ReplayKey, SharedStore};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plan: None }) });
}}

struct Root {
    plan: Option<Rc<Plan>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        follow_host_log_level();
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(b) => b.unwrap_or_default(),
            Err(status) => {
                log::error!("combo_webhook: cannot read plugin configuration: {status:?}");
                return false;
            }
        };
        match plan::from_plugin_bytes(&bytes, &|name| std::env::var(name).ok()) {
            Ok(plan) => {
                for w in &plan.warnings {
                    log::warn!("combo_webhook: {w}");
                }
                if plan.replay.enabled {
                    replay::create_buckets(&HostStore);
                }
                log::info!("combo_webhook: configured {} trigger(s)", plan.triggers.len());
                self.plan = Some(Rc::new(plan));
                true
            }
            Err(errors) => {
                for e in errors {
                    log::error!("combo_webhook: invalid configuration: {e}");
                }
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plan = Rc::clone(self.plan.as_ref()?);
        Some(Box::new(Filter { plan, state: State::Headers }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Debug lines are formatted only when Envoy would print them.
fn follow_host_log_level() {
    if let Ok(level) = hostcalls::get_log_level() {
        log::set_max_level(match level {
            LogLevel::Trace => log::LevelFilter::Trace,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Error | LogLevel::Critical => log::LevelFilter::Error,
        });
    }
}

enum State {
    Headers,
    /// Not a webhook: let everything through.
    PassThrough,
    AwaitingBody { pending: Pending, headers: Headers, buffered: usize },
    /// A local reply was sent; nothing more goes upstream.
    Answered,
    /// Verified and sent upstream; remembered for replay once the backend says 2xx.
    Forwarded { replay: Option<(ReplayKey, i64)> },
}

struct Filter {
    plan: Rc<Plan>,
    state: State,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let pairs = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let (spoofed, pairs): (Vec<_>, Vec<_>) =
            pairs.into_iter().partition(|(k, _)| ANNOTATION_HEADERS.contains(&k.as_str()));
        for (name, _) in &spoofed {
            if let Err(status) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name) {
                log::warn!("combo_webhook: cannot remove header {name}: {status:?}");
            }
        }
        let headers = Headers::new(pairs);
        let method = headers.first(":method").unwrap_or("");
        let path = headers.first(":path").unwrap_or("");
        match inbound::check_head(&self.plan, method, path, &headers, &HostConnection, now()) {
            Head::PassThrough => {
                self.state = State::PassThrough;
                Action::Continue
            }
            Head::Reject(r) => self.reject(r),
            Head::ReadBody(pending) => {
                self.state = State::AwaitingBody { pending, headers, buffered: 0 };
                if end_of_stream {
                    self.finish()
                } else {
                    Action::Pause
                }
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &mut self.state {
            State::AwaitingBody { buffered, .. } => {
                *buffered = body_size;
                if inbound::body_over_limit(&self.plan, body_size) {
                    self.reject(Reject::PayloadTooLarge)
                } else if end_of_stream {
                    self.finish()
                } else {
                    Action::Pause
                }
            }
            State::Answered => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match self.state {
            State::AwaitingBody { .. } => self.finish(),
            State::Answered => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let State::Forwarded { replay: Some((key, expires)) } = &self.state {
            let status = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status").ok().flatten();
            if status.is_some_and(|s| s.starts_with('2')) {
                let cap = replay::per_bucket(self.plan.replay.max_entries);
                if !replay::remember(&HostStore, key, *expires, now(), cap) {
                    log::warn!("combo_webhook: replay cache busy; delivery not remembered");
                }
            }
        }
        Action::Continue
    }
}

impl Filter {
    fn reject(&mut self, r: Reject) -> Action {
        log::debug!("combo_webhook: rejected {} ({})", r.status(), r.code());
        let mut headers = vec![("content-type", "application/json")];
        if r == Reject::MethodNotAllowed {
            headers.push(("allow", "POST"));
        }
        self.answer(r.status(), headers, r.body().as_bytes())
    }

    fn answer(&mut self, status: u32, headers: Vec<(&str, &str)>, body: &[u8]) -> Action {
        self.state = State::Answered;
        if let Err(s) = hostcalls::send_http_response(status, headers, Some(body)) {
            log::warn!("combo_webhook: cannot send local reply {status}: {s:?}");
        }
        Action::Pause
    }

    /// The whole body is buffered: verify it and forward or answer.
    fn finish(&mut self) -> Action {
        let State::AwaitingBody { pending, headers, buffered } = std::mem::replace(&mut self.state, State::Forwarded { replay: None })
        else {
            return Action::Continue;
        };
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, buffered) {
            Ok(b) => b.unwrap_or_default(),
            Err(status) => {
                log::warn!("combo_webhook: cannot read request body: {status:?}");
                return self.reject(Reject::InvalidJson);
            }
        };
        let now = now();
        let secret = match inbound::verify_body(&pending, &body, now) {
            Ok(s) => s,
            Err(r) => return self.reject(r),
        };
        let replay_entry = inbound::replay_entry(&self.plan, &pending, now);
        if let Some((key, _)) = &replay_entry {
            if replay::seen(&HostStore, key, now) {
                log::debug!("combo_webhook: trigger {}: duplicate delivery answered at the edge", pending.trigger.id);
                return self.answer(200, vec![("content-type", "application/json")], br#"{"status":"duplicate"}"#);
            }
        }
        match inbound::annotate(&self.plan, &pending, secret, &headers, &body) {
            Verdict::Reject(r) => self.reject(r),
            Verdict::Ignored => self.answer(
                202,
                vec![("content-type", "application/json")],
                br#"{"status":"ignored"}"#,
            ),
            Verdict::Forward(a) => {
                if !a.failed_inputs.is_empty() {
                    log::warn!(
                        "combo_webhook: trigger {}: inputs rendered as null after a template error: {}",
                        pending.trigger.id,
                        a.failed_inputs.join(", ")
                    );
                }
                if let Some(new_body) = &a.body {
                    set_body(buffered, new_body);
                }
                for (name, value) in &a.headers {
                    set_header(name, value);
                }
                self.state = State::Forwarded { replay: replay_entry };
                Action::Continue
            }
        }
    }
}

fn set_header(name: &str, value: &str) {
    if let Err(s) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)) {
        log::warn!("combo_webhook: cannot set header {name}: {s:?}");
    }
}

fn set_body(old_len: usize, body: &[u8]) {
    if let Err(s) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, old_len, body) {
        log::warn!("combo_webhook: cannot replace body: {s:?}");
        return;
    }
    set_header("content-length", &body.len().to_string());
}

/// Unix seconds from the host clock.
fn now() -> i64 {
    let t = hostcalls::get_current_time().unwrap_or_else(|_| SystemTime::now());
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

fn property_string(path: &[&str]) -> Option<String> {
    property(path).and_then(|b| String::from_utf8(b).ok()).filter(|s| !s.is_empty())
}

/// Connection facts read from Envoy's attributes.
struct HostConnection;

impl Connection for HostConnection {
    fn source_ip(&self) -> Option<IpAddr> {
        property_string(&["source", "address"]).and_then(|s| parse_source_address(&s))
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
struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), bool> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(proxy_wasm::types::Status::CasMismatch) => Err(true),
            Err(_) => Err(false),
        }
    }
}
