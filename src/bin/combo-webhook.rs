//! `combo-webhook`: sign, verify, validate and try out mappings with the
//! filter's own code.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use combo_webhook_filter::contract::error::Reject;
use combo_webhook_filter::host::Headers;
use combo_webhook_filter::plan::{self, raw, Compiled, InboundPlan};
use combo_webhook_filter::rules::secrets::Secret;
use combo_webhook_filter::rules::signature::Profile;
use combo_webhook_filter::rules::signing::sign_headers;
use combo_webhook_filter::stream::inbound::{map_delivery, Unmapped};

/// Sign, verify and validate webhook deliveries with the filter's own code.
///
/// Exit status: 0 ok, 1 verification, validation or mapping failed, 2 usage error.
#[derive(Parser)]
#[command(name = "combo-webhook", version, about, args_override_self = false)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the headers a sender of PROFILE would send for a body.
    Sign(SignArgs),
    /// Verify a delivery's headers and body, as the filter would.
    Verify(VerifyArgs),
    /// Check a plugin configuration (JSON or YAML); every error with its field path.
    Validate {
        /// The configuration file, or - for standard input (JSON or YAML).
        config: String,
    },
    /// Render a trigger's inputs against a sample payload, as the edge would.
    Inputs(InputsArgs),
    /// List the signature presets and what each needs.
    Presets,
}

#[derive(Args)]
struct KeyArgs {
    /// The sender's scheme.
    #[arg(long, default_value = "generic_webhook", value_parser = parse_profile)]
    source: Profile,
    /// The secret, as configured on the trigger.
    #[arg(long, conflicts_with = "secret_env", required_unless_present = "secret_env")]
    secret: Option<String>,
    /// Read the secret from this environment variable instead.
    #[arg(long)]
    secret_env: Option<String>,
    /// The body: a file, or - (the default) for standard input.
    #[arg(long, default_value = "-")]
    body: String,
}

#[derive(Args)]
struct SignArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Unix seconds (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
    /// The delivery or message id, where the scheme carries one.
    #[arg(long)]
    id: Option<String>,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// A request header, 'Name: value'; repeat for each.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Allowed clock skew in seconds, either way.
    #[arg(long, default_value_t = 300)]
    tolerance: u64,
}

#[derive(Args)]
struct InputsArgs {
    /// The plugin configuration (JSON or YAML).
    config: String,
    /// The trigger id whose inputs to render.
    #[arg(long)]
    trigger: String,
    /// The sample payload file, or - for standard input.
    #[arg(long, default_value = "-")]
    payload: String,
    /// A request header templates may read, 'Name: value'; repeat for each.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
}

fn parse_profile(name: &str) -> Result<Profile, String> {
    Profile::parse(name).ok_or_else(|| format!("unknown source; expected one of {}", Profile::NAMES.join(", ")))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sign(a) => sign(&a),
        Command::Verify(a) => verify(&a),
        Command::Validate { config } => validate(&config),
        Command::Inputs(a) => inputs(&a),
        Command::Presets => {
            presets();
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|msg| {
        eprintln!("combo-webhook: {msg}");
        ExitCode::from(2)
    })
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("reading stdin: {e}"))?;
        return Ok(buf);
    }
    std::fs::read(PathBuf::from(path)).map_err(|e| format!("reading {path}: {e}"))
}

fn header_pairs(lines: &[String]) -> Result<Vec<(String, String)>, String> {
    lines
        .iter()
        .map(|h| {
            let (k, v) = h.split_once(':').ok_or_else(|| format!("--header {h:?} is not 'Name: value'"))?;
            Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

impl KeyArgs {
    fn secret(&self) -> Result<Secret, String> {
        let text = match (&self.secret, &self.secret_env) {
            (Some(s), None) => s.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
            _ => return Err("give exactly one of --secret or --secret-env".to_string()),
        };
        let key = self.source.key_bytes(&text)?;
        Ok(Secret::new("cli".to_string(), &key, None, None))
    }
}

fn sign(a: &SignArgs) -> Result<ExitCode, String> {
    let secret = a.key.secret()?;
    let body = read(&a.key.body)?;
    for (name, value) in sign_headers(a.key.source, &secret, a.timestamp.unwrap_or_else(now), a.id.as_deref(), &body) {
        println!("{name}: {value}");
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(a: &VerifyArgs) -> Result<ExitCode, String> {
    let secret = a.key.secret()?;
    let headers = Headers::new(header_pairs(&a.headers)?);
    let body = read(&a.key.body)?;
    let now = now();
    let verdict = a.key.source.credentials(&headers).and_then(|creds| {
        if creds.timestamp.is_some_and(|ts| now.abs_diff(ts) > a.tolerance) {
            return Err(Reject::TimestampOutOfTolerance);
        }
        let keys = [secret];
        creds.verify(&body, &keys, now).map(|_| creds.signed_id.clone()).ok_or(Reject::SignatureMismatch)
    });
    match verdict {
        Ok(Some(id)) => println!("ok (signed delivery id {id})"),
        Ok(None) => println!("ok"),
        Err(r) => {
            println!("{}: {}", r.code(), r.message());
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses and compiles a config file; prints every error and returns `None`.
fn compile(path: &str) -> Result<Option<Compiled>, String> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
    let raw = if text.trim_start().starts_with('{') { raw::parse_json(&text) } else { raw::parse_yaml(&text) };
    match raw.map_err(|e| vec![e]).and_then(|raw| plan::compile(raw, &|name| std::env::var(name).ok(), now())) {
        Ok(c) => Ok(Some(c)),
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            println!("{path}: {} error(s)", errors.len());
            Ok(None)
        }
    }
}

fn validate(path: &str) -> Result<ExitCode, String> {
    let Some(compiled) = compile(path)? else { return Ok(ExitCode::from(1)) };
    for w in compiled.warnings() {
        println!("warning: {w}");
    }
    match &compiled {
        Compiled::Inbound(p) => println!("{path}: ok (inbound, {} trigger(s))", p.triggers.len()),
        Compiled::Outbound(p) => println!("{path}: ok (outbound, {} subscription(s))", p.subscriptions.len()),
    }
    Ok(ExitCode::SUCCESS)
}

fn inputs(a: &InputsArgs) -> Result<ExitCode, String> {
    let plan: Arc<InboundPlan> = match compile(&a.config)? {
        Some(Compiled::Inbound(p)) => Arc::new(p),
        Some(Compiled::Outbound(_)) => return Err(format!("{} is an outbound configuration", a.config)),
        None => return Ok(ExitCode::from(1)),
    };
    let trigger = plan.triggers.get(&a.trigger).ok_or_else(|| format!("no trigger {:?} in {}", a.trigger, a.config))?;
    let headers = Headers::new(header_pairs(&a.headers)?);
    let payload = read(&a.payload)?;
    match map_delivery(&plan, trigger, &headers, &payload) {
        Ok(m) => {
            for name in &m.failed {
                eprintln!("warning: input {name} rendered as null after a template error or the work budget");
            }
            println!("{}", m.inputs_json);
            Ok(ExitCode::SUCCESS)
        }
        Err(u) => {
            let (status, body) = match u {
                Unmapped::Reject(r) => (r.status(), r.body()),
                Unmapped::Input(r, name) => (r.status(), r.body_for_input(&name)),
                Unmapped::Ignored => (202, r#"{"status":"ignored"}"#.to_string()),
            };
            println!("{status} {body}");
            Ok(ExitCode::from(1))
        }
    }
}

fn presets() {
    println!("{:<18} {:<58} needs", "preset", "headers");
    for name in Profile::NAMES {
        if let Some(p) = Profile::parse(name) {
            println!("{:<18} {:<58} {}", name, p.audit_headers().join(", "), p.needs());
        }
    }
}
