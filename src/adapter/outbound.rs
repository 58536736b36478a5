//! The outbound HTTP context: pick or skip the event, sign it; audit and counters.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host::{self, BodyStep, Metrics};
use crate::audit::{self, AuditRecord, Direction};
use crate::error::Reject;
use crate::headers::Headers;
use crate::metrics::Counter;
use crate::outbound::{self, Outcome, Subscription};
use crate::plan::Compiled;
use crate::signature::{COMBO_SIGNATURE, COMBO_TIMESTAMP};

enum State {
    Headers,
    AwaitingBody { sub: Arc<Subscription>, headers: Headers, buffered: usize },
    Answered,
    Sent,
}

pub struct OutboundFilter {
    compiled: Rc<Compiled>,
    metrics: Rc<Metrics>,
    state: State,
    audit: AuditRecord,
    /// Start of the running callback, for `verify_us`.
    started: Instant,
}

impl OutboundFilter {
    pub fn new(compiled: Rc<Compiled>, metrics: Rc<Metrics>) -> Self {
        OutboundFilter {
            compiled,
            metrics,
            state: State::Headers,
            audit: AuditRecord::new(Direction::Outbound),
            started: Instant::now(),
        }
    }

    fn reject(&mut self, r: Reject) -> Action {
        self.state = State::Answered;
        self.metrics.inc(Counter::Rejected(r));
        self.settle_time();
        self.audit.reject(r);
        host::publish(&self.audit);
        host::reject(r)
    }

    fn finish(&mut self) -> Action {
        let State::AwaitingBody { sub, headers, buffered } = std::mem::replace(&mut self.state, State::Sent) else {
            return Action::Continue;
        };
        let compiled = Rc::clone(&self.compiled);
        let Compiled::Outbound(plan) = &*compiled else { return Action::Continue };
        let Some(body) = host::request_body(buffered) else { return self.reject(Reject::InvalidJson) };
        self.audit.body(&body);
        let now = host::now();
        match outbound::decide(plan, &sub, &headers, &body, now) {
            Err(r) => self.reject(r),
            Ok(Outcome::Skip { event }) => {
                self.state = State::Answered;
                self.metrics.inc(Counter::OutboundSkipped);
                self.settle_time();
                self.audit.event = Some(event);
                self.audit.answer(audit::Verdict::Skipped, Some(204));
                host::publish(&self.audit);
                host::reply(204, vec![(outbound::DELIVERY_STATUS_HEADER, "skipped")], b"")
            }
            Ok(Outcome::Deliver(d)) => {
                host::remove_header(outbound::SUBSCRIPTION_HEADER);
                for (name, value) in &d.headers {
                    host::set_header(name, value);
                }
                self.metrics.inc(Counter::OutboundSigned);
                self.settle_time();
                let signed = Headers::new(
                    d.headers
                        .iter()
                        .filter(|(k, _)| *k == COMBO_SIGNATURE || *k == COMBO_TIMESTAMP)
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                );
                self.audit.headers_sha256 = Some(audit::headers_sha256(&signed, &[COMBO_SIGNATURE, COMBO_TIMESTAMP]));
                self.audit.event = Some(d.event);
                self.audit.key_id = Some(d.key_id);
                self.audit.delivery_id = Some(d.delivery_id);
                self.audit.timestamp = Some(now);
                self.audit.skew_seconds = Some(0);
                self.audit.answer(audit::Verdict::Signed, None);
                // Published once the subscriber answers (one filter-state write per request).
                Action::Continue
            }
        }
    }

    /// Runs a callback, counting its time into `verify_us`.
    fn timed<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.started = Instant::now();
        let out = f(self);
        self.settle_time();
        out
    }

    /// Adds the time spent in this callback so far (before the record is
    /// published), and restarts the clock.
    fn settle_time(&mut self) {
        self.audit.verify_us += self.started.elapsed().as_micros() as u64;
        self.started = Instant::now();
    }
}

impl Context for OutboundFilter {}

impl HttpContext for OutboundFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.timed(|this| {
            let compiled = Rc::clone(&this.compiled);
            let Compiled::Outbound(plan) = &*compiled else { return Action::Continue };
            let headers = host::request_headers();
            this.audit.subscription_id = headers.first(outbound::SUBSCRIPTION_HEADER).map(str::to_string);
            let method = headers.first(":method").unwrap_or("");
            match outbound::check_head(plan, method, &headers) {
                Err(r) => this.reject(r),
                Ok(sub) => {
                    this.state = State::AwaitingBody { sub, headers, buffered: 0 };
                    if end_of_stream {
                        this.finish()
                    } else {
                        Action::Pause
                    }
                }
            }
        })
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.timed(|this| {
            let limit = match &*this.compiled {
                Compiled::Outbound(p) => p.max_body_bytes,
                Compiled::Inbound(_) => 0,
            };
            match &mut this.state {
                State::AwaitingBody { buffered, .. } => {
                    *buffered = body_size;
                    match host::body_step(body_size, end_of_stream, limit) {
                        BodyStep::TooLarge => this.reject(Reject::PayloadTooLarge),
                        BodyStep::Complete => this.finish(),
                        BodyStep::More => Action::Pause,
                    }
                }
                State::Answered => Action::Pause,
                _ => Action::Continue,
            }
        })
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match self.state {
            State::AwaitingBody { .. } => self.finish(),
            State::Answered => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if matches!(self.state, State::Sent) {
            self.audit.backend_status = host::response_status();
            host::publish(&self.audit);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        host::log_audit(&self.audit);
    }
}
