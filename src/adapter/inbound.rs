//! The inbound HTTP context: header checks, body buffering, annotation,
//! replay bookkeeping, audit and counters.

use std::rc::Rc;
use std::time::Instant;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host::{self, BodyStep, HostConnection, HostStore, Metrics};
use crate::annotate::ANNOTATION_HEADERS;
use crate::audit::{self, AuditRecord, Direction};
use crate::error::Reject;
use crate::headers::Headers;
use crate::inbound::{self, Head, Pending, Verdict};
use crate::metrics::Counter;
use crate::plan::{Compiled, Plan};
use crate::replay::{self, ReplayKey, Snapshot};

enum State {
    Headers,
    /// Not a webhook: let everything through.
    PassThrough,
    AwaitingBody { pending: Pending, headers: Headers, buffered: usize },
    /// A local reply was sent; nothing more goes upstream.
    Answered,
    /// Verified and sent upstream; remembered for replay once the backend says 2xx.
    Forwarded { replay: Option<(ReplayKey, i64, Snapshot)> },
}

pub struct InboundFilter {
    compiled: Rc<Compiled>,
    metrics: Rc<Metrics>,
    state: State,
    /// Present for webhook requests (paths under the prefix).
    audit: Option<AuditRecord>,
    /// Start of the running callback, for `verify_us`.
    started: Instant,
}

impl InboundFilter {
    pub fn new(compiled: Rc<Compiled>, metrics: Rc<Metrics>) -> Self {
        InboundFilter { compiled, metrics, state: State::Headers, audit: None, started: Instant::now() }
    }

    fn plan(&self) -> Option<&Plan> {
        match &*self.compiled {
            Compiled::Inbound(p) => Some(p),
            Compiled::Outbound(_) => None,
        }
    }

    /// Adds the time spent in this callback so far to the record (before it
    /// is published), and restarts the clock.
    fn settle_time(&mut self) {
        if let Some(a) = &mut self.audit {
            a.verify_us += self.started.elapsed().as_micros() as u64;
        }
        self.started = Instant::now();
    }
}

impl Context for InboundFilter {}

impl HttpContext for InboundFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.started = Instant::now();
        let action = self.request_headers(end_of_stream);
        self.settle_time();
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.started = Instant::now();
        let limit = self.plan().map_or(0, |p| p.max_body_bytes);
        let action = match &mut self.state {
            State::AwaitingBody { buffered, .. } => {
                *buffered = body_size;
                match host::body_step(body_size, end_of_stream, limit) {
                    BodyStep::TooLarge => self.reject(Reject::PayloadTooLarge),
                    BodyStep::Complete => self.finish(),
                    BodyStep::More => Action::Pause,
                }
            }
            State::Answered => Action::Pause,
            _ => Action::Continue,
        };
        self.settle_time();
        action
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match self.state {
            State::AwaitingBody { .. } => self.finish(),
            State::Answered => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let State::Forwarded { replay: entry } = std::mem::replace(&mut self.state, State::Forwarded { replay: None })
        else {
            return Action::Continue;
        };
        let status = host::response_status();
        if let (Some((key, expires, snapshot)), Some(plan)) = (entry, self.plan()) {
            if status.is_some_and(|s| (200..300).contains(&s)) {
                let cap = replay::per_bucket(plan.replay.max_entries);
                if !replay::remember(&HostStore, &key, expires, host::now(), cap, Some(snapshot)) {
                    log::warn!("combo_webhook: replay cache busy; delivery not remembered");
                }
            }
        }
        if let Some(a) = &mut self.audit {
            a.backend_status = status;
            host::publish(a);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(a) = &self.audit {
            host::log_audit(a);
        }
    }
}

impl InboundFilter {
    fn request_headers(&mut self, end_of_stream: bool) -> Action {
        let compiled = Rc::clone(&self.compiled);
        let Compiled::Inbound(plan) = &*compiled else { return Action::Continue };
        // Client-sent annotations are removed from every request, webhook or not.
        let mut pairs = host::request_header_pairs();
        pairs.retain(|(k, _)| {
            let spoofed = ANNOTATION_HEADERS.contains(&k.as_str());
            if spoofed {
                host::remove_header(k);
            }
            !spoofed
        });
        let headers = Headers::new(pairs);
        let method = headers.first(":method").unwrap_or("");
        let path = headers.first(":path").unwrap_or("");
        let Some(segment) = inbound::trigger_segment(&plan.path_prefix, path) else {
            self.state = State::PassThrough;
            return Action::Continue;
        };
        let conn = HostConnection::default();
        let mut record = AuditRecord::new(Direction::Inbound);
        record.trigger_id = Some(segment.to_string());
        let decision = inbound::check_head(plan, method, path, &headers, &conn, host::now());
        record.source_address = conn.source_address().map(str::to_string);
        if let Some(t) = plan.triggers.get(segment) {
            record.headers_sha256 = Some(audit::headers_sha256(&headers, t.profile.audit_headers()));
        }
        self.audit = Some(record);
        match decision {
            Head::PassThrough => {
                self.state = State::PassThrough;
                Action::Continue
            }
            Head::Reject(r) => self.reject(r),
            Head::ReadBody(pending) => {
                if let (Some(a), Some(ts)) = (&mut self.audit, pending.credentials.timestamp) {
                    a.timestamp = Some(ts);
                    a.skew_seconds = Some(host::now() - ts);
                }
                self.state = State::AwaitingBody { pending, headers, buffered: 0 };
                if end_of_stream {
                    self.finish()
                } else {
                    Action::Pause
                }
            }
        }
    }

    fn reject(&mut self, r: Reject) -> Action {
        self.state = State::Answered;
        self.metrics.inc(Counter::Rejected(r));
        self.settle_time();
        if let Some(a) = &mut self.audit {
            a.reject(r);
            host::publish(a);
        }
        host::reject(r)
    }

    fn answer(&mut self, verdict: audit::Verdict, counter: Counter, status: u32, body: &[u8]) -> Action {
        self.state = State::Answered;
        self.metrics.inc(counter);
        self.settle_time();
        if let Some(a) = &mut self.audit {
            a.answer(verdict, Some(status));
            host::publish(a);
        }
        host::reply(status, vec![("content-type", "application/json")], body)
    }

    /// The whole body is buffered: verify it, then forward or answer.
    fn finish(&mut self) -> Action {
        let State::AwaitingBody { pending, headers, buffered } =
            std::mem::replace(&mut self.state, State::Forwarded { replay: None })
        else {
            return Action::Continue;
        };
        let compiled = Rc::clone(&self.compiled);
        let Compiled::Inbound(plan) = &*compiled else { return Action::Continue };
        let Some(body) = host::request_body(buffered) else {
            return self.reject(Reject::InvalidJson);
        };
        if let Some(a) = &mut self.audit {
            a.body(&body);
            a.delivery_id = Some(pending.credentials.delivery_id.clone());
        }
        let now = host::now();
        let secret = match inbound::verify_body(&pending, &body, now) {
            Ok(s) => s,
            Err(r) => return self.reject(r),
        };
        if let Some(a) = &mut self.audit {
            a.key_id = Some(secret.key_id.clone());
        }
        let mut replay_entry = None;
        if let Some((key, expires)) = inbound::replay_entry(plan, &pending, now) {
            let (hit, snapshot) = replay::seen(&HostStore, &key, now);
            if hit {
                return self.answer(audit::Verdict::Duplicate, Counter::Duplicate, 200, br#"{"status":"duplicate"}"#);
            }
            replay_entry = Some((key, expires, snapshot));
        }
        match inbound::annotate(plan, &pending, secret, &headers, &body) {
            Verdict::Reject(r) => self.reject(r),
            Verdict::Ignored => self.answer(audit::Verdict::Ignored, Counter::Ignored, 202, br#"{"status":"ignored"}"#),
            Verdict::Forward(a) => {
                if !a.failed_inputs.is_empty() {
                    log::warn!(
                        "combo_webhook: trigger {}: inputs rendered as null after a template error: {}",
                        pending.trigger.id,
                        a.failed_inputs.join(", ")
                    );
                }
                if let Some(new_body) = &a.body {
                    host::replace_body(buffered, new_body);
                }
                for (name, value) in &a.headers {
                    host::set_header(name, value);
                }
                self.metrics.inc(Counter::Accepted);
                self.settle_time();
                if let Some(rec) = &mut self.audit {
                    rec.answer(audit::Verdict::Accepted, None);
                    // Published once the backend answers (one filter-state write per request).
                }
                self.state = State::Forwarded { replay: replay_entry };
                Action::Continue
            }
        }
    }
}
