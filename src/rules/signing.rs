//! The sender's side of every profile: the headers a provider would send for a
//! body. Used by the CLI (`combo-webhook sign`) and the benchmarks; the filter
//! itself only signs with the generic scheme (outbound).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::Mac;

use crate::rules::secrets::Secret;
use crate::rules::signature::Profile;

fn tag(secret: &Secret, prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = secret.mac();
    mac.update(prefix);
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Header lines (name, value) for `body`, signed with `secret` (already keyed
/// with `profile.key_bytes`). `id` is the delivery/message id where the
/// profile carries one.
pub fn sign_headers(
    profile: Profile,
    secret: &Secret,
    timestamp: i64,
    id: Option<&str>,
    body: &[u8],
) -> Vec<(String, String)> {
    let ts = timestamp.to_string();
    let mut out: Vec<(&str, String)> = match profile {
        Profile::GenericWebhook => vec![
            ("X-Combo-Timestamp", ts.clone()),
            ("X-Combo-Signature", crate::rules::signature::sign_generic(secret, timestamp, body)),
        ],
        Profile::Github => {
            let mut v = vec![("X-Hub-Signature-256", format!("sha256={}", hex::encode(tag(secret, b"", body))))];
            v.extend(id.map(|id| ("X-GitHub-Delivery", id.to_string())));
            v
        }
        Profile::Stripe => {
            let sig = hex::encode(tag(secret, format!("{ts}.").as_bytes(), body));
            vec![("Stripe-Signature", format!("t={ts},v1={sig}"))]
        }
        Profile::Slack => vec![
            ("X-Slack-Request-Timestamp", ts.clone()),
            ("X-Slack-Signature", format!("v0={}", hex::encode(tag(secret, format!("v0:{ts}:").as_bytes(), body)))),
        ],
        Profile::StandardWebhooks => {
            let id = id.unwrap_or("msg_combo");
            let sig = BASE64.encode(tag(secret, format!("{id}.{ts}.").as_bytes(), body));
            vec![
                ("webhook-id", id.to_string()),
                ("webhook-timestamp", ts.clone()),
                ("webhook-signature", format!("v1,{sig}")),
            ]
        }
        Profile::Shopify => {
            let mut v = vec![("X-Shopify-Hmac-Sha256", BASE64.encode(tag(secret, b"", body)))];
            v.extend(id.map(|id| ("X-Shopify-Webhook-Id", id.to_string())));
            v
        }
    };
    out.drain(..).map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Headers;

    /// What the CLI signs, the filter verifies: every profile round-trips.
    #[test]
    fn every_profile_round_trips_through_the_verifier() {
        let secret_text = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=";
        for name in Profile::NAMES {
            let profile = Profile::parse(name).unwrap();
            let key = profile.key_bytes(secret_text).unwrap();
            let secret = Secret::new("k".into(), &key, None, None);
            let body = br#"{"n":1}"#;
            let lines = sign_headers(profile, &secret, 1_700_000_000, Some("d-1"), body);
            let headers = Headers::new(lines.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect());
            let creds = profile.credentials(&headers).unwrap_or_else(|e| panic!("{name}: {e}"));
            let keys = [secret];
            assert!(creds.verify(body, &keys, 1_700_000_000).is_some(), "{name}");
            assert!(creds.verify(br#"{"n":2}"#, &keys, 1_700_000_000).is_none(), "{name}");
        }
    }
}
