//! The per-request state machine, generic over the host port and the mode.
//!
//! `Stream` owns what both modes share: the states and their transitions,
//! pause and continue, body buffering and the 413 check while streaming,
//! trailers, turning an outcome into a reply, and the audit record, published
//! exactly once. A `Mode` (inbound or outbound) owns only its domain rules:
//! what the header phase checks and what the body phase decides.

pub mod inbound;
mod mode;
pub mod outbound;
mod outcome;
mod state;

pub use mode::{Head, Mode};
pub use outcome::{Forward, Outcome, Reply, Step};

#[cfg(test)]
mod tests;

use crate::contract::audit::{AuditRecord, FILTER_STATE_KEY};
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::host::{Action, CalloutResponse, Headers, Host, Level};
use crate::rules::ending::{self, Ending};
use state::State;

pub struct Stream<H: Host, M: Mode> {
    host: H,
    mode: M,
    state: State<M::Pending, M::Held, M::Call>,
    /// `None` for requests the filter passes through.
    audit: Option<AuditRecord>,
    published: bool,
    logged: bool,
    /// Start of the running callback: the audit counts the filter's own
    /// work, never the time spent waiting for the client or the upstream.
    callback_started: Option<u64>,
    /// Unix seconds of the current callback's start: every check of a phase
    /// agrees on it.
    now: i64,
    /// The filter's own time so far, in nanoseconds.
    work: u64,
}

impl<H: Host, M: Mode> Stream<H, M> {
    pub fn new(host: H, mode: M) -> Self {
        Stream {
            host,
            mode,
            state: State::Start,
            audit: None,
            published: false,
            logged: false,
            callback_started: None,
            now: 0,
            work: 0,
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    pub fn into_host(self) -> H {
        self.host
    }

    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Action {
        self.timed(|s| {
            if !matches!(s.state, State::Start) {
                return Action::Continue;
            }
            let headers = match s.host.request_headers() {
                Ok(pairs) => Headers::from_bytes(pairs),
                Err(_) => {
                    s.audit = Some(AuditRecord::new(s.mode.direction()));
                    return s.answer(Outcome::Reject(Reject::HostError));
                }
            };
            let now = s.now;
            let mut audit = AuditRecord::new(s.mode.direction());
            match s.mode.head(&mut s.host, headers, now, &mut audit) {
                Head::PassThrough => {
                    s.state = State::PassThrough;
                    Action::Continue
                }
                Head::Reject(r) => {
                    s.audit = Some(audit);
                    s.answer(Outcome::Reject(r))
                }
                Head::Handshake(a) => {
                    s.audit = Some(audit);
                    s.answer(Outcome::Handshake(a))
                }
                Head::ReadBody(pending) => {
                    s.audit = Some(audit);
                    s.state = State::Buffering { pending, buffered: 0 };
                    if end_of_stream {
                        s.finish()
                    } else {
                        Action::Pause
                    }
                }
            }
        })
    }

    /// `size` is everything buffered so far.
    pub fn on_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        // A chunk that only grows the buffer is not worth two clock reads.
        if let State::Buffering { buffered, .. } = &mut self.state {
            if !end_of_stream && size as u64 <= self.mode.max_body_bytes() {
                *buffered = size;
                return Action::Pause;
            }
        }
        self.timed(|s| match &mut s.state {
            State::Buffering { buffered, .. } => {
                *buffered = size;
                if size as u64 > s.mode.max_body_bytes() {
                    s.answer(Outcome::Reject(Reject::PayloadTooLarge))
                } else if end_of_stream {
                    s.finish()
                } else {
                    Action::Pause
                }
            }
            State::Answered | State::Calling { .. } => Action::Pause,
            _ => Action::Continue,
        })
    }

    /// Trailers end the body.
    pub fn on_request_trailers(&mut self) -> Action {
        self.timed(|s| match s.state {
            State::Buffering { .. } => s.finish(),
            State::Answered | State::Calling { .. } => Action::Pause,
            _ => Action::Continue,
        })
    }

    /// A callout this stream sent has answered (`response.status` is `None`
    /// when it failed). Answers to callouts the stream does not wait for
    /// (fire-and-forget) are ignored.
    pub fn on_callout_response(&mut self, token: u32, response: CalloutResponse) {
        self.timed(|s| {
            if matches!(s.state, State::Settling { token: t } if t == token) {
                s.state = State::Done;
                if response.status.is_none_or(|st| !(200..300).contains(&st)) {
                    s.host.count(Counter::ReplayStoreError);
                    s.host.log(Level::Warn, "combo_webhook: the replay store did not confirm a settle");
                }
                if s.host.resume_response().is_err() {
                    s.host.log(Level::Warn, "combo_webhook: the proxy refused to resume the response");
                }
                return;
            }
            if !matches!(s.state, State::Calling { token: t, .. } if t == token) {
                return;
            }
            let State::Calling { call, buffered, .. } = std::mem::replace(&mut s.state, State::Answered) else {
                return;
            };
            let now = s.now;
            let Some(audit) = s.audit.as_mut() else {
                // Cannot happen (a stream that calls out has a record); never hang.
                s.answer(Outcome::Reject(Reject::HostError));
                return;
            };
            let step = s.mode.on_callout(&mut s.host, call, response, now, audit);
            if s.step(step, buffered) == Action::Continue && s.host.resume_request().is_err() {
                s.host.log(Level::Warn, "combo_webhook: the proxy refused to resume the request");
            }
        });
    }

    pub fn on_response_headers(&mut self) -> Action {
        // Only a forwarded delivery has anything to settle: every other
        // stream (pass-through traffic above all) costs no clock read here.
        if !matches!(self.state, State::Forwarded(_)) {
            return Action::Continue;
        }
        self.timed(|s| {
            let status = s.host.response_status();
            let waiting = s.settle_answered(status);
            s.publish();
            if let Some(token) = waiting {
                s.state = State::Settling { token };
                return Action::Pause;
            }
            Action::Continue
        })
    }

    /// Response body and trailers: held back while the answer waits for the
    /// store (a filter that lets data through releases the headers too).
    pub fn on_response_data(&self) -> Action {
        if matches!(self.state, State::Settling { .. }) {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// The stream is over (Envoy's `on_log`, after `on_done`): whatever the
    /// mode still holds is settled without an answer, and the audit record
    /// is published and logged if it was not yet.
    pub fn on_done(&mut self) {
        // Not a delivery (passed through, or a route with the filter off):
        // nothing to settle, publish or log, and no clock to read.
        if self.audit.is_none() {
            return;
        }
        self.timed(|s| {
            if let State::Forwarded(_) = s.state {
                // Forwarded, and no answer passed: reset, timeout, client gone.
                s.settle_answered(None);
            }
            s.publish();
            if !s.logged {
                s.logged = true;
                if let Some(a) = &s.audit {
                    if s.host.log_enabled(Level::Info) {
                        s.host.log(Level::Info, &a.log_line());
                    }
                }
            }
        })
    }

    /// Settles a forwarded request by what reached the response phase
    /// (`None`: nothing) and Envoy's response code details.
    fn settle_answered(&mut self, status: Option<u32>) -> Option<u32> {
        if !matches!(self.state, State::Forwarded(_)) {
            return None;
        }
        let details = self.host.response_code_details();
        let attempts = self.host.upstream_attempts();
        if let Some(a) = &mut self.audit {
            a.backend_status = status;
        }
        self.settle(ending::ending(status, details.as_deref(), attempts))
    }

    /// Settles what the mode holds; the token of a callout to wait for.
    fn settle(&mut self, ending: Ending) -> Option<u32> {
        let State::Forwarded(held) = std::mem::replace(&mut self.state, State::Done) else {
            return None;
        };
        let now = self.now;
        let mut scratch = None;
        let audit = match self.audit.as_mut() {
            Some(a) => a,
            None => scratch.insert(AuditRecord::new(self.mode.direction())),
        };
        self.mode.settle(&mut self.host, held, ending, now, audit)
    }

    /// The whole body is buffered: one body-phase call, then act on its outcome.
    fn finish(&mut self) -> Action {
        let State::Buffering { pending, buffered } = std::mem::replace(&mut self.state, State::Answered) else {
            return Action::Continue;
        };
        let Ok(body) = self.host.request_body(buffered) else {
            return self.answer(Outcome::Reject(Reject::HostError));
        };
        let now = self.now;
        let Some(audit) = self.audit.as_mut() else {
            return self.answer(Outcome::Reject(Reject::HostError));
        };
        let step = self.mode.body(&mut self.host, pending, body, now, audit);
        self.step(step, buffered)
    }

    /// Acts on a step: forward, answer, or send the callout and pause.
    fn step(&mut self, step: Step<M::Held, M::Call>, buffered: usize) -> Action {
        let mut step = step;
        loop {
            match step {
                Step::Done(Outcome::Forward(f)) => return self.forward(f, buffered),
                Step::Done(other) => return self.answer(other),
                Step::Call(callout, call) => match self.host.http_call(&callout) {
                    Ok(token) => {
                        self.state = State::Calling { token, call, buffered };
                        return Action::Pause;
                    }
                    Err(_) => {
                        // The proxy would not send it (no such cluster): the
                        // same as a store that does not answer.
                        let now = self.now;
                        let Some(audit) = self.audit.as_mut() else {
                            return self.answer(Outcome::Reject(Reject::HostError));
                        };
                        step = self.mode.on_callout(&mut self.host, call, CalloutResponse::default(), now, audit);
                    }
                },
            }
        }
    }

    fn forward(&mut self, f: Forward<M::Held>, buffered: usize) -> Action {
        let mut applied = f.remove_headers.iter().try_for_each(|name| self.host.remove_request_header(name));
        for (name, value) in &f.set_headers {
            applied = applied.and_then(|()| self.host.set_request_header(name, value));
        }
        if let Some(body) = &f.body {
            applied = applied.and_then(|()| self.host.replace_request_body(buffered, body)).and_then(|()| {
                self.host.set_request_header(crate::contract::names::CONTENT_LENGTH, &body.len().to_string())
            });
        }
        self.state = State::Forwarded(f.held);
        if applied.is_err() {
            // Half-annotated requests never go upstream.
            self.settle(Ending::NotDelivered);
            return self.answer(Outcome::Reject(Reject::HostError));
        }
        self.host.count(f.counter);
        if let Some(a) = &mut self.audit {
            a.answer(f.verdict, None);
        }
        // Published once the upstream answers: one filter-state write per request.
        Action::Continue
    }

    fn answer(&mut self, outcome: Outcome<M::Held>) -> Action {
        self.state = State::Answered;
        self.host.count(outcome.counter());
        let reply = outcome.reply();
        if let Some(a) = &mut self.audit {
            match outcome {
                Outcome::Reject(r) | Outcome::RejectInput(r, _) => a.reject(r),
                ref o => a.answer(o.verdict(), reply.as_ref().map(|r| r.status)),
            }
        }
        self.publish();
        if let Some(r) = reply {
            if self.host.send_reply(&r).is_err() {
                self.host.log(Level::Warn, "combo_webhook: the proxy refused the local reply");
            }
        }
        Action::Pause
    }

    /// Sets the audit record as filter state, once.
    fn publish(&mut self) {
        if self.published {
            return;
        }
        self.settle_time();
        if let Some(a) = &mut self.audit {
            self.published = true;
            a.verify_us = self.work / 1_000;
            self.host.observe_filter_us(a.verify_us);
            if self.mode.audit_filter_state() {
                let json = a.to_json();
                if self.host.set_filter_state(FILTER_STATE_KEY, json.as_bytes()).is_err() {
                    self.host.log(Level::Debug, "combo_webhook: cannot set the audit filter state");
                }
            }
        }
    }

    fn timed<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let started = self.host.clock_nanos();
        self.now = (started / 1_000_000_000) as i64;
        self.callback_started = Some(started);
        let out = f(self);
        self.settle_time();
        self.callback_started = None;
        out
    }

    /// One clock read: a clock read is a host call in the VM.
    fn settle_time(&mut self) {
        if let Some(started) = self.callback_started {
            let now = self.host.clock_nanos();
            self.work += now.saturating_sub(started);
            self.callback_started = Some(now);
        }
    }
}
