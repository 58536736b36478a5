//! Native cost of the scheme engine: HMAC-SHA256 (the platform's scheme) in
//! MB/s over a 1 MiB body, one Ed25519 verify (Discord) of a 1 KiB body, and
//! compiling a configuration with one trigger per preset (what
//! `on_configure` does). `make bench` prints it next to the rate in V8.

use std::time::Instant;

use combo_webhook_filter::host::Headers;
use combo_webhook_filter::plan::inbound::resolve_scheme;
use combo_webhook_filter::rules::scheme::sign::{sign, Signer};
use combo_webhook_filter::rules::scheme::{presets, Key, KeyMaterial, Request, Scheme};

const NOW: i64 = 1_700_000_000;

fn fail(msg: &str) -> ! {
    eprintln!("hmac_rate: {msg}");
    std::process::exit(1)
}

/// Verifications per second of one signed delivery, for `secs` seconds.
fn rate(scheme: &Scheme, signer: &Signer, keys: &[Key], body: &[u8], secs: f64) -> f64 {
    let req_line = Headers::from_pairs([(":method", "POST"), (":path", "/v1/webhook/generic/t")]);
    let Ok(signed) = sign(scheme, signer, NOW, Some("m1"), &req_line, body) else { fail("could not sign") };
    let mut pairs =
        vec![(":method".to_string(), "POST".to_string()), (":path".to_string(), "/v1/webhook/generic/t".to_string())];
    pairs.extend(signed.headers);
    let headers = Headers::new(pairs);
    let Ok(creds) = scheme.read_head(&headers) else { fail("could not read what it signed") };
    let req = Request { headers: &headers, body };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        if scheme.verify(&creds, &req, keys, NOW).is_none() {
            fail("verification failed");
        }
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let Ok(generic) = resolve_scheme(Some("generic_webhook"), None, false, 300) else { fail("generic scheme") };
    let hmac = [Key::hmac_sha256("k", b"bench-secret")];
    let big = vec![b'x'; 1 << 20];
    let per_s = rate(&generic, &Signer::Secret("bench-secret".into()), &hmac, &big, 2.0);

    let Ok(discord) = resolve_scheme(Some("discord"), None, false, 300) else { fail("discord scheme") };
    let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let Ok(public) = KeyMaterial::public(discord.algorithm, &hex::encode(sk.verifying_key().as_bytes())) else {
        fail("public key")
    };
    let discord_key = hex::encode(sk.verifying_key().as_bytes());
    let ed_keys = [Key::new("k".into(), public, None, None)];
    let small = vec![b'x'; 1024];
    let ed_per_s = rate(&discord, &Signer::Ed25519(Box::new(sk)), &ed_keys, &small, 1.0);
    let hmac_small_per_s = rate(&generic, &Signer::Secret("bench-secret".into()), &hmac, &small, 1.0);

    // One trigger per preset, as `on_configure` compiles it.
    let triggers: Vec<serde_json::Value> = presets::names()
        .iter()
        .map(|name| {
            let key = match name.as_str() {
                "discord" | "discord_webhook_events" | "telnyx" => serde_json::json!({"public_key": discord_key}),
                "sendgrid" => serde_json::json!({"public_key": sendgrid_key()}),
                // The sender publishes its key: the trigger holds none, only the values its scheme names.
                "aws_sns" => serde_json::json!({"scheme": {"sender": {"one_of": ["arn:aws:sns:us-east-1:1:t"]}}}),
                "paypal" => serde_json::json!({"scheme": {"params": {"webhook_id": "WH-1"}}}),
                "plaid" => serde_json::json!({"scheme": {"params": {"client_id": "c", "secret": "s"}}}),
                // Valid in every secret encoding: utf8, hex, base64 and whsec.
                _ => serde_json::json!({"secret": "00c0ffee"}),
            };
            let mut t = serde_json::json!({"id": name, "source": name, "action": {"agent_id": "a"}});
            if let (Some(t), Some(k)) = (t.as_object_mut(), key.as_object()) {
                t.extend(k.clone());
                if name == "meta" {
                    t.insert("verify_token".into(), serde_json::json!({"value": "v"}));
                }
            }
            t
        })
        .collect();
    let config = serde_json::json!({"triggers": triggers}).to_string();
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed().as_secs_f64() < 1.0 {
        match combo_webhook_filter::plan::from_json(&config, &|_| None, NOW) {
            Ok(_) => n += 1,
            Err(e) => fail(&format!("config: {e:?}")),
        }
    }
    let configure_ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(n);
    let (cert_us, sns_us) = published_key_costs();
    println!(
        "{{\"mb_per_s\":{:.1},\"hmac_1kib_us\":{:.2},\"ed25519_1kib_us\":{:.1},\"configure_{}_presets_ms\":{:.2},\"sns_certificate_read_us\":{:.1},\"sns_verify_us\":{:.1}}}",
        per_s * big.len() as f64 / 1e6,
        1e6 / hmac_small_per_s,
        1e6 / ed_per_s,
        triggers.len(),
        configure_ms,
        cert_us,
        sns_us
    );
}

/// A P-256 public key (the SEC1 point, base64).
fn sendgrid_key() -> String {
    use base64::Engine;
    let Ok(sk) = p256::ecdsa::SigningKey::from_slice(&[7; 32]) else { fail("P-256 key") };
    base64::engine::general_purpose::STANDARD.encode(sk.verifying_key().to_encoded_point(false).as_bytes())
}

/// A published key's CPU cost (AWS's own SNS vector, tests/data/aws_sns):
/// reading the RSA-2048 certificate (once per fetch), and one verification
/// of a notification through the `aws_sns` preset (every delivery), in µs.
fn published_key_costs() -> (f64, f64) {
    use combo_webhook_filter::rules::scheme::published::{keys_from, KeyFormat};
    let pem = include_bytes!("../../../tests/data/aws_sns/certificate.pem");
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/aws_sns/http_fixtures.json")).unwrap_or_default();
    let in_2022 = 1_659_000_000; // inside the certificate's validity
    let start = Instant::now();
    let mut n = 0u32;
    let mut material = None;
    while start.elapsed().as_secs_f64() < 0.5 {
        material = keys_from(KeyFormat::Certificate, None, pem, in_2022).and_then(|mut k| k.pop()).map(|(_, m)| m);
        n += 1;
    }
    let cert_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let Some(material) = material else { fail("the AWS certificate") };
    let keys = [Key::new("aws".into(), material, None, None)];
    let Ok(scheme) = resolve_scheme(Some("aws_sns"), None, false, 300) else { fail("aws_sns scheme") };
    let headers = Headers::from_pairs([(":method", "POST"), ("content-type", "text/plain")]);
    let Ok(body) = serde_json::to_vec(&fixtures[0]) else { fail("the SNS vector") };
    let Ok(mut creds) = scheme.read_head(&headers) else { fail("SNS head") };
    if scheme.read_body(&mut creds, &body).is_err() {
        fail("SNS body");
    }
    let req = Request { headers: &headers, body: &body };
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed().as_secs_f64() < 0.5 {
        if scheme.verify(&creds, &req, &keys, in_2022).is_none() {
            fail("the SNS vector does not verify");
        }
        n += 1;
    }
    (cert_us, start.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}
