//! `combo-webhook`: sign, verify and validate with the filter's own code.

use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use combo_webhook_filter::contract::error::Reject;
use combo_webhook_filter::host::Headers;
use combo_webhook_filter::plan::{self, raw, Compiled};
use combo_webhook_filter::rules::secrets::Secret;
use combo_webhook_filter::rules::signature::Profile;
use combo_webhook_filter::rules::signing::sign_headers;

const USAGE: &str = "usage:
  combo-webhook sign     [--source PROFILE] (--secret S | --secret-env VAR) [--timestamp T] [--id ID] [--body FILE]
  combo-webhook verify   [--source PROFILE] (--secret S | --secret-env VAR) --header 'Name: value'...
                         [--tolerance SECONDS] [--body FILE]
  combo-webhook validate CONFIG.(json|yaml)

PROFILE: generic_webhook (default), github, stripe, slack, standard_webhooks, shopify.
The body is read from FILE, or from standard input when FILE is '-' or absent.
Exit status: 0 ok, 1 verification or validation failed, 2 usage error.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sign") => Flags::parse(&args[1..]).and_then(|f| sign(&f)),
        Some("verify") => Flags::parse(&args[1..]).and_then(|f| verify(&f)),
        Some("validate") if args.len() == 2 => validate(&args[1]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(USAGE.to_string()),
    };
    result.unwrap_or_else(|msg| {
        eprintln!("combo-webhook: {msg}");
        ExitCode::from(2)
    })
}

#[derive(Default)]
struct Flags {
    pairs: Vec<(String, String)>,
}

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let name = flag.strip_prefix("--").ok_or_else(|| format!("unexpected argument {flag:?}\n{USAGE}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            f.pairs.push((name.to_string(), value.clone()));
        }
        Ok(f)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn int(&self, name: &str) -> Result<Option<i64>, String> {
        self.get(name)
            .map(|v| v.parse::<i64>().map_err(|_| format!("--{name} must be an integer, got {v:?}")))
            .transpose()
    }

    fn profile(&self) -> Result<Profile, String> {
        let name = self.get("source").unwrap_or("generic_webhook");
        Profile::parse(name)
            .ok_or_else(|| format!("unknown --source {name:?}; expected one of {}", Profile::NAMES.join(", ")))
    }

    fn secret(&self, profile: Profile) -> Result<Secret, String> {
        let text = match (self.get("secret"), self.get("secret-env")) {
            (Some(s), None) => s.to_string(),
            (None, Some(var)) => std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
            _ => return Err("give exactly one of --secret or --secret-env".to_string()),
        };
        let key = profile.key_bytes(&text)?;
        Ok(Secret::new("cli".to_string(), &key, None, None))
    }

    fn body(&self) -> Result<Vec<u8>, String> {
        match self.get("body") {
            None | Some("-") => {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("reading stdin: {e}"))?;
                Ok(buf)
            }
            Some(path) => std::fs::read(path).map_err(|e| format!("reading {path}: {e}")),
        }
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn sign(f: &Flags) -> Result<ExitCode, String> {
    let profile = f.profile()?;
    let secret = f.secret(profile)?;
    let ts = f.int("timestamp")?.unwrap_or_else(now);
    let body = f.body()?;
    for (name, value) in sign_headers(profile, &secret, ts, f.get("id"), &body) {
        println!("{name}: {value}");
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(f: &Flags) -> Result<ExitCode, String> {
    let profile = f.profile()?;
    let secret = f.secret(profile)?;
    let tolerance = f.int("tolerance")?.unwrap_or(300).unsigned_abs();
    let mut pairs = Vec::new();
    for h in f.all("header") {
        let (k, v) = h.split_once(':').ok_or_else(|| format!("--header {h:?} is not 'Name: value'"))?;
        pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let body = f.body()?;
    let now = now();
    let verdict = profile.credentials(&Headers::new(pairs)).and_then(|creds| {
        if creds.timestamp.is_some_and(|ts| now.abs_diff(ts) > tolerance) {
            return Err(Reject::TimestampOutOfTolerance);
        }
        let keys = [secret];
        creds.verify(&body, &keys, now).map(|_| creds.signed_id.clone()).ok_or(Reject::SignatureMismatch)
    });
    match verdict {
        Ok(signed_id) => {
            match signed_id {
                Some(id) => println!("ok (signed delivery id {id})"),
                None => println!("ok"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => {
            println!("{}: {}", r.code(), r.message());
            Ok(ExitCode::from(1))
        }
    }
}

fn validate(path: &str) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let yaml = path.ends_with(".yaml") || path.ends_with(".yml");
    let raw = if yaml { raw::parse_yaml(&text) } else { raw::parse_json(&text) };
    let result = raw.map_err(|e| vec![e]).and_then(|raw| plan::compile(raw, &|name| std::env::var(name).ok(), now()));
    match result {
        Ok(compiled) => {
            for w in compiled.warnings() {
                println!("warning: {w}");
            }
            match &compiled {
                Compiled::Inbound(p) => println!("{path}: ok (inbound, {} trigger(s))", p.triggers.len()),
                Compiled::Outbound(p) => println!("{path}: ok (outbound, {} subscription(s))", p.subscriptions.len()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            println!("{path}: {} error(s)", errors.len());
            Ok(ExitCode::from(1))
        }
    }
}
