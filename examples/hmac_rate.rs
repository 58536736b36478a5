//! Native rate of the filter's own verification code (`Credentials::verify`:
//! HMAC-SHA256 over the signed prefix and body, constant-time compare), in
//! MB/s over a 1 MiB body. `make bench` prints it next to the rate in V8.

use std::time::Instant;

use combo_webhook_filter::host::Headers;
use combo_webhook_filter::rules::secrets::Secret;
use combo_webhook_filter::rules::signature::{sign_generic, Profile};

fn main() {
    let body = vec![b'x'; 1 << 20];
    let secret = Secret::new("k".into(), b"bench-secret", None, None);
    let sig = sign_generic(&secret, 1_700_000_000, &body);
    let headers = Headers::from_pairs([("x-combo-signature", sig.as_str()), ("x-combo-timestamp", "1700000000")]);
    let Ok(creds) = Profile::GenericWebhook.credentials(&headers) else {
        eprintln!("hmac_rate: could not parse the signature it made");
        std::process::exit(1);
    };
    let keys = [secret];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < 2.0 {
        if creds.verify(&body, &keys, 1_700_000_000).is_none() {
            eprintln!("hmac_rate: verification failed");
            std::process::exit(1);
        }
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{{\"mb_per_s\":{:.1},\"iterations\":{n}}}", n as f64 * body.len() as f64 / 1e6 / secs);
}
