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
use combo_webhook_filter::plan::inbound::resolve_scheme;
use combo_webhook_filter::plan::{Compiled, InboundPlan};
use combo_webhook_filter::rules::scheme::sign::{sign as sign_as, Signed, Signer};
use combo_webhook_filter::rules::scheme::{Key, KeyMaterial, Request, Scheme};
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
    /// Print what a sender of a preset or scheme would send for a body.
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
    /// Sign a delivery as its sender would and post it to a deployed edge.
    ///
    /// Prints the answer's status and, for a refusal, the filter's error code;
    /// exits 1 unless the edge answered 2xx.
    Send(SendArgs),
    /// List the signature presets and what each needs.
    Presets {
        /// Print the book's preset table (markdown) instead.
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// Print the same table as JSON, one object per preset.
        #[arg(long)]
        json: bool,
    },
}

/// The URL `sign` and `verify` assume the sender posted to.
const DEFAULT_URL: &str = "https://localhost/v1/webhook/generic/cli";

#[derive(Args)]
struct SchemeArgs {
    /// The sender's preset (`combo-webhook presets`).
    #[arg(long, default_value = "generic_webhook")]
    source: String,
    /// A `scheme:` object (JSON or YAML file): a scheme of its own, or
    /// overrides of the preset's fields (`--source custom` for none).
    #[arg(long, value_name = "FILE")]
    scheme: Option<String>,
    /// The secret (or token), as configured on the trigger.
    #[arg(long, conflicts_with = "secret_env")]
    secret: Option<String>,
    /// Read the secret from this environment variable instead.
    #[arg(long)]
    secret_env: Option<String>,
    /// The body: a file, or - (the default) for standard input.
    #[arg(long, default_value = "-")]
    body: String,
    /// The URL the sender posts to (schemes that sign {url}, {path});
    /// default https://localhost/v1/webhook/generic/cli (`send`: its URL).
    #[arg(long)]
    url: Option<String>,
    /// The request method (schemes that sign {method}).
    #[arg(long, default_value = "POST")]
    method: String,
}

#[derive(Args)]
struct SignArgs {
    #[command(flatten)]
    scheme: SchemeArgs,
    /// Asymmetric schemes: the private key (PKCS#8 PEM; Ed25519 also as 64 hex digits).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["secret", "secret_env"])]
    private_key: Option<String>,
    /// Unix seconds (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
    /// The delivery or message id, where the scheme carries one.
    #[arg(long)]
    id: Option<String>,
    /// A header the scheme signs ({header:NAME}), 'Name: value'; repeat for each.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
}

#[derive(Args)]
struct SendArgs {
    /// The edge's URL, e.g. https://hooks.example.com/v1/webhook/generic/trg_github.
    target: String,
    #[command(flatten)]
    sign: SignArgs,
    /// Print the equivalent curl command instead of sending.
    #[arg(long)]
    curl: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    scheme: SchemeArgs,
    /// Asymmetric schemes: the sender's public key.
    #[arg(long, conflicts_with_all = ["secret", "secret_env"])]
    public_key: Option<String>,
    /// A request header, 'Name: value'; repeat for each.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Allowed clock skew in seconds, either way (the scheme's own limits win).
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

#[path = "combo-webhook/out.rs"]
mod out;
use out::outln;

#[path = "combo-webhook/configs.rs"]
mod configs;

#[path = "combo-webhook/presets_md.rs"]
mod presets_md;

#[path = "combo-webhook/send.rs"]
mod send;

use configs::compile;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sign(a) => sign(&a),
        Command::Verify(a) => verify(&a),
        Command::Validate { config, allow_missing_env } => configs::validate(&config, allow_missing_env),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "combo-webhook", &mut script);
            out::bytes(&script);
            Ok(ExitCode::SUCCESS)
        }
        Command::Inputs(a) => inputs(&a),
        Command::Send(a) => send(a),
        Command::Presets { markdown, json } => {
            if markdown {
                out::bytes(presets_md::table().as_bytes());
            } else if json {
                out::bytes(presets_md::json().as_bytes());
            } else {
                presets_md::list();
            }
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

impl SchemeArgs {
    fn scheme(&self, public_key: bool, tolerance: u64) -> Result<Scheme, String> {
        let own = match &self.scheme {
            Some(path) => {
                let text = String::from_utf8(read(path)?).map_err(|_| format!("{path} is not UTF-8"))?;
                let value: serde_json::Value = serde_yaml_ng::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
                Some(
                    serde_path_to_error::deserialize(value)
                        .map_err(|e| format!("{path}: {}: {}", e.path(), e.inner()))?,
                )
            }
            None => None,
        };
        let tolerance = i64::try_from(tolerance).map_err(|_| "--tolerance is too large".to_string())?;
        resolve_scheme(Some(&self.source), own, public_key, tolerance)
            .map_err(|e| format!("{}: {}", e.field, e.message))
    }

    fn secret_text(&self) -> Result<Option<String>, String> {
        match (&self.secret, &self.secret_env) {
            (Some(s), None) => Ok(Some(s.clone())),
            (None, Some(var)) => {
                std::env::var(var).map(Some).map_err(|_| format!("environment variable {var} is not set"))
            }
            _ => Ok(None),
        }
    }

    /// The request line as the sender sends it, plus `extra` headers.
    fn request(&self, extra: &[String]) -> Result<Headers, String> {
        let url = self.url.as_deref().unwrap_or(DEFAULT_URL);
        let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("--url {url:?} is not a URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut pairs = vec![
            (":method".to_string(), self.method.clone()),
            (":scheme".to_string(), scheme.to_string()),
            (":authority".to_string(), authority.to_string()),
            (":path".to_string(), path.to_string()),
        ];
        pairs.extend(header_pairs(extra)?);
        Ok(Headers::new(pairs))
    }
}

/// What the sender sends for the body: the signed headers, query and body
/// fields, the body, and the scheme's first media type.
fn signed(a: &SignArgs) -> Result<(Signed, Vec<u8>, String), String> {
    let scheme = a.scheme.scheme(a.private_key.is_some(), 300)?;
    let signer = match (&a.private_key, a.scheme.secret_text()?) {
        (Some(path), None) => {
            let text = String::from_utf8(read(path)?).map_err(|_| format!("{path} is not UTF-8"))?;
            Signer::private_key(scheme.algorithm, &text)?
        }
        (None, Some(secret)) => Signer::Secret(secret),
        _ => return Err("give one of --secret, --secret-env or --private-key".to_string()),
    };
    let body = read(&a.scheme.body)?;
    let request = a.scheme.request(&a.headers)?;
    let signed = sign_as(&scheme, &signer, a.timestamp.unwrap_or_else(now), a.id.as_deref(), &request, &body)?;
    let media_type = scheme.content_types.first().cloned().unwrap_or_else(|| "application/json".to_string());
    Ok((signed, body, media_type))
}

fn sign(a: &SignArgs) -> Result<ExitCode, String> {
    let (signed, _, _) = signed(a)?;
    for (name, value) in &signed.headers {
        outln!("{name}: {value}");
    }
    for (name, value) in &signed.query {
        outln!("?{name}={value}");
    }
    for (pointer, value) in &signed.json {
        outln!("json {pointer}: {value}");
    }
    Ok(ExitCode::SUCCESS)
}

fn send(mut a: SendArgs) -> Result<ExitCode, String> {
    // The sender signs the URL it posts to, unless told otherwise (an edge
    // behind a proxy that rewrites the URL).
    a.sign.scheme.url.get_or_insert_with(|| a.target.clone());
    let (signed, body, media_type) = signed(&a.sign)?;
    let delivery = send::Delivery::new(&a.target, &media_type, signed, body)?;
    if a.curl {
        outln!("{}", delivery.curl()?);
        return Ok(ExitCode::SUCCESS);
    }
    delivery.post(std::time::Duration::from_secs(a.timeout))
}

fn verify(a: &VerifyArgs) -> Result<ExitCode, String> {
    let scheme = a.scheme.scheme(a.public_key.is_some(), a.tolerance)?;
    let material = match (&a.public_key, a.scheme.secret_text()?) {
        (Some(text), None) => KeyMaterial::public(scheme.algorithm, text),
        (None, Some(secret)) => KeyMaterial::secret(scheme.algorithm, &secret, scheme.secret_encoding),
        _ => return Err("give one of --secret, --secret-env or --public-key".to_string()),
    }
    .map_err(|e| format!("the key {e}"))?;
    let keys = [Key::new("cli".to_string(), material, None, None)];
    let mut lines = a.headers.clone();
    if !lines.iter().any(|l| l.to_ascii_lowercase().starts_with("content-type:")) {
        lines.push("content-type: application/json".to_string());
    }
    let headers = a.scheme.request(&lines)?;
    let body = read(&a.scheme.body)?;
    let now = now();
    let verdict = scheme.read_head(&headers).and_then(|mut creds| {
        scheme.read_body(&mut creds, &body)?;
        if !scheme.timestamp_holds(&creds, now) {
            return Err(Reject::TimestampOutOfTolerance);
        }
        use sha2::Digest;
        scheme.body_digest_holds(&headers, &sha2::Sha256::digest(&body).into())?;
        let req = Request { headers: &headers, body: &body };
        scheme.verify(&creds, &req, &keys, now).ok_or(Reject::SignatureMismatch)?;
        Ok(scheme.signed_id(&creds))
    });
    match verdict {
        Ok(Some(id)) => outln!("ok (signed delivery id {id})"),
        Ok(None) => outln!("ok"),
        Err(r) => {
            outln!("{}: {}", r.code(), r.message());
            return Ok(ExitCode::from(1));
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
            outln!("{}", m.inputs_json);
            Ok(ExitCode::SUCCESS)
        }
        Err(u) => {
            let (status, body) = match u {
                Unmapped::Reject(r) => (r.status(), r.body()),
                Unmapped::Input(r, name) => (r.status(), r.body_for_input(&name)),
                Unmapped::Ignored => (202, r#"{"status":"ignored"}"#.to_string()),
            };
            outln!("{status} {body}");
            Ok(ExitCode::from(1))
        }
    }
}
