//! The pipeline's stages (`make bench`'s per-feature cost table), and the
//! two wrappers that stop a stream after one: `StagedInbound` cuts the body
//! phase short (it composes the inbound mode's public steps), `StagedHost`
//! drops what the host would do for a later stage (the audit record, the
//! metrics). Neither the stream nor a host knows about stages.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::contract::audit::{AuditRecord, Direction, Verdict};
use crate::contract::metrics::Counter;
use crate::host::{
    Callout, CalloutResponse, Headers, Host, HostError, Level, LocalReply, Peer, SharedStore, StoreError,
};
use crate::plan::inbound::InboundPlan;
use crate::rules::ending::Ending;
use crate::stream::inbound::{Held, Inbound, Pending, Waiting};
use crate::stream::{Forward, Head, Mode, Outcome, Step};

/// The pipeline's stages, in order, for `make bench`'s per-feature cost
/// table: a bench build (`--features bench-stages`) stops after the stage
/// named by `COMBO_BENCH_STAGE` in the VM's environment. Every other build
/// runs them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Stage {
    /// Read the headers, run the header checks, continue.
    Headers,
    /// + buffer the body and verify the signature.
    Signature,
    /// + the body's digest for the audit record and the replay key.
    BodyHash,
    /// + JSON, match and inputs.
    Mapping,
    /// + the x-combo-* annotations.
    Annotate,
    /// + the audit record (filter state, log line).
    Audit,
    /// + counters and the histogram.
    Metrics,
    /// + replay protection: everything.
    #[default]
    Full,
}

impl Stage {
    /// Every stage in order, by the name `COMBO_BENCH_STAGE` gives it.
    pub const ALL: [(&'static str, Stage); 8] = [
        ("headers", Stage::Headers),
        ("signature", Stage::Signature),
        ("body_hash", Stage::BodyHash),
        ("mapping", Stage::Mapping),
        ("annotate", Stage::Annotate),
        ("audit", Stage::Audit),
        ("metrics", Stage::Metrics),
        ("full", Stage::Full),
    ];

    pub fn parse(name: &str) -> Option<Stage> {
        Stage::ALL.iter().find(|(n, _)| *n == name).map(|(_, stage)| *stage)
    }

    /// The stage `COMBO_BENCH_STAGE` names in the VM's (or the process's)
    /// environment; `Full` when it names none.
    /// Read once: every stream's mode and host ask for it.
    pub fn from_env() -> Stage {
        static STAGE: std::sync::OnceLock<Stage> = std::sync::OnceLock::new();
        *STAGE
            .get_or_init(|| std::env::var("COMBO_BENCH_STAGE").ok().and_then(|s| Stage::parse(&s)).unwrap_or_default())
    }
}

/// The inbound mode stopping after a stage.
pub struct StagedInbound {
    inner: Inbound,
    stage: Stage,
}

impl StagedInbound {
    /// Stopping where `COMBO_BENCH_STAGE` says.
    pub fn new(plan: Arc<InboundPlan>) -> Self {
        StagedInbound::at(plan, Stage::from_env())
    }

    pub fn at(plan: Arc<InboundPlan>, stage: Stage) -> Self {
        StagedInbound { inner: Inbound::new(plan), stage }
    }
}

fn bare() -> Step<Held, Waiting> {
    Step::Done(Outcome::Forward(Forward::bare(Verdict::Accepted, Counter::Accepted)))
}

impl Mode for StagedInbound {
    type Pending = Pending;
    type Held = Held;
    type Call = Waiting;

    fn direction(&self) -> Direction {
        Direction::Inbound
    }

    fn max_body_bytes(&self) -> u64 {
        self.inner.max_body_bytes()
    }

    fn audit_filter_state(&self) -> bool {
        self.inner.audit_filter_state()
    }

    fn head<H: Host>(&self, host: &mut H, headers: Headers, now: i64, audit: &mut AuditRecord) -> Head<Pending> {
        match self.inner.head(host, headers, now, audit) {
            Head::ReadBody(_) if self.stage == Stage::Headers => Head::PassThrough,
            other => other,
        }
    }

    fn body<H: Host>(
        &self,
        host: &mut H,
        mut p: Pending,
        body: Vec<u8>,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<Held, Waiting> {
        let inbound = &self.inner;
        if self.stage == Stage::Full {
            return inbound.body(host, p, body, now, audit);
        }
        if let Err(r) = inbound.read_fields(&mut p, &body) {
            return Step::Done(Outcome::Reject(r));
        }
        let digest = if self.stage >= Stage::BodyHash { inbound.digest(&p, &body, true, audit) } else { [0; 32] };
        let trigger = std::sync::Arc::clone(p.trigger());
        let proven = match inbound.verify(&p, &body, &digest, &trigger.keys, now, audit) {
            Ok(proven) => proven,
            Err(outcome) => return Step::Done(outcome),
        };
        if self.stage < Stage::Mapping {
            return bare();
        }
        let v = inbound.identify(p, body, proven, now, audit);
        if self.stage == Stage::Mapping {
            return match inbound.map(host, &v) {
                Ok(_) => bare(),
                Err(outcome) => Step::Done(outcome),
            };
        }
        // Annotate, Audit, Metrics: everything but replay protection.
        inbound.forward(host, v, Held::Nothing, now)
    }

    fn on_callout<H: Host>(
        &self,
        host: &mut H,
        call: Waiting,
        response: CalloutResponse,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<Held, Waiting> {
        self.inner.on_callout(host, call, response, now, audit)
    }

    fn settle<H: Host>(
        &self,
        host: &mut H,
        held: Held,
        ending: Ending,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Option<u32> {
        self.inner.settle(host, held, ending, now, audit)
    }
}

/// A host that leaves out the audit record (filter state, log lines) before
/// `Stage::Audit` and the metrics before `Stage::Metrics`; everything else
/// is the wrapped host's (and `Deref` reaches it, for the adapters).
pub struct StagedHost<H> {
    pub(super) inner: H,
    pub(super) stage: Stage,
}

impl<H> StagedHost<H> {
    /// Stopping where `COMBO_BENCH_STAGE` says.
    pub fn new(inner: H) -> Self {
        StagedHost { inner, stage: Stage::from_env() }
    }

    fn leaves_out(&self, stage: Stage) -> bool {
        self.stage < stage
    }
}

impl<H> Deref for StagedHost<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.inner
    }
}

impl<H> DerefMut for StagedHost<H> {
    fn deref_mut(&mut self) -> &mut H {
        &mut self.inner
    }
}

impl<H: SharedStore> SharedStore for StagedHost<H> {
    fn store_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        self.inner.store_get(key)
    }
    fn store_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.inner.store_set(key, value, cas)
    }
}

impl<H: Host> Host for StagedHost<H> {
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        self.inner.request_headers()
    }
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.inner.set_request_header(name, value)
    }
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.inner.remove_request_header(name)
    }
    fn request_body(&mut self, len: usize) -> Result<Vec<u8>, HostError> {
        self.inner.request_body(len)
    }
    fn replace_request_body(&mut self, old_len: usize, body: &[u8]) -> Result<(), HostError> {
        self.inner.replace_request_body(old_len, body)
    }
    fn send_reply(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        self.inner.send_reply(reply)
    }
    fn response_status(&mut self) -> Option<u32> {
        self.inner.response_status()
    }
    fn response_code_details(&mut self) -> Option<String> {
        self.inner.response_code_details()
    }
    fn upstream_attempts(&mut self) -> Option<u64> {
        self.inner.upstream_attempts()
    }
    fn clock_nanos(&mut self) -> u64 {
        self.inner.clock_nanos()
    }
    fn source_address(&mut self) -> Option<String> {
        self.inner.source_address()
    }
    fn peer_certificate(&mut self) -> Option<Peer> {
        self.inner.peer_certificate()
    }
    fn count(&mut self, counter: Counter) {
        if !self.leaves_out(Stage::Metrics) {
            self.inner.count(counter);
        }
    }
    fn observe_filter_us(&mut self, us: u64) {
        if !self.leaves_out(Stage::Metrics) {
            self.inner.observe_filter_us(us);
        }
    }
    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        if self.leaves_out(Stage::Audit) {
            return Ok(());
        }
        self.inner.set_filter_state(key, value)
    }
    fn log_enabled(&self, level: Level) -> bool {
        !self.leaves_out(Stage::Audit) && self.inner.log_enabled(level)
    }
    fn log(&mut self, level: Level, message: &str) {
        if !self.leaves_out(Stage::Audit) {
            self.inner.log(level, message);
        }
    }
    fn http_call(&mut self, call: &Callout) -> Result<u32, HostError> {
        self.inner.http_call(call)
    }
    fn resume_request(&mut self) -> Result<(), HostError> {
        self.inner.resume_request()
    }
    fn resume_response(&mut self) -> Result<(), HostError> {
        self.inner.resume_response()
    }
}
