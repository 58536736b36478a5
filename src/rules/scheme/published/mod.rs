//! Keys the sender publishes rather than shares (docs "Published keys"):
//! AWS SNS and PayPal name an X.509 certificate by URL in each delivery; a
//! JWT sender publishes a JWKS; Plaid hands out a JWK by `kid`. The edge
//! fetches the key through an Envoy cluster (the request waits, bounded by
//! `timeout_ms`), caches it per worker by URL (and `kid`) for `ttl_seconds`,
//! and fails closed: an unpinned URL is `untrusted_key_url`, a failed fetch
//! `key_unavailable`, both 401.
//!
//! A URL taken from the request is trusted only when it is https, on a host
//! that matches one of the scheme's pinned patterns, with a plain path: the
//! sender picks which of the provider's certificates, never whose.

mod cache;
mod parse;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::compile::{err, SchemeError};
use super::raw::Names;
use super::{Algorithm, Credentials, Location};
use crate::contract::error::Reject;

pub use cache::{lookup, may_fetch, store};
pub use parse::{keys_from, rsa_size_ok, rsa_verifies};

/// Longest key URL read from a request.
const MAX_URL: usize = 512;
/// Longest `kid` read from a JWT header.
pub const MAX_KID: usize = 128;

/// The key source as written (`scheme.key`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeySource {
    /// A configured URL (a JWKS, Plaid's key endpoint).
    pub url: Option<String>,
    /// Or the URL as the request names it, on a pinned host.
    pub url_from: Option<RawUrlFrom>,
    pub format: Option<KeyFormat>,
    /// Where the JWK is in the answer (format `jwk`; Plaid: `/key`).
    pub jwk_at: Option<String>,
    /// A JSON body to POST, with `{kid}` and `{param:NAME}`; else a GET.
    pub post: Option<String>,
    /// The Envoy cluster the fetch goes through.
    pub cluster: Option<String>,
    pub timeout_ms: Option<u64>,
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrlFrom {
    pub header: Option<Names>,
    pub json: Option<String>,
    /// Host patterns; `*` stands for one DNS label (`sns.*.amazonaws.com`).
    pub hosts: Vec<String>,
    pub path_suffix: Option<String>,
}

impl RawKeySource {
    /// `self` (the trigger's) over `base` (the preset's), field by field; a
    /// URL given replaces both of the base's.
    pub fn merge(self, base: RawKeySource) -> RawKeySource {
        let (url, url_from) = if self.url.is_some() || self.url_from.is_some() {
            (self.url, self.url_from)
        } else {
            (base.url, base.url_from)
        };
        RawKeySource {
            url,
            url_from,
            format: self.format.or(base.format),
            jwk_at: self.jwk_at.or(base.jwk_at),
            post: self.post.or(base.post),
            cluster: self.cluster.or(base.cluster),
            timeout_ms: self.timeout_ms.or(base.timeout_ms),
            ttl_seconds: self.ttl_seconds.or(base.ttl_seconds),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// A PEM X.509 certificate (SNS, PayPal): its subject public key.
    Certificate,
    /// A JSON Web Key Set; the JWT's `kid` picks the key.
    Jwks,
    /// One JSON Web Key (at `jwk_at`).
    Jwk,
}

/// An https URL: where the fetch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUrl {
    pub host: String,
    pub path: String,
}

impl KeyUrl {
    pub fn text(&self) -> String {
        format!("https://{}{}", self.host, self.path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlAt {
    Fixed(KeyUrl),
    Sent { at: Location, hosts: Vec<Vec<String>>, path_suffix: Option<String> },
}

/// A compiled key source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySource {
    pub url: UrlAt,
    pub format: KeyFormat,
    pub jwk_at: Option<String>,
    pub post: Option<String>,
    pub cluster: String,
    pub timeout_ms: u64,
    pub ttl_seconds: i64,
}

/// The configured values a template may name (`{param:NAME}`): PayPal's
/// `webhook_id`, Plaid's API credentials. Never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(pub BTreeMap<String, String>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// One fetch a request needs: the cache entry and how to fill it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub cache_key: String,
    pub url: KeyUrl,
    pub kid: Option<String>,
    pub post: Option<Vec<u8>>,
}

pub(super) fn compile(raw: Option<RawKeySource>, algorithm: Algorithm) -> Result<Option<KeySource>, SchemeError> {
    let Some(raw) = raw else { return Ok(None) };
    if !algorithm.is_asymmetric() {
        return err("key", "a published key verifies public-key algorithms only");
    }
    let url = match (raw.url, raw.url_from) {
        (Some(u), None) => UrlAt::Fixed(https(&u).ok_or(SchemeError {
            field: "key.url".into(),
            message: "must be an https URL with a plain path".into(),
        })?),
        (None, Some(f)) => sent_url(f)?,
        _ => return err("key", "give one of url or url_from"),
    };
    let format =
        raw.format.unwrap_or(if matches!(url, UrlAt::Sent { .. }) { KeyFormat::Certificate } else { KeyFormat::Jwks });
    if let Some(p) = &raw.jwk_at {
        if format != KeyFormat::Jwk || !p.starts_with('/') {
            return err("key.jwk_at", "is a JSON pointer, for format: jwk");
        }
    }
    if let Some(body) = &raw.post {
        if body.len() > 1024 {
            return err("key.post", "must be at most 1024 bytes");
        }
    }
    let cluster = match raw.cluster {
        Some(c) if !c.is_empty() && c.len() <= crate::contract::names::MAX_NAME => c,
        _ => return err("key.cluster", "names the Envoy cluster the key is fetched through"),
    };
    let timeout_ms = raw.timeout_ms.unwrap_or(2000);
    if !(1..=10_000).contains(&timeout_ms) {
        return err("key.timeout_ms", "must be 1 to 10000");
    }
    let ttl = raw.ttl_seconds.unwrap_or(3600);
    if !(60..=86_400).contains(&ttl) {
        return err("key.ttl_seconds", "must be 60 to 86400");
    }
    Ok(Some(KeySource {
        url,
        format,
        jwk_at: raw.jwk_at,
        post: raw.post,
        cluster,
        timeout_ms,
        ttl_seconds: ttl as i64,
    }))
}

fn sent_url(f: RawUrlFrom) -> Result<UrlAt, SchemeError> {
    let at = match (f.header, f.json) {
        (Some(Names(names)), None) if names.len() == 1 => Location::Headers(vec![names[0].to_ascii_lowercase()]),
        (None, Some(p)) if p.starts_with('/') && !super::claims::each(&p) => Location::Json(p),
        _ => return err("key.url_from", "give one header or one json pointer"),
    };
    if f.hosts.is_empty() || f.hosts.len() > 16 {
        return err("key.url_from.hosts", "must pin 1 to 16 host patterns");
    }
    let mut hosts = Vec::new();
    for h in &f.hosts {
        let labels: Vec<String> = h.to_ascii_lowercase().split('.').map(str::to_string).collect();
        let fixed = labels.iter().filter(|l| *l != "*").count();
        let valid = labels.iter().all(|l| l == "*" || l == REGION || dns_label(l)) && fixed >= 2;
        // The registrable end of the name is always written out.
        let anchored = labels.len() >= 2 && labels[labels.len() - 2..].iter().all(|l| l != "*" && l != REGION);
        if !valid || !anchored {
            return err(
                "key.url_from.hosts",
                format!("{h:?} is not a host pattern (labels, `*` for one label, the last two written out)"),
            );
        }
        hosts.push(labels);
    }
    Ok(UrlAt::Sent { at, hosts, path_suffix: f.path_suffix })
}

fn dns_label(l: &str) -> bool {
    !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `https://host[:443]/path`: lowercase host, a path of unreserved
/// characters and `/` only (no query, no percent-encoding, no dot segments).
fn https(text: &str) -> Option<KeyUrl> {
    if text.len() > MAX_URL {
        return None;
    }
    let rest = text.get(..8).filter(|s| s.eq_ignore_ascii_case("https://")).and(text.get(8..))?;
    let slash = rest.find('/')?;
    let (authority, path) = rest.split_at(slash);
    let host = authority.strip_suffix(":443").unwrap_or(authority).to_ascii_lowercase();
    let host_ok = host.split('.').count() >= 2 && host.split('.').all(dns_label);
    let path_ok = path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
        && !path.split('/').any(|seg| seg == "." || seg == "..");
    (host_ok && path_ok).then(|| KeyUrl { host, path: path.to_string() })
}

/// A host pattern's label that matches a cloud region name only
/// (`us-east-1`, `us-gov-west-1`, `cn-north-1`): `sns.{region}.amazonaws.com`
/// must not admit `sns.s3-external-1.amazonaws.com`, an S3 bucket's host.
const REGION: &str = "{region}";

fn region(l: &str) -> bool {
    let parts: Vec<&str> = l.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn host_matches(host: &str, pattern: &[String]) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() == pattern.len()
        && labels.iter().zip(pattern).all(|(l, p)| p == "*" || (p == REGION && region(l)) || p == l)
}

impl KeySource {
    /// The key this request needs: its URL (a sent one only on a pinned
    /// host) and its `kid`.
    pub fn locate(&self, creds: &Credentials, params: &Params) -> Result<Fetch, Reject> {
        let url = match &self.url {
            UrlAt::Fixed(u) => u.clone(),
            UrlAt::Sent { hosts, path_suffix, .. } => {
                let text = creds.key_url.as_deref().ok_or(Reject::MissingSignature)?;
                let url = https(text).ok_or(Reject::UntrustedKeyUrl)?;
                let pinned = hosts.iter().any(|p| host_matches(&url.host, p));
                let suffix = path_suffix.as_ref().is_none_or(|s| url.path.ends_with(s.as_str()));
                if !pinned || !suffix {
                    return Err(Reject::UntrustedKeyUrl);
                }
                url
            }
        };
        let kid = creds.kid.clone();
        let post = self.post.as_ref().map(|t| fill(t, kid.as_deref().unwrap_or(""), params).into_bytes());
        // Everything that decides what the fetch returns: a key fetched
        // through one trigger's cluster (or with one account's POST) never
        // serves another's. A JWKS is one entry per URL (the kid picks
        // inside it); a key fetched by kid (POST) one entry per kid.
        use sha2::Digest;
        let post_digest = post.as_deref().map(|b| hex::encode(sha2::Sha256::digest(b))).unwrap_or_default();
        let cache_key = format!(
            "{}\n{:?}\n{}\n{}\n{post_digest}",
            self.cluster,
            self.format,
            self.jwk_at.as_deref().unwrap_or(""),
            url.text()
        );
        Ok(Fetch { cache_key, url, kid, post })
    }

    /// The parameters a trigger must set for this source (`{param:NAME}`).
    pub fn params(&self) -> Vec<String> {
        self.post.as_deref().map(param_names).unwrap_or_default()
    }
}

/// `{param:NAME}` names in a template.
pub fn param_names(template: &str) -> Vec<String> {
    template.split("{param:").skip(1).filter_map(|r| r.split_once('}').map(|(n, _)| n.to_string())).collect()
}

/// The POST body: `{kid}` and `{param:NAME}` filled, each value JSON-escaped
/// (a kid is the sender's, and must not break out of its string).
fn fill(template: &str, kid: &str, params: &Params) -> String {
    let escape = |s: &str| serde_json::to_string(s).map(|q| q[1..q.len() - 1].to_string()).unwrap_or_default();
    let mut out = template.replace("{kid}", &escape(kid));
    for (name, value) in &params.0 {
        out = out.replace(&format!("{{param:{name}}}"), &escape(value));
    }
    out
}

#[cfg(test)]
mod tests;
