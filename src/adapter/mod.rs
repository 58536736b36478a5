//! The proxy-wasm adapter: the root and HTTP contexts, and every host call.
//! Compiled for wasm32 only; everything it calls is pure logic.
//!
//! Host calls go through `proxy_wasm::hostcalls`, which return `Result`: the
//! SDK's trait helpers unwrap the host status, and a panic would trap the VM
//! and turn this worker into a 503 machine.

mod host;
mod inbound;
mod outbound;

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use crate::plan::{self, Compiled};
use crate::replay;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plan: None, metrics: None }) });
}}

struct Root {
    plan: Option<Rc<Compiled>>,
    metrics: Option<Rc<host::Metrics>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let started = std::time::Instant::now();
        follow_host_log_level();
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(b) => b.unwrap_or_default(),
            Err(status) => {
                log::error!("combo_webhook: cannot read plugin configuration: {status:?}");
                return false;
            }
        };
        match plan::from_plugin_bytes(&bytes, &|name| std::env::var(name).ok()) {
            Ok(compiled) => {
                for w in compiled.warnings() {
                    log::warn!("combo_webhook: {w}");
                }
                match &compiled {
                    Compiled::Inbound(p) => {
                        if p.replay.enabled {
                            replay::create_buckets(&host::HostStore);
                        }
                        log::info!(
                            "combo_webhook: inbound, {} trigger(s), configured in {} us",
                            p.triggers.len(),
                            started.elapsed().as_micros()
                        );
                    }
                    Compiled::Outbound(p) => {
                        log::info!(
                            "combo_webhook: outbound, {} subscription(s), configured in {} us",
                            p.subscriptions.len(),
                            started.elapsed().as_micros()
                        );
                    }
                }
                if self.metrics.is_none() {
                    self.metrics = Some(Rc::new(host::Metrics::define()));
                }
                self.plan = Some(Rc::new(compiled));
                true
            }
            Err(errors) => {
                for e in errors {
                    log::error!("combo_webhook: invalid configuration: {e}");
                }
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plan = Rc::clone(self.plan.as_ref()?);
        let metrics = Rc::clone(self.metrics.as_ref()?);
        Some(match &*plan {
            Compiled::Inbound(_) => Box::new(inbound::InboundFilter::new(plan, metrics)),
            Compiled::Outbound(_) => Box::new(outbound::OutboundFilter::new(plan, metrics)),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Debug lines are formatted only when Envoy would print them.
fn follow_host_log_level() {
    if let Ok(level) = hostcalls::get_log_level() {
        log::set_max_level(match level {
            LogLevel::Trace => log::LevelFilter::Trace,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Error | LogLevel::Critical => log::LevelFilter::Error,
        });
    }
}
