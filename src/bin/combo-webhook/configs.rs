//! Finding and compiling plugin configurations: a configuration file, or
//! every combo_webhook plugin inside an Envoy bootstrap or an Istio manifest.

use combo_webhook_filter::plan::{self, raw, Compiled};
use std::process::ExitCode;

use super::{now, read};
use crate::out::outln;

/// How environment variables are looked up while compiling.
#[derive(Clone, Copy)]
pub enum Env {
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
pub fn compile_all(path: &str, env: Env) -> Result<Option<Vec<(String, Compiled)>>, String> {
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
        let result = raw::from_value(value)
            .map_err(|e| vec![e])
            .and_then(|raw| plan::compile(raw, plan::Sources::env(&lookup), now()));
        match result {
            Ok(c) => compiled.push((at, c)),
            Err(errors) => {
                for e in &errors {
                    let place = if at.is_empty() { String::new() } else { format!("{at}: ") };
                    outln!("error: {place}{e}");
                }
                failed += errors.len();
            }
        }
    }
    if failed > 0 {
        outln!("{path}: {failed} error(s)");
        return Ok(None);
    }
    Ok(Some(compiled))
}

/// The one plugin configuration of a file (for `inputs`).
pub fn compile(path: &str) -> Result<Option<Compiled>, String> {
    Ok(compile_all(path, Env::Process)?.and_then(|mut all| (all.len() == 1).then(|| all.remove(0).1)))
}

/// `combo-webhook validate`: every plugin configuration in the file, with
/// its warnings and errors.
pub fn validate(path: &str, allow_missing_env: bool) -> Result<ExitCode, String> {
    let env = if allow_missing_env { Env::AllowMissing } else { Env::Process };
    let Some(all) = compile_all(path, env)? else { return Ok(ExitCode::from(1)) };
    for (at, compiled) in &all {
        let place = if at.is_empty() { path.to_string() } else { format!("{path} ({at})") };
        for w in compiled.warnings() {
            outln!("warning: {w}");
        }
        match compiled {
            Compiled::Inbound(p) => outln!("{place}: ok (inbound, {} trigger(s))", p.triggers.len()),
            Compiled::Outbound(p) => outln!("{place}: ok (outbound, {} subscription(s))", p.subscriptions.len()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
