//! What a phase decides, and the one place a decision becomes a reply.

use crate::contract::audit::Verdict;
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::contract::names::{ALLOW, CONTENT_TYPE, CONTENT_TYPE_OPTIONS, DELIVERY_STATUS, RETRY_AFTER};
use crate::host::Callout;
pub use crate::host::LocalReply as Reply;
use crate::rules::scheme::handshake::Answer;

/// What a mode's body phase decided: each variant knows its own answer.
#[derive(Debug)]
pub enum Outcome<F> {
    Reject(Reject),
    /// 422 about one input, named in the answer.
    RejectInput(Reject, String),
    /// Delivered before: 200 `{"status":"duplicate"}`.
    Duplicate,
    /// Another copy is being delivered right now: 409, retry later.
    InProgress,
    /// Verified, but the match does not hold: 202 `{"status":"ignored"}`.
    Ignored,
    /// Outbound: the subscription did not pick the event: 204.
    Skipped,
    /// A provider's URL-verification handshake, answered at the edge: 200.
    Handshake(Answer),
    Forward(Forward<F>),
}

/// What the body phase (or a callout's answer) leads to: an outcome, or a
/// callout to wait for, with what the mode needs to carry on.
#[derive(Debug)]
pub enum Step<F, C> {
    Done(Outcome<F>),
    Call(Callout, C),
}

/// A request to send upstream, with the changes the filter makes to it.
#[derive(Debug)]
pub struct Forward<F> {
    pub remove_headers: &'static [&'static str],
    pub set_headers: Vec<(&'static str, String)>,
    /// A replacement body (inbound `inputs_delivery: envelope`).
    pub body: Option<Vec<u8>>,
    pub verdict: Verdict,
    pub counter: Counter,
    /// What the mode holds until the upstream answers (a replay reservation).
    pub held: F,
}

impl<F: Default> Forward<F> {
    /// Forward the request as it came.
    pub fn bare(verdict: Verdict, counter: Counter) -> Self {
        Forward { remove_headers: &[], set_headers: Vec::new(), body: None, verdict, counter, held: F::default() }
    }
}

impl<F> Outcome<F> {
    /// Why the edge answered: the error code, or the verdict.
    pub(super) fn detail(&self) -> &'static str {
        match self {
            Outcome::Reject(r) | Outcome::RejectInput(r, _) => r.code(),
            Outcome::Duplicate => "duplicate",
            Outcome::InProgress => "in_progress",
            Outcome::Ignored => "ignored",
            Outcome::Skipped => "skipped",
            Outcome::Handshake(_) => "handshake",
            Outcome::Forward(_) => "forwarded",
        }
    }

    pub(super) fn verdict(&self) -> Verdict {
        match self {
            Outcome::Reject(_) | Outcome::RejectInput(..) => Verdict::Rejected,
            Outcome::Duplicate => Verdict::Duplicate,
            Outcome::InProgress => Verdict::InProgress,
            Outcome::Ignored => Verdict::Ignored,
            Outcome::Skipped => Verdict::Skipped,
            Outcome::Handshake(_) => Verdict::Handshake,
            Outcome::Forward(f) => f.verdict,
        }
    }

    pub(super) fn counter(&self) -> Counter {
        match self {
            Outcome::Reject(r) | Outcome::RejectInput(r, _) => Counter::Rejected(*r),
            Outcome::Duplicate => Counter::Duplicate,
            Outcome::InProgress => Counter::InProgress,
            Outcome::Ignored => Counter::Ignored,
            Outcome::Skipped => Counter::OutboundSkipped,
            Outcome::Handshake(_) => Counter::Handshake,
            Outcome::Forward(f) => f.counter,
        }
    }

    /// The one place an outcome becomes a reply (`None`: forward).
    pub(crate) fn reply(&self) -> Option<Reply> {
        const JSON: (&str, &str) = (CONTENT_TYPE, "application/json");
        let details = format!("combo_webhook_{}", self.detail());
        let fixed = |status, body: &'static [u8]| Reply {
            status,
            details: details.clone(),
            headers: vec![JSON],
            body: body.into(),
        };
        Some(match self {
            Outcome::Reject(r) => {
                let mut headers = vec![JSON];
                match r {
                    Reject::MethodNotAllowed => headers.push((ALLOW, "POST")),
                    Reject::ReplayStoreUnavailable => headers.push((RETRY_AFTER, "1")),
                    _ => {}
                }
                Reply { status: r.status(), details: details.clone(), headers, body: r.body().into_bytes().into() }
            }
            Outcome::RejectInput(r, input) => Reply {
                status: r.status(),
                details: details.clone(),
                headers: vec![JSON],
                body: r.body_for_input(input).into_bytes().into(),
            },
            Outcome::Duplicate => fixed(200, br#"{"status":"duplicate"}"#),
            Outcome::InProgress => Reply {
                status: 409,
                details: details.clone(),
                headers: vec![JSON, (RETRY_AFTER, "1")],
                body: br#"{"status":"in_progress"}"#.as_slice().into(),
            },
            Outcome::Ignored => fixed(202, br#"{"status":"ignored"}"#),
            Outcome::Skipped => {
                Reply { status: 204, details, headers: vec![(DELIVERY_STATUS, "skipped")], body: b"".as_slice().into() }
            }
            Outcome::Handshake(a) if a.content_type.is_empty() => {
                Reply { status: a.status, details, headers: vec![], body: b"".as_slice().into() }
            }
            Outcome::Handshake(a) => Reply {
                status: a.status,
                details,
                headers: vec![(CONTENT_TYPE, a.content_type), (CONTENT_TYPE_OPTIONS, "nosniff")],
                body: a.body.clone().into(),
            },
            Outcome::Forward(_) => return None,
        })
    }
}
