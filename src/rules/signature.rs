//! Signature schemes (`source:` profiles) and constant-time verification.
//!
//! Every scheme reduces to the same shape: HMAC-SHA256 over
//! `signed_prefix || raw_body`, compared against one or more candidate tags
//! taken from the request headers.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::Mac;
use serde::Deserialize;
use subtle::{Choice, ConstantTimeEq};

use crate::contract::error::Reject;
use crate::contract::names::*;
use crate::host::Headers;
use crate::rules::secrets::Secret;

/// A trigger's `source`: the sender's signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    #[default]
    GenericWebhook,
    Github,
    Stripe,
    Slack,
    StandardWebhooks,
    Shopify,
}

/// What a request claims, parsed from its headers before the body is read.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The provider's timestamp; `None` for schemes without one (GitHub, Shopify).
    pub timestamp: Option<i64>,
    /// Candidate tags; any one matching verifies the delivery.
    candidates: Vec<[u8; 32]>,
    /// Bytes signed before the raw body (`"{ts}."` for the generic scheme);
    /// with the body, exactly what the signature covers.
    pub signed_prefix: Vec<u8>,
    /// The provider's delivery id, only where the signature covers it.
    pub signed_id: Option<String>,
}

impl Profile {
    pub const NAMES: &'static [&'static str] =
        &["generic_webhook", "github", "stripe", "slack", "standard_webhooks", "shopify"];

    pub fn parse(name: &str) -> Option<Profile> {
        Some(match name {
            "generic_webhook" => Profile::GenericWebhook,
            "github" => Profile::Github,
            "stripe" => Profile::Stripe,
            "slack" => Profile::Slack,
            "standard_webhooks" => Profile::StandardWebhooks,
            "shopify" => Profile::Shopify,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::GenericWebhook => "generic_webhook",
            Profile::Github => "github",
            Profile::Stripe => "stripe",
            Profile::Slack => "slack",
            Profile::StandardWebhooks => "standard_webhooks",
            Profile::Shopify => "shopify",
        }
    }

    /// What a trigger of this preset must configure.
    pub fn needs(self) -> &'static str {
        match self {
            Profile::GenericWebhook => "secret (UTF-8)",
            Profile::Github => "the webhook secret",
            Profile::Stripe => "the endpoint's whsec_... signing secret, whole",
            Profile::Slack => "the app's signing secret",
            Profile::StandardWebhooks => "whsec_<base64> secret",
            Profile::Shopify => "the app's client secret",
        }
    }

    /// HMAC key bytes for a configured secret string.
    pub fn key_bytes(self, secret: &str) -> Result<Vec<u8>, String> {
        match self {
            // The key is base64 of the part after `whsec_` (Standard Webhooks spec).
            Profile::StandardWebhooks => {
                let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
                BASE64.decode(b64).map_err(|_| "a standard_webhooks secret is whsec_ followed by base64".to_string())
            }
            // Stripe signs with the whole `whsec_...` string as the key.
            _ => Ok(secret.as_bytes().to_vec()),
        }
    }

    /// Headers that carry signature material; kept out of template contexts.
    pub fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Profile::GenericWebhook => &[COMBO_SIGNATURE],
            Profile::Github => &[GITHUB_SIGNATURE, GITHUB_SIGNATURE_SHA1],
            Profile::Stripe => &[STRIPE_SIGNATURE],
            Profile::Slack => &[SLACK_SIGNATURE],
            Profile::StandardWebhooks => &[STANDARD_SIGNATURE, SVIX_SIGNATURE],
            Profile::Shopify => &[SHOPIFY_HMAC],
        }
    }

    /// Every header the scheme reads; the audit record hashes them.
    pub fn audit_headers(self) -> &'static [&'static str] {
        match self {
            Profile::GenericWebhook => &[COMBO_SIGNATURE, COMBO_TIMESTAMP],
            Profile::Github => &[GITHUB_SIGNATURE, GITHUB_DELIVERY],
            Profile::Stripe => &[STRIPE_SIGNATURE],
            Profile::Slack => &[SLACK_SIGNATURE, SLACK_TIMESTAMP],
            Profile::StandardWebhooks => {
                &[STANDARD_ID, STANDARD_TIMESTAMP, STANDARD_SIGNATURE, SVIX_ID, SVIX_TIMESTAMP, SVIX_SIGNATURE]
            }
            Profile::Shopify => &[SHOPIFY_HMAC, SHOPIFY_WEBHOOK_ID],
        }
    }

    /// Reads and checks the signature headers (presence first, then form).
    pub fn credentials(self, headers: &Headers) -> Result<Credentials, Reject> {
        match self {
            Profile::GenericWebhook => generic_credentials(headers),
            Profile::Github => github_credentials(headers),
            Profile::Stripe => stripe_credentials(headers),
            Profile::Slack => slack_credentials(headers),
            Profile::StandardWebhooks => standard_credentials(headers),
            Profile::Shopify => shopify_credentials(headers),
        }
    }
}

/// A header that must be present exactly once: absent and repeated/garbled
/// map to the two given codes.
fn required<'h>(headers: &'h Headers, name: &str, missing: Reject, malformed: Reject) -> Result<&'h str, Reject> {
    match headers.single(name) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(missing),
        Err(_) => Err(malformed),
    }
}

/// Presence of both headers is checked before the form of either (SPEC order).
fn signature_and_timestamp<'h>(headers: &'h Headers, sig: &str, ts: &str) -> Result<(&'h str, &'h str), Reject> {
    let s = headers.single(sig);
    let t = headers.single(ts);
    if matches!(s, Ok(None)) {
        return Err(Reject::MissingSignature);
    }
    if matches!(t, Ok(None)) {
        return Err(Reject::MissingTimestamp);
    }
    let s = s.ok().flatten().ok_or(Reject::MalformedSignature)?;
    let t = t.ok().flatten().ok_or(Reject::MalformedTimestamp)?;
    Ok((s, t))
}

fn credentials(
    timestamp: Option<i64>,
    candidates: Vec<[u8; 32]>,
    signed_prefix: Vec<u8>,
    signed_id: Option<String>,
) -> Credentials {
    Credentials { timestamp, candidates, signed_prefix, signed_id }
}

/// A hex tag after `tag_prefix` in `sig_name`, with a timestamp header; the
/// signed prefix is built from the timestamp. Shared by the generic scheme and Slack.
fn timestamped_hex(
    headers: &Headers,
    sig_name: &str,
    ts_name: &str,
    tag_prefix: &str,
    signed_prefix: fn(&str) -> String,
) -> Result<Credentials, Reject> {
    let (sig, ts) = signature_and_timestamp(headers, sig_name, ts_name)?;
    let tag = prefixed_hex32(sig, tag_prefix)?;
    let timestamp = parse_unix_seconds(ts).ok_or(Reject::MalformedTimestamp)?;
    Ok(credentials(Some(timestamp), vec![tag], signed_prefix(ts).into_bytes(), None))
}

fn prefixed_hex32(sig: &str, prefix: &str) -> Result<[u8; 32], Reject> {
    sig.strip_prefix(prefix).and_then(decode_hex32).ok_or(Reject::MalformedSignature)
}

fn generic_credentials(headers: &Headers) -> Result<Credentials, Reject> {
    timestamped_hex(headers, COMBO_SIGNATURE, COMBO_TIMESTAMP, "sha256=", |ts| format!("{ts}."))
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body alone. The
/// `X-GitHub-Delivery` id is not signed, so it is never trusted.
fn github_credentials(headers: &Headers) -> Result<Credentials, Reject> {
    let sig = required(headers, GITHUB_SIGNATURE, Reject::MissingSignature, Reject::MalformedSignature)?;
    let tag = prefixed_hex32(sig, "sha256=")?;
    Ok(credentials(None, vec![tag], Vec::new(), None))
}

/// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...]` over `"{t}.{body}"`.
/// Any v1 may match; other schemes (v0, ...) are ignored.
fn stripe_credentials(headers: &Headers) -> Result<Credentials, Reject> {
    let header = required(headers, STRIPE_SIGNATURE, Reject::MissingSignature, Reject::MalformedSignature)?;
    let mut ts = None;
    let mut tags = Vec::new();
    let mut bad_tag = false;
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", v)) if ts.is_none() => ts = Some(v),
            Some(("t", _)) => return Err(Reject::MalformedTimestamp),
            Some(("v1", v)) => match decode_hex32(v) {
                Some(tag) => tags.push(tag),
                None => bad_tag = true,
            },
            _ => {}
        }
    }
    if tags.is_empty() && !bad_tag {
        return Err(Reject::MissingSignature);
    }
    let ts = ts.ok_or(Reject::MissingTimestamp)?;
    if bad_tag {
        return Err(Reject::MalformedSignature);
    }
    let timestamp = parse_unix_seconds(ts).ok_or(Reject::MalformedTimestamp)?;
    Ok(credentials(Some(timestamp), tags, format!("{ts}.").into_bytes(), None))
}

/// Slack: `X-Slack-Signature: v0=<hex>` over `"v0:{ts}:{body}"`.
fn slack_credentials(headers: &Headers) -> Result<Credentials, Reject> {
    timestamped_hex(headers, SLACK_SIGNATURE, SLACK_TIMESTAMP, "v0=", |ts| format!("v0:{ts}:"))
}

/// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`
/// (or the same with `svix-`), signed string `"{id}.{ts}.{body}"`, signature a
/// space-separated list of `v1,<base64>`; `v1a` (asymmetric) entries are ignored.
fn standard_credentials(headers: &Headers) -> Result<Credentials, Reject> {
    // [signature, timestamp, id]: the webhook- names, or all three svix- ones.
    const WEBHOOK: [&str; 3] = [STANDARD_SIGNATURE, STANDARD_TIMESTAMP, STANDARD_ID];
    const SVIX: [&str; 3] = [SVIX_SIGNATURE, SVIX_TIMESTAMP, SVIX_ID];
    let [sig_name, ts_name, id_name] =
        if headers.contains(WEBHOOK[0]) || !headers.contains(SVIX[0]) { WEBHOOK } else { SVIX };
    let (sig, ts) = signature_and_timestamp(headers, sig_name, ts_name)?;
    let id = required(headers, id_name, Reject::MissingSignature, Reject::MalformedSignature)?;
    // As the reference verifiers do: entries of other versions (`v1a`, ...) and
    // `v1` entries that are not a SHA-256 tag are skipped; one must be usable.
    let tags: Vec<[u8; 32]> = sig
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()))
        .collect();
    if tags.is_empty() {
        return Err(Reject::MalformedSignature);
    }
    let timestamp = parse_unix_seconds(ts).ok_or(Reject::MalformedTimestamp)?;
    Ok(credentials(Some(timestamp), tags, format!("{id}.{ts}.").into_bytes(), Some(id.to_string())))
}

/// Shopify: `X-Shopify-Hmac-Sha256: <base64>` of the body's HMAC. The webhook
/// id header is not signed, so it is never trusted.
fn shopify_credentials(headers: &Headers) -> Result<Credentials, Reject> {
    let sig = required(headers, SHOPIFY_HMAC, Reject::MissingSignature, Reject::MalformedSignature)?;
    let tag =
        BASE64.decode(sig.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or(Reject::MalformedSignature)?;
    Ok(credentials(None, vec![tag], Vec::new(), None))
}

/// Decimal unix seconds: digits only, no sign, at most 12 of them.
pub fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Lowercase hex HMAC-SHA256 of `timestamp + "." + body`: the platform's own
/// scheme, used for signing (CLI, outbound).
pub fn sign_generic(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Credentials {
    /// The first secret valid at `now` whose tag matches, compared in constant time.
    pub fn verify<'s>(&self, body: &[u8], secrets: &'s [Secret], now: i64) -> Option<&'s Secret> {
        secrets.iter().filter(|s| s.valid_at(now)).find(|secret| {
            let mut mac = secret.mac();
            mac.update(&self.signed_prefix);
            mac.update(body);
            let tag = mac.finalize().into_bytes();
            let hit = self.candidates.iter().fold(Choice::from(0), |acc, c| acc | tag.as_slice().ct_eq(c.as_slice()));
            bool::from(hit)
        })
    }
}

#[cfg(test)]
mod tests;
