//! `combo-webhook`: sign, verify, validate and try out mappings with the
//! filter's own code.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, CommandFactory, Parser, Subcommand};
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
    /// Check a plugin configuration; every error with its field path.
    ///
    /// CONFIG is the plugin configuration (JSON or YAML), or an Envoy bootstrap
    /// or an Istio manifest holding it: every combo_webhook plugin inside is
    /// checked.
    Validate {
        /// The file, or - for standard input.
        config: String,
        /// Treat secrets read from unset environment variables as present (for
        /// linting configs in CI, where the secrets live elsewhere).
        #[arg(long)]
        allow_missing_env: bool,
    },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
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
        Command::Validate { config, allow_missing_env } => validate(&config, allow_missing_env),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "combo-webhook", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
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

/// How environment variables are looked up while compiling.
#[derive(Clone, Copy)]
enum Env {
    Process,
    /// `validate --allow-missing-env`: a placeholder for every unset variable.
    AllowMissing,
}

/// A plugin configuration found in a document: where, what, and the
/// `vm_config.environment_variables.key_values` Envoy would give its VM.
type Found = (String, serde_json::Value, serde_json::Map<String, serde_json::Value>);

impl Env {
    fn lookup(self, name: &str, vm_env: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
        let from_vm = vm_env.get(name).and_then(|v| v.as_str()).map(str::to_string);
        match (from_vm.or_else(|| std::env::var(name).ok()), self) {
            (Some(v), _) => Some(v),
            (None, Env::AllowMissing) => Some("placeholder-for-validation".to_string()),
            (None, Env::Process) => None,
        }
    }
}

/// The plugin configurations in a document: the document itself, or every
/// `combo_webhook` Wasm filter's `configuration` inside an Envoy bootstrap or
/// an Istio manifest (EnvoyFilter, WasmPlugin `pluginConfig`).
fn plugin_configs(doc: serde_json::Value) -> Vec<Found> {
    fn walk(node: &serde_json::Value, at: String, out: &mut Vec<Found>) {
        match node {
            serde_json::Value::Object(map) => {
                let wasm =
                    map.get("@type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with("filters.http.wasm.v3.Wasm"));
                if wasm {
                    if let Some(cfg) = map.get("config").and_then(|c| c.get("configuration")) {
                        let value = match cfg.get("value") {
                            Some(serde_json::Value::String(text)) => {
                                serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
                            }
                            Some(v) => v.clone(),
                            None => serde_json::Value::Null,
                        };
                        let vm_env = cfg_env(map.get("config"));
                        out.push((format!("{at}.config.configuration"), value, vm_env));
                    }
                }
                if map.get("kind").and_then(|k| k.as_str()) == Some("WasmPlugin") {
                    if let Some(cfg) = map.get("spec").and_then(|s| s.get("pluginConfig")) {
                        out.push((format!("{at}.spec.pluginConfig"), cfg.clone(), serde_json::Map::new()));
                    }
                }
                for (k, v) in map {
                    walk(v, format!("{at}.{k}"), out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{at}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let embedded =
        doc.get("static_resources").is_some() || doc.get("apiVersion").is_some() || doc.get("kind").is_some();
    if !embedded {
        return vec![(String::new(), doc, serde_json::Map::new())];
    }
    let mut out = Vec::new();
    walk(&doc, String::new(), &mut out);
    out
}

/// `vm_config.environment_variables.key_values` of a Wasm filter's config.
fn cfg_env(config: Option<&serde_json::Value>) -> serde_json::Map<String, serde_json::Value> {
    config
        .and_then(|c| c.pointer("/vm_config/environment_variables/key_values"))
        .and_then(|v| v.as_object())
        .cloned()
        .unwrap_or_default()
}

/// Parses and compiles every plugin configuration in a file; prints every
/// error. `None` when any failed.
fn compile_all(path: &str, env: Env) -> Result<Option<Vec<(String, Compiled)>>, String> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
    // A file may hold several YAML documents (Istio manifests).
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = <serde_json::Value as serde::Deserialize>::deserialize(doc).map_err(|e| format!("{path}: {e}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    let configs: Vec<_> = docs.into_iter().flat_map(plugin_configs).collect();
    if configs.is_empty() {
        return Err(format!("{path}: no combo_webhook plugin configuration found"));
    }
    let mut compiled = Vec::new();
    let mut failed = 0;
    for (at, value, vm_env) in configs {
        let lookup = |n: &str| env.lookup(n, &vm_env);
        let result = raw::from_value(value).map_err(|e| vec![e]).and_then(|raw| plan::compile(raw, &lookup, now()));
        match result {
            Ok(c) => compiled.push((at, c)),
            Err(errors) => {
                for e in &errors {
                    let place = if at.is_empty() { String::new() } else { format!("{at}: ") };
                    println!("error: {place}{e}");
                }
                failed += errors.len();
            }
        }
    }
    if failed > 0 {
        println!("{path}: {failed} error(s)");
        return Ok(None);
    }
    Ok(Some(compiled))
}

/// The one plugin configuration of a file (for `inputs`).
fn compile(path: &str) -> Result<Option<Compiled>, String> {
    Ok(compile_all(path, Env::Process)?.and_then(|mut all| (all.len() == 1).then(|| all.remove(0).1)))
}

fn validate(path: &str, allow_missing_env: bool) -> Result<ExitCode, String> {
    let env = if allow_missing_env { Env::AllowMissing } else { Env::Process };
    let Some(all) = compile_all(path, env)? else { return Ok(ExitCode::from(1)) };
    for (at, compiled) in &all {
        let place = if at.is_empty() { path.to_string() } else { format!("{path} ({at})") };
        for w in compiled.warnings() {
            println!("warning: {w}");
        }
        match compiled {
            Compiled::Inbound(p) => println!("{place}: ok (inbound, {} trigger(s))", p.triggers.len()),
            Compiled::Outbound(p) => println!("{place}: ok (outbound, {} subscription(s))", p.subscriptions.len()),
        }
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
