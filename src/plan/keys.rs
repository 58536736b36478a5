//! Keys of triggers and subscriptions: inline, from the environment, or
//! (native module) from Envoy SDS generic secrets; rotation windows and the
//! expiry checks. No message ever quotes a key.

use super::raw::{RawSecret, RawText};
use super::{valid_id, Compiler, MAX_UNIX_SECONDS, ROTATION_WARNING_SECONDS};
use crate::rules::scheme::keys::KeyError;
use crate::rules::scheme::{Algorithm, Key, KeyMaterial, SecretEncoding};

/// What SDS holds for a secret name right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdsValue {
    /// Envoy would not subscribe (e.g. an invalid config source).
    Refused,
    /// This Envoy has no SDS for the filter (a dynamic module on Envoy
    /// before 1.40).
    Unsupported,
    /// Subscribed; nothing delivered yet.
    Pending,
    Value(String),
}

/// Subscribes to (first call) and reads an SDS generic secret by name.
pub type SdsLookup<'a> = &'a dyn Fn(&str) -> SdsValue;

impl Compiler<'_> {
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
                vec![RawSecret { value: Some(value), ..RawSecret::default() }]
            }
            (None, Some(list)) if list.is_empty() => {
                self.error(format!("{at}.{plural}"), format!("must hold at least one {}", kind.noun()));
                return vec![];
            }
            (None, Some(list)) => list,
        };
        let mut out = Vec::with_capacity(list.len());
        for (k, s) in list.into_iter().enumerate() {
            self.key(s, k, kind, &format!("{at}.{plural}[{k}]"), &mut out);
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
            (None, Some(var)) => match (self.sources.env)(&var) {
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

    /// One configured key: inline, from the environment, or every line of an
    /// SDS generic secret (the native module). Pushes what compiled.
    fn key(&mut self, s: RawSecret, index: usize, kind: KeyKind, at: &str, out: &mut Vec<Key>) {
        let not_before = self.window(at, "not_before", s.not_before);
        let not_after = self.window(at, "not_after", s.not_after);
        if let (Some(nb), Some(na)) = (not_before, not_after) {
            if nb > na {
                self.error(format!("{at}.not_after"), "must not be before not_before");
            }
        }
        if let Some(name) = s.sds {
            if s.value.is_some() || s.env.is_some() {
                self.error(at, "needs exactly one of value, env or sds");
                return;
            }
            let id = s.id.unwrap_or_else(|| name.clone());
            self.check_id(&id, at);
            for (n, material) in self.sds_materials(&name, kind, at) {
                // Line 0 keeps the id: a one-key secret reads like any other.
                let key_id = if n == 0 { id.clone() } else { format!("{id}.{n}") };
                out.push(Key::new(key_id, material, not_before, not_after));
            }
            return;
        }
        let Some(text) = self.text(s.value, s.env, at, matches!(kind, KeyKind::Secret(..))) else {
            return;
        };
        let material = match kind.material(&text) {
            Ok(m) => m,
            Err(msg) => {
                self.error(at, msg);
                return;
            }
        };
        let key_id = s.id.unwrap_or_else(|| index.to_string());
        self.check_id(&key_id, at);
        out.push(Key::new(key_id, material, not_before, not_after));
    }

    fn check_id(&mut self, id: &str, at: &str) {
        if !valid_id(id) {
            self.error(format!("{at}.id"), "must be non-empty visible ASCII");
        }
    }

    fn window(&mut self, at: &str, field: &str, v: Option<u64>) -> Option<i64> {
        v.map(|v| {
            if v > MAX_UNIX_SECONDS {
                self.error(
                    format!("{at}.{field}"),
                    format!("must be unix seconds up to {MAX_UNIX_SECONDS} (year 9999)"),
                );
            }
            v.min(MAX_UNIX_SECONDS) as i64
        })
    }

    /// The keys an SDS generic secret holds: one per non-empty line, newest
    /// first, so a rotation overlap is one secret rewritten twice. A secret
    /// SDS has not delivered yet, or a line that is not a key, leaves no key
    /// (deliveries fail closed) and a warning: Envoy delivers SDS after the
    /// config is accepted, and a rotation must never crash the config.
    /// Each key comes with its position among the secret's keys (what its
    /// id says, whether or not an earlier line compiled).
    fn sds_materials(&mut self, name: &str, kind: KeyKind, at: &str) -> Vec<(usize, KeyMaterial)> {
        let Some(lookup) = self.sources.sds else {
            self.error(format!("{at}.sds"), "SDS secrets need the native module (the .wasm reads value or env)");
            return vec![];
        };
        if name.is_empty() || name.len() > 256 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            self.error(format!("{at}.sds"), "must be a secret name (visible ASCII, up to 256 bytes)");
            return vec![];
        }
        let text = match lookup(name) {
            SdsValue::Refused => {
                self.error(format!("{at}.sds"), format!("Envoy refused the SDS subscription to {name:?}"));
                return vec![];
            }
            SdsValue::Unsupported => {
                self.error(
                    format!("{at}.sds"),
                    "this Envoy has no SDS callbacks for dynamic modules (Envoy 1.40 or newer); use value or env",
                );
                return vec![];
            }
            SdsValue::Pending => {
                self.warn(format!("{at}.sds: secret {name:?} not delivered yet; deliveries fail closed until it is"));
                return vec![];
            }
            SdsValue::Value(text) => text,
        };
        let mut out = Vec::new();
        let lines = text.split('\n').map(|l| l.trim_end_matches('\r')).enumerate().filter(|(_, l)| !l.is_empty());
        for (n, (line, part)) in lines.enumerate() {
            match kind.material(part) {
                Ok(m) => out.push((n, m)),
                // The text never quotes the line: it is a secret.
                Err(msg) => self.warn(format!("{at}.sds: line {} of secret {name:?} {msg}; skipped", line + 1)),
            }
        }
        if out.is_empty() {
            self.warn(format!("{at}.sds: secret {name:?} holds no key; deliveries fail closed until it does"));
        }
        out
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
    fn material(self, text: &str) -> Result<KeyMaterial, KeyError> {
        match self {
            KeyKind::Secret(alg, enc) => KeyMaterial::secret(alg, text, enc),
            KeyKind::Public(alg) => KeyMaterial::public(alg, text),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            KeyKind::Secret(..) => "a secret",
            KeyKind::Public(_) => "a public key",
        }
    }
}
