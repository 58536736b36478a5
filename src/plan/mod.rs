//! Compiles the operator's configuration once (in `on_configure`) into the
//! immutable plan every request reads. All validation happens here; every
//! error names its field path and never echoes a secret.
//!
//! `raw` is the serde shape, `inbound` and `outbound` compile each mode, and
//! this module holds what both modes share (errors, secrets, ids).

pub mod inbound;
mod keys;
pub mod outbound;
pub mod outputs;
mod pbstruct;
pub mod raw;

use crate::contract::error::ConfigError;
use crate::rules::allowlist::Allowlist;

pub use inbound::InboundPlan;
pub(crate) use keys::KeyKind;
pub use keys::{SdsLookup, SdsValue};
pub use outbound::OutboundPlan;
use raw::{Mode, RawConfig};

pub const DEFAULT_MAX_BODY_BYTES: u64 = 1_048_576;
/// Upper bound of `max_body_bytes`: Envoy buffers the body in memory.
pub const MAX_MAX_BODY_BYTES: u64 = 64 * 1_048_576;
/// Unix seconds of 9999-12-31T23:59:59Z: the last instant a config may name.
pub const MAX_UNIX_SECONDS: u64 = 253_402_300_799;
/// A last secret expiring sooner than this is worth a warning.
pub const ROTATION_WARNING_SECONDS: i64 = 7 * 86_400;

/// Looks up an environment variable (the VM's environment in Envoy).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A compiled configuration: the plan of the mode it configures.
#[derive(Debug)]
pub enum Compiled {
    Inbound(InboundPlan),
    Outbound(OutboundPlan),
}

impl Compiled {
    pub fn warnings(&self) -> &[String] {
        match self {
            Compiled::Inbound(p) => &p.warnings,
            Compiled::Outbound(p) => &p.warnings,
        }
    }

    /// Triggers or subscriptions whose last secret expires within 7 days
    /// (the `combo_webhook_secrets_expiring` gauge).
    pub fn expiring(&self) -> u64 {
        match self {
            Compiled::Inbound(p) => p.expiring,
            Compiled::Outbound(p) => p.expiring,
        }
    }
}

/// Where a configuration's secrets come from: the environment, and (native
/// module only) Envoy's SDS generic secrets.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub env: EnvLookup<'a>,
    /// `None`: this build cannot read SDS (the .wasm); `sds:` is an error.
    pub sds: Option<SdsLookup<'a>>,
}

impl<'a> Sources<'a> {
    /// The environment only (the .wasm, the CLI, tests).
    pub fn env(env: EnvLookup<'a>) -> Self {
        Sources { env, sds: None }
    }
}

/// Parses and compiles a JSON configuration; returns every error found.
pub fn from_json(text: &str, env: EnvLookup, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let raw = raw::parse_json(text).map_err(|e| vec![e])?;
    compile(raw, Sources::env(env), now)
}

/// Parses and compiles the plugin configuration bytes Envoy hands over.
pub fn from_plugin_bytes(bytes: &[u8], env: EnvLookup, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    from_plugin_bytes_with(bytes, Sources::env(env), now)
}

/// The same, with every secret source of the build.
pub fn from_plugin_bytes_with(bytes: &[u8], sources: Sources, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let raw = raw::parse_plugin_bytes(bytes).map_err(|e| vec![e])?;
    compile(raw, sources, now)
}

/// `now` (unix seconds) decides which secrets have already expired.
pub fn compile(raw: RawConfig, sources: Sources, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let mut ctx = Compiler { errors: Vec::new(), warnings: Vec::new(), expiring: 0, sources, now };
    let compiled = match raw.mode {
        Mode::Inbound => inbound::compile(raw, &mut ctx).map(Compiled::Inbound),
        Mode::Outbound => outbound::compile(raw, &mut ctx).map(Compiled::Outbound),
    };
    match compiled {
        Some(c) if ctx.errors.is_empty() => Ok(c),
        _ => Err(ctx.errors),
    }
}

/// One compile run: collects every error (so one run reports all of them)
/// and the warnings, and knows the environment and the time.
pub(crate) struct Compiler<'a> {
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<String>,
    /// How many secret lists run out within 7 days.
    pub(crate) expiring: u64,
    sources: Sources<'a>,
    now: i64,
}

impl Compiler<'_> {
    pub(crate) fn error(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(path, msg));
    }

    pub(crate) fn warn(&mut self, msg: String) {
        self.warnings.push(msg);
    }

    pub(crate) fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn allowlist(&mut self, cidrs: &[String], at: &str) -> Allowlist {
        Allowlist::parse(cidrs).unwrap_or_else(|bad| {
            let text = cidrs.get(bad.index).map_or("", String::as_str);
            self.error(format!("{at}[{}]", bad.index), format!("invalid CIDR {text:?}"));
            Allowlist::default()
        })
    }

    /// Checks `value` against `1..=max`, naming `path` in the error.
    pub(crate) fn range(&mut self, path: &str, value: u64, max: u64) -> u64 {
        // The value itself is never quoted: it may be a secret in the wrong place.
        if value == 0 {
            self.error(path, "out of range (min 1)");
        } else if value > max {
            self.error(path, format!("out of range (max {max})"));
        }
        value
    }
}

/// An id is one path segment and is echoed in a header.
pub(crate) fn valid_id(id: &str) -> bool {
    crate::contract::names::short_visible(id) && !id.bytes().any(|b| b"/?#%\\\"".contains(&b))
}

#[cfg(test)]
mod tests;
