//! The outbound HTTP context: pick or skip the event, sign it.

use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use crate::error::Reject;
use crate::headers::Headers;
use crate::outbound::{self, Outcome, Subscription};
use crate::plan::Compiled;

enum State {
    Headers,
    AwaitingBody { sub: Arc<Subscription>, headers: Headers, buffered: usize },
    Answered,
    Sent,
}

pub struct OutboundFilter {
    compiled: Rc<Compiled>,
    state: State,
}

impl OutboundFilter {
    pub fn new(compiled: Rc<Compiled>) -> Self {
        OutboundFilter { compiled, state: State::Headers }
    }

    fn reject(&mut self, r: Reject) -> Action {
        self.state = State::Answered;
        host::reject(r)
    }

    fn finish(&mut self) -> Action {
        let State::AwaitingBody { sub, headers, buffered } = std::mem::replace(&mut self.state, State::Sent) else {
            return Action::Continue;
        };
        let compiled = Rc::clone(&self.compiled);
        let Compiled::Outbound(plan) = &*compiled else { return Action::Continue };
        let Some(body) = host::request_body(buffered) else { return self.reject(Reject::InvalidJson) };
        match outbound::decide(plan, &sub, &headers, &body, host::now()) {
            Err(r) => self.reject(r),
            Ok(Outcome::Skip { event }) => {
                log::debug!("combo_webhook: subscription {}: event {event} skipped", sub.id);
                self.state = State::Answered;
                host::reply(204, vec![(outbound::DELIVERY_STATUS_HEADER, "skipped")], b"")
            }
            Ok(Outcome::Deliver(d)) => {
                host::remove_header(outbound::SUBSCRIPTION_HEADER);
                for (name, value) in &d.headers {
                    host::set_header(name, value);
                }
                Action::Continue
            }
        }
    }
}

impl Context for OutboundFilter {}

impl HttpContext for OutboundFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Compiled::Outbound(plan) = &*self.compiled else { return Action::Continue };
        let headers = host::request_headers();
        let method = headers.first(":method").unwrap_or("");
        match outbound::check_head(plan, method, &headers) {
            Err(r) => self.reject(r),
            Ok(sub) => {
                self.state = State::AwaitingBody { sub, headers, buffered: 0 };
                if end_of_stream {
                    self.finish()
                } else {
                    Action::Pause
                }
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let limit = match &*self.compiled {
            Compiled::Outbound(p) => p.max_body_bytes,
            Compiled::Inbound(_) => u64::MAX,
        };
        match &mut self.state {
            State::AwaitingBody { buffered, .. } => {
                *buffered = body_size;
                if body_size as u64 > limit {
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
}
