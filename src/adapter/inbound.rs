//! The inbound HTTP context: header checks, body buffering, annotation.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host::{self, HostConnection, HostStore};
use crate::annotate::ANNOTATION_HEADERS;
use crate::error::Reject;
use crate::headers::Headers;
use crate::inbound::{self, Head, Pending, Verdict};
use crate::plan::{Compiled, Plan};
use crate::replay::{self, ReplayKey};

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

pub struct InboundFilter {
    compiled: Rc<Compiled>,
    state: State,
}

impl InboundFilter {
    pub fn new(compiled: Rc<Compiled>) -> Self {
        InboundFilter { compiled, state: State::Headers }
    }

    fn plan(&self) -> Option<&Plan> {
        match &*self.compiled {
            Compiled::Inbound(p) => Some(p),
            Compiled::Outbound(_) => None,
        }
    }
}

impl Context for InboundFilter {}

impl HttpContext for InboundFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(plan) = self.plan() else { return Action::Continue };
        let all = host::request_headers();
        // Client-sent annotations are removed from every request, webhook or not.
        for (name, _) in all.iter().filter(|(k, _)| ANNOTATION_HEADERS.contains(k)) {
            host::remove_header(name);
        }
        let headers = Headers::new(
            all.iter()
                .filter(|(k, _)| !ANNOTATION_HEADERS.contains(k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let method = headers.first(":method").unwrap_or("");
        let path = headers.first(":path").unwrap_or("");
        match inbound::check_head(plan, method, path, &headers, &HostConnection, host::now()) {
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
        let over = self.plan().is_some_and(|p| inbound::body_over_limit(p, body_size));
        match &mut self.state {
            State::AwaitingBody { buffered, .. } => {
                *buffered = body_size;
                if over {
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
        if let (State::Forwarded { replay: Some((key, expires)) }, Some(plan)) = (&self.state, self.plan()) {
            if host::response_status().is_some_and(|s| (200..300).contains(&s)) {
                let cap = replay::per_bucket(plan.replay.max_entries);
                if !replay::remember(&HostStore, key, *expires, host::now(), cap) {
                    log::warn!("combo_webhook: replay cache busy; delivery not remembered");
                }
            }
        }
        Action::Continue
    }
}

impl InboundFilter {
    fn reject(&mut self, r: Reject) -> Action {
        self.state = State::Answered;
        host::reject(r)
    }

    fn answer(&mut self, status: u32, body: &[u8]) -> Action {
        self.state = State::Answered;
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
        let now = host::now();
        let secret = match inbound::verify_body(&pending, &body, now) {
            Ok(s) => s,
            Err(r) => return self.reject(r),
        };
        let replay_entry = inbound::replay_entry(plan, &pending, now);
        if let Some((key, _)) = &replay_entry {
            if replay::seen(&HostStore, key, now) {
                log::debug!("combo_webhook: trigger {}: duplicate answered at the edge", pending.trigger.id);
                return self.answer(200, br#"{"status":"duplicate"}"#);
            }
        }
        match inbound::annotate(plan, &pending, secret, &headers, &body) {
            Verdict::Reject(r) => self.reject(r),
            Verdict::Ignored => self.answer(202, br#"{"status":"ignored"}"#),
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
                self.state = State::Forwarded { replay: replay_entry };
                Action::Continue
            }
        }
    }
}
