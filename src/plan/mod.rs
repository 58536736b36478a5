//! Compiles the operator's configuration once (in `on_configure`) into the
//! immutable plan every request reads. All validation happens here; every
//! error names its field path and never echoes a secret.
//!
//! `raw` is the serde shape, `inbound` and `outbound` compile each mode, and
//! this module holds what both modes share (errors, secrets, ids).

pub mod inbound;
pub mod outbound;
mod pbstruct;
pub mod raw;

use crate::contract::error::ConfigError;
use crate::rules::allowlist::Allowlist;
use crate::rules::scheme::{Algorithm, Key, KeyMaterial, SecretEncoding};

pub use inbound::InboundPlan;
pub use outbound::OutboundPlan;
use raw::{Mode, RawConfig, RawSecret, RawText};

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

/// Parses and compiles a JSON configuration; returns every error found.
pub fn from_json(text: &str, env: EnvLookup, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let raw = raw::parse_json(text).map_err(|e| vec![e])?;
    compile(raw, env, now)
}

/// Parses and compiles the plugin configuration bytes Envoy hands over.
pub fn from_plugin_bytes(bytes: &[u8], env: EnvLookup, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let raw = raw::parse_plugin_bytes(bytes).map_err(|e| vec![e])?;
    compile(raw, env, now)
}

/// `now` (unix seconds) decides which secrets have already expired.
pub fn compile(raw: RawConfig, env: EnvLookup, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let mut ctx = Compiler { errors: Vec::new(), warnings: Vec::new(), expiring: 0, env, now };
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
    env: EnvLookup<'a>,
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
        if value == 0 || value > max {
            self.error(path, format!("must be between 1 and {max}, got {value}"));
        }
        value
    }

    /// Resolves `secret` / `secrets` (exactly one of them) into keys of
    /// `kind`; `names` are the two fields (`secret`, `secrets` or
    /// `public_key`, `public_keys`).
    pub(crate) fn keys(
        &mut self,
        one: Option<String>,
        list: Option<Vec<RawSecret>>,
        kind: KeyKind,
        at: &str,
        names: (&str, &str),
    ) -> Vec<Key> {
        let (single, plural) = names;
        let list = match (one, list) {
            (Some(_), Some(_)) => {
                self.error(format!("{at}.{single}"), format!("give either {single} or {plural}, not both"));
                return vec![];
            }
            (None, None) => {
                self.error(format!("{at}.{plural}"), format!("{} is required", kind.noun()));
                return vec![];
            }
            (Some(value), None) => {
                vec![RawSecret { id: None, value: Some(value), env: None, not_before: None, not_after: None }]
            }
            (None, Some(list)) if list.is_empty() => {
                self.error(format!("{at}.{plural}"), format!("must hold at least one {}", kind.noun()));
                return vec![];
            }
            (None, Some(list)) => list,
        };
        let mut out = Vec::with_capacity(list.len());
        for (k, s) in list.into_iter().enumerate() {
            if let Some(key) = self.key(s, k, kind, &format!("{at}.{plural}[{k}]")) {
                out.push(key);
            }
        }
        self.expiry_checks(&out, at, plural);
        out
    }

    /// A value given inline or by environment variable; `None` after an error.
    pub(crate) fn text(
        &mut self,
        value: Option<String>,
        env: Option<String>,
        at: &str,
        warn_inline: bool,
    ) -> Option<String> {
        let text = match (value, env) {
            (Some(v), None) => {
                if warn_inline {
                    self.warn(format!("{at}: secret given inline; prefer env (from the proxy's environment)"));
                }
                v
            }
            (None, Some(var)) => match (self.env)(&var) {
                Some(v) => v,
                None => {
                    self.error(format!("{at}.env"), format!("environment variable {var:?} is not set"));
                    return None;
                }
            },
            _ => {
                self.error(at, "needs exactly one of value or env");
                return None;
            }
        };
        if text.is_empty() {
            self.error(at, "secret is empty");
            return None;
        }
        Some(text)
    }

    /// `verify_token` and the like: a value, never echoed.
    pub(crate) fn raw_text(&mut self, t: RawText, at: &str) -> Option<String> {
        self.text(t.value, t.env, at, true)
    }

    fn key(&mut self, s: RawSecret, index: usize, kind: KeyKind, at: &str) -> Option<Key> {
        let text = self.text(s.value, s.env, at, matches!(kind, KeyKind::Secret(..)))?;
        let material = match kind {
            KeyKind::Secret(alg, enc) => KeyMaterial::secret(alg, &text, enc),
            KeyKind::Public(alg) => KeyMaterial::public(alg, &text),
        };
        let material = match material {
            Ok(m) => m,
            Err(msg) => {
                self.error(at, msg);
                return None;
            }
        };
        let mut window = |field: &str, v: Option<u64>| {
            v.map(|v| {
                if v > MAX_UNIX_SECONDS {
                    self.error(
                        format!("{at}.{field}"),
                        format!("must be unix seconds up to {MAX_UNIX_SECONDS} (year 9999)"),
                    );
                }
                v.min(MAX_UNIX_SECONDS) as i64
            })
        };
        let not_before = window("not_before", s.not_before);
        let not_after = window("not_after", s.not_after);
        if let (Some(nb), Some(na)) = (not_before, not_after) {
            if nb > na {
                self.error(format!("{at}.not_after"), "must not be before not_before");
            }
        }
        let key_id = s.id.unwrap_or_else(|| index.to_string());
        if !valid_id(&key_id) {
            self.error(format!("{at}.id"), "must be non-empty visible ASCII");
        }
        Some(Key::new(key_id, material, not_before, not_after))
    }

    /// Every secret already expired is an error; a last one expiring within
    /// 7 days is a warning (the rotation overlap is running out).
    fn expiry_checks(&mut self, secrets: &[Key], at: &str, plural: &str) {
        if secrets.is_empty() {
            return;
        }
        let now = self.now;
        if secrets.iter().all(|s| s.not_after.is_some_and(|na| na < now)) {
            let noun = if plural == "secrets" { "secret" } else { "key" };
            self.error(format!("{at}.{plural}"), format!("every {noun} has expired (not_after is in the past)"));
        } else if let Some(last) = secrets.iter().map(|s| s.not_after.unwrap_or(i64::MAX)).max() {
            if last < now.saturating_add(ROTATION_WARNING_SECONDS) {
                self.expiring += 1;
                self.warn(format!("{at}: the last secret expires within 7 days (not_after {last}); add its successor"));
            }
        }
    }
}

/// What a configured key text is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyKind {
    /// An HMAC secret or token, in its encoding.
    Secret(Algorithm, SecretEncoding),
    /// A public key of an asymmetric scheme.
    Public(Algorithm),
}

impl KeyKind {
    fn noun(self) -> &'static str {
        match self {
            KeyKind::Secret(..) => "a secret",
            KeyKind::Public(_) => "a public key",
        }
    }
}

/// An id is one path segment and is echoed in a header.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic() && !b"/?#%\\\"".contains(&b))
}

#[cfg(test)]
mod tests;
