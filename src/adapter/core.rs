//! What both adapters share, so that the .wasm and the native module cannot
//! drift: the plan a stream starts from, configuring it (with its log
//! lines), the metric definitions, and the seam through which a stream's
//! mode and host are built.

use std::sync::Arc;

use crate::contract::error::ConfigError;
use crate::contract::metrics::{Counter, FILTER_US, SECRETS_EXPIRING};
use crate::host::{Level, SharedStore};
use crate::plan::{Compiled, InboundPlan, OutboundPlan};
use crate::rules::replay;

/// Each mode's plan, held directly: a stream never re-checks the mode.
#[derive(Clone)]
pub enum Plan {
    Inbound(Arc<InboundPlan>),
    Outbound(Arc<OutboundPlan>),
}

impl Plan {
    /// What the configure log line says was compiled.
    pub fn summary(&self) -> String {
        match self {
            Plan::Inbound(p) => format!("inbound, {} trigger(s)", p.triggers.len()),
            Plan::Outbound(p) => format!("outbound, {} subscription(s)", p.subscriptions.len()),
        }
    }
}

/// Logs a compile's warnings, or every error (each names its field).
pub fn log_compiled(compiled: &Result<Compiled, Vec<ConfigError>>, log: &mut dyn FnMut(Level, &str)) {
    match compiled {
        Ok(c) => c.warnings().iter().for_each(|w| log(Level::Warn, &format!("combo_webhook: {w}"))),
        Err(errors) => {
            errors.iter().for_each(|e| log(Level::Error, &format!("combo_webhook: invalid configuration: {e}")))
        }
    }
}

/// A compiled configuration made the plan streams start from: its outcome
/// logged, and the replay buckets created in `store` when it protects
/// against replays. `None`: refused (the proxy must reject the config).
pub fn configure(
    compiled: Result<Compiled, Vec<ConfigError>>,
    store: &dyn SharedStore,
    log: &mut dyn FnMut(Level, &str),
) -> Option<Plan> {
    log_compiled(&compiled, log);
    Some(match compiled.ok()? {
        Compiled::Inbound(p) => {
            if p.replay.enabled {
                replay::create_buckets(store);
            }
            Plan::Inbound(Arc::new(p))
        }
        Compiled::Outbound(p) => Plan::Outbound(Arc::new(p)),
    })
}

/// The line that closes a successful configure.
pub fn configured_line(plan: &Plan, build: &str, started: std::time::Instant) -> String {
    let us = started.elapsed().as_micros();
    format!("combo_webhook: {}, {build}, configured in {us} us", plan.summary())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// The filter's metric ids in one host's numbering.
#[derive(Debug, Clone, Default)]
pub struct Metrics<Id> {
    /// By `Counter::index`; `None` where the host refused one.
    pub counters: Vec<Option<Id>>,
    pub filter_us: Option<Id>,
    pub secrets_expiring: Option<Id>,
}

impl<Id: Copy> Metrics<Id> {
    /// Defines every metric through the host's `define`; one it refuses is
    /// logged and left out (a request never fails for a metric).
    pub fn define(mut define: impl FnMut(MetricKind, &str) -> Option<Id>, log: &mut dyn FnMut(Level, &str)) -> Self {
        let mut named = |kind: MetricKind, name: &str| {
            let id = define(kind, name);
            if id.is_none() {
                log(Level::Warn, &format!("combo_webhook: cannot define metric {name}"));
            }
            id
        };
        Metrics {
            counters: Counter::all().map(|c| named(MetricKind::Counter, &c.name())).collect(),
            filter_us: named(MetricKind::Histogram, FILTER_US),
            // A gauge, so an alert can fire before a rotation overlap runs out.
            secrets_expiring: named(MetricKind::Gauge, SECRETS_EXPIRING),
        }
    }

    pub fn counter(&self, counter: Counter) -> Option<Id> {
        self.counters.get(counter.index()).copied().flatten()
    }
}

/// What a stream is built from: the inbound mode and the host as they are.
/// A bench build (`bench-stages`) swaps in wrappers that stop after a stage
/// (`crate::bench::seam`); nothing else in an adapter changes.
#[cfg(not(feature = "bench-stages"))]
pub mod seam {
    pub type Host<H> = H;
    pub use crate::stream::inbound::Inbound;

    pub fn host<H>(host: H) -> Host<H> {
        host
    }
}
#[cfg(feature = "bench-stages")]
pub use crate::bench::seam;
