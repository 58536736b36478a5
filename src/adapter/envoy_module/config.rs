//! One filter configuration (`on_http_filter_config_new`): the compiled plan,
//! its metric ids and the SDS secrets it reads. Shared by every worker
//! thread, so everything here is `Sync`; the plan itself is immutable and is
//! swapped whole when SDS rotates a secret.

use std::cell::RefCell;
use std::sync::{Arc, RwLock};

use super::ffi::{ConfigEnvoy, FilterEnvoy};
use super::{abi, abi_config};
use crate::adapter::core::{self, Metrics, Plan};
use crate::contract::error::ConfigError;
use crate::host::local_store::LocalStore;
use crate::host::Level;
use crate::plan::{self, Compiled, SdsValue, Sources};

/// The plan streams start from, and the SDS values it was compiled with.
struct Current {
    seen: Vec<Vec<u8>>,
    plan: Plan,
}

pub(super) struct FilterConfig {
    /// The configuration as Envoy gave it: recompiled when a secret rotates.
    bytes: Vec<u8>,
    pub(super) metrics: Arc<Metrics<usize>>,
    /// SDS secret names; Envoy's index of `sds[i]` is `i + 1`.
    sds: Vec<String>,
    current: RwLock<Current>,
}

/// The replay store every worker shares (Envoy's shared data, for the .wasm).
pub(super) fn store() -> &'static LocalStore {
    static STORE: std::sync::OnceLock<LocalStore> = std::sync::OnceLock::new();
    STORE.get_or_init(LocalStore::default)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// SDS text as the compiler wants it (empty: not delivered yet).
fn sds_value(bytes: &[u8]) -> SdsValue {
    match std::str::from_utf8(bytes) {
        Ok("") => SdsValue::Pending,
        Ok(text) => SdsValue::Value(text.to_string()),
        // Not text: no key can come of it; the compiler warns and fails closed.
        Err(_) => SdsValue::Value(String::new()),
    }
}

/// What this Envoy cannot do for the plan is a configuration error naming
/// its field, never a weaker promise at run time. Envoy 1.38 (whose ABI
/// lacks the config-time gauge, 1.39's addition) drops the module's
/// `continue_encoding` for a response Envoy answered itself while the
/// module held it for the etcd settle: the answer would hang until the
/// stream's idle timeout.
fn fits_this_envoy(compiled: Compiled) -> Result<Compiled, Vec<ConfigError>> {
    match &compiled {
        Compiled::Inbound(p) if p.replay.etcd.is_some() && !abi_config::resumes_held_responses() => {
            Err(vec![ConfigError::new(
                "replay.store",
                "etcd needs Envoy 1.39 or newer for the native module (this Envoy cannot resume a response held \
             for the store); use store: local here",
            )])
        }
        _ => Ok(compiled),
    }
}

fn log(level: Level, message: &str) {
    abi::log(level, message);
}

impl FilterConfig {
    /// Compiles the configuration, subscribing to the SDS secrets it names
    /// (Envoy allows that only now). `None` makes Envoy refuse the config;
    /// the reasons are in its log.
    pub(super) fn new(envoy: ConfigEnvoy, bytes: &[u8]) -> Option<FilterConfig> {
        let started = std::time::Instant::now();
        let raw = match plan::raw::parse_plugin_bytes(bytes) {
            Ok(raw) => raw,
            Err(e) => {
                core::log_compiled(&Err(vec![e]), &mut log);
                return None;
            }
        };
        // The ConfigSource of `sds:` secrets, as Envoy's JSON; empty: the
        // bootstrap's static secrets.
        let sds_config = raw.sds_config.as_ref().map(|c| c.to_string()).unwrap_or_default();
        // Names in Envoy's index order, and the values the plan is compiled from.
        let subscribed: RefCell<Vec<(String, Vec<u8>)>> = RefCell::new(Vec::new());
        let lookup = |name: &str| -> SdsValue {
            if !abi_config::has_sds() {
                return SdsValue::Unsupported;
            }
            let mut names = subscribed.borrow_mut();
            let index = match names.iter().position(|(n, _)| n == name) {
                Some(i) => i + 1,
                None => {
                    let index = abi_config::subscribe_secret(envoy, name, &sds_config);
                    if index != names.len() + 1 {
                        return SdsValue::Refused;
                    }
                    names.push((name.to_string(), Vec::new()));
                    index
                }
            };
            let bytes = abi_config::config_secret(envoy, index).unwrap_or_default();
            if let Some((_, seen)) = names.get_mut(index - 1) {
                *seen = bytes.to_vec();
            }
            sds_value(bytes)
        };
        let compiled = plan::compile(raw, Sources { env: &env, sds: Some(&lookup) }, now()).and_then(fits_this_envoy);
        let expiring = compiled.as_ref().map_or(0, Compiled::expiring);
        let plan = core::configure(compiled, store(), &mut log)?;
        let (sds, seen): (Vec<String>, Vec<Vec<u8>>) = subscribed.into_inner().into_iter().unzip();
        let metrics = Metrics::define(|kind, name| abi_config::define_metric(envoy, kind, name), &mut log);
        if let Some(id) = metrics.secrets_expiring {
            abi_config::set_gauge(envoy, id, expiring);
        }
        log(Level::Info, &core::configured_line(&plan, "native module", started));
        let config = FilterConfig {
            bytes: bytes.to_vec(),
            metrics: Arc::new(metrics),
            sds,
            current: RwLock::new(Current { seen, plan }),
        };
        Some(config)
    }

    /// The plan a new stream runs: recompiled first when SDS delivered or
    /// rotated a secret since the last stream (a few pointer reads and a
    /// compare per stream; the compile runs once per rotation).
    pub(super) fn plan(&self, filter: FilterEnvoy) -> Plan {
        if self.sds.is_empty() {
            return self.read().plan.clone();
        }
        let values: Vec<&[u8]> = (1..=self.sds.len()).map(|i| abi::secret(filter, i)).collect();
        {
            let current = self.read();
            if current.seen.iter().map(Vec::as_slice).eq(values.iter().copied()) {
                return current.plan.clone();
            }
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if !current.seen.iter().map(Vec::as_slice).eq(values.iter().copied()) {
            let lookup = |name: &str| match self.sds.iter().position(|n| n == name) {
                Some(i) => sds_value(values.get(i).copied().unwrap_or_default()),
                None => SdsValue::Refused,
            };
            let compiled = plan::from_plugin_bytes_with(&self.bytes, Sources { env: &env, sds: Some(&lookup) }, now());
            core::log_compiled(&compiled, &mut log);
            match compiled {
                Ok(Compiled::Inbound(p)) => current.plan = Plan::Inbound(Arc::new(p)),
                Ok(Compiled::Outbound(p)) => current.plan = Plan::Outbound(Arc::new(p)),
                // Only a non-SDS field can fail here (an inline secret that
                // expired since): the last plan stays, and the log says why.
                Err(_) => {}
            }
            log(Level::Info, "combo_webhook: SDS secrets changed; keys recompiled");
            current.seen = values.iter().map(|v| v.to_vec()).collect();
        }
        current.plan.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // A panic while holding the lock leaves a usable plan.
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

// Envoy runs streams of one config on every worker thread.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<FilterConfig>();
};
