//! `combo-webhook`: sign, verify and validate with the filter's own code.
//!
//!   combo-webhook sign     (--secret S | --secret-env VAR) [--timestamp T] [--body FILE]
//!   combo-webhook verify   (--secret S | --secret-env VAR) --timestamp T --signature SIG
//!                          [--tolerance SECONDS] [--body FILE]
//!   combo-webhook validate CONFIG.json
//!
//! The body is read from FILE, or from standard input when FILE is `-` or absent.

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use combo_webhook_filter::headers::Headers;
use combo_webhook_filter::plan;
use combo_webhook_filter::secrets::Secret;
use combo_webhook_filter::signature::{self, Profile};

const USAGE: &str = "usage:
  combo-webhook sign     (--secret S | --secret-env VAR) [--timestamp T] [--body FILE]
  combo-webhook verify   (--secret S | --secret-env VAR) --timestamp T --signature SIG [--tolerance SECONDS] [--body FILE]
  combo-webhook validate CONFIG.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sign") => flags(&args[1..]).and_then(|f| sign(&f)),
        Some("verify") => flags(&args[1..]).and_then(|f| verify(&f)),
        Some("validate") => match args.get(1) {
            Some(path) if args.len() == 2 => validate(path),
            _ => Err(USAGE.to_string()),
        },
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

fn flags(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let name = flag.strip_prefix("--").ok_or_else(|| format!("unexpected argument {flag:?}\n{USAGE}"))?;
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        out.insert(name.to_string(), value.clone());
    }
    Ok(out)
}

fn secret(f: &HashMap<String, String>) -> Result<Secret, String> {
    let text = match (f.get("secret"), f.get("secret-env")) {
        (Some(s), None) => s.clone(),
        (None, Some(var)) => std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
        _ => return Err("give exactly one of --secret or --secret-env".to_string()),
    };
    let key = Profile::GenericWebhook.key_bytes(&text)?;
    Ok(Secret::new("cli".to_string(), &key, None, None))
}

fn body(f: &HashMap<String, String>) -> Result<Vec<u8>, String> {
    match f.get("body").map(String::as_str) {
        None | Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("reading stdin: {e}"))?;
            Ok(buf)
        }
        Some(path) => std::fs::read(path).map_err(|e| format!("reading {path}: {e}")),
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn int_flag(f: &HashMap<String, String>, name: &str) -> Result<Option<i64>, String> {
    f.get(name)
        .map(|v| v.parse::<i64>().map_err(|_| format!("--{name} must be an integer, got {v:?}")))
        .transpose()
}

fn sign(f: &HashMap<String, String>) -> Result<ExitCode, String> {
    let secret = secret(f)?;
    let ts = int_flag(f, "timestamp")?.unwrap_or_else(now);
    let body = body(f)?;
    println!("X-Combo-Timestamp: {ts}");
    println!("X-Combo-Signature: {}", signature::sign_generic(&secret, ts, &body));
    Ok(ExitCode::SUCCESS)
}

fn verify(f: &HashMap<String, String>) -> Result<ExitCode, String> {
    let secret = secret(f)?;
    let ts = f.get("timestamp").ok_or("--timestamp is required")?;
    let sig = f.get("signature").ok_or("--signature is required")?;
    let tolerance = int_flag(f, "tolerance")?.unwrap_or(300);
    let body = body(f)?;
    let headers = Headers::from_pairs([(signature::COMBO_TIMESTAMP, ts.as_str()), (signature::COMBO_SIGNATURE, sig.as_str())]);
    let verdict = Profile::GenericWebhook.credentials(&headers).and_then(|creds| {
        let skew = creds.timestamp.map_or(0, |t| now().abs_diff(t));
        if skew > tolerance.unsigned_abs() {
            return Err(combo_webhook_filter::error::Reject::TimestampOutOfTolerance);
        }
        let keys = [secret];
        creds.verify(&body, &keys, now()).map(|_| ()).ok_or(combo_webhook_filter::error::Reject::SignatureMismatch)
    });
    match verdict {
        Ok(()) => {
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => {
            println!("{}", r.code());
            Ok(ExitCode::from(1))
        }
    }
}

fn validate(path: &str) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    match plan::from_json(&text, &|name| std::env::var(name).ok()) {
        Ok(p) => {
            for w in p.warnings() {
                println!("warning: {w}");
            }
            match &p {
                plan::Compiled::Inbound(p) => println!("{path}: ok (inbound, {} trigger(s))", p.triggers.len()),
                plan::Compiled::Outbound(p) => println!("{path}: ok (outbound, {} subscription(s))", p.subscriptions.len()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
