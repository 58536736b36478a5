//! What a mode (inbound, outbound) supplies to the shared state machine:
//! its header phase, its body phase, callouts, and settling at the end.

use crate::contract::audit::{AuditRecord, Direction};
use crate::contract::error::Reject;
use crate::host::{CalloutResponse, Headers, Host};
use crate::rules::ending::Ending;
use crate::rules::scheme::handshake::Answer;

use super::Step;

/// What a mode's header phase decided.
#[derive(Debug)]
pub enum Head<P> {
    /// Not for this filter: forward untouched.
    PassThrough,
    Reject(Reject),
    /// A provider's URL-verification handshake, answered from the headers.
    Handshake(Answer),
    /// Every header check holds: buffer the body, then call `Mode::body`.
    ReadBody(P),
}

/// The domain rules of one mode.
pub trait Mode {
    /// What the header phase learnt, waiting for the body.
    type Pending;
    /// What a forwarded request holds until the upstream answers.
    type Held;
    /// What the mode carries across a callout.
    type Call;

    fn direction(&self) -> Direction;
    fn max_body_bytes(&self) -> u64;
    /// Whether the audit record becomes Envoy filter state (the access log
    /// reads it there); the log line at info level is written in any case.
    fn audit_filter_state(&self) -> bool {
        true
    }
    /// The header phase; fills the audit record as far as it gets.
    fn head<H: Host>(&self, host: &mut H, headers: Headers, now: i64, audit: &mut AuditRecord) -> Head<Self::Pending>;
    /// The body phase: one call, one outcome (or a callout first).
    fn body<H: Host>(
        &self,
        host: &mut H,
        pending: Self::Pending,
        body: Vec<u8>,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<Self::Held, Self::Call>;
    /// A callout answered (or failed: `response.status` is `None`).
    fn on_callout<H: Host>(
        &self,
        host: &mut H,
        call: Self::Call,
        response: CalloutResponse,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<Self::Held, Self::Call>;
    /// A forwarded request ended: delivered, not delivered, or unknown (it
    /// was forwarded and no answer came; `rules::ending`). Returns the token
    /// of a store callout the answer waits for: the sender sees the answer
    /// only once the shared store knows the outcome (a copy it sends next is
    /// then a duplicate, or gets through, never `in_progress`).
    fn settle<H: Host>(
        &self,
        host: &mut H,
        held: Self::Held,
        ending: Ending,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Option<u32>;
}
