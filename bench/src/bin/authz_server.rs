//! The ext_authz design of `make bench`, as ext_authz is deployed: a gRPC
//! `envoy.service.auth.v3.Authorization` service (tonic + envoy-types) that
//! runs the crate's same stream (header checks, HMAC, replay, JSON, match,
//! inputs) on the raw body Envoy's ext_authz filter sends it. OK carries the
//! x-combo-* headers to add upstream; a denial carries the filter's status
//! and error body.
//!
//!   cargo run --release --example authz_server -- 127.0.0.1:9191 plugin-config.json [THREADS]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use combo_webhook_filter::contract::metrics::Counter;
use combo_webhook_filter::host::local_store::LocalStore;
use combo_webhook_filter::host::{Callout, Host, HostError, Level, LocalReply, Peer, SharedStore, StoreError};
use combo_webhook_filter::plan::{self, Compiled, InboundPlan};
use combo_webhook_filter::rules::replay;
use combo_webhook_filter::stream::inbound::{Inbound, Stream};
use envoy_types::ext_authz::v3::pb::{Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpStatusCode};
use envoy_types::ext_authz::v3::{CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder};

/// One authorization request as the host of a stream: the headers to add
/// upstream are collected, a local reply becomes the denial.
struct AuthzHost<'a> {
    store: &'a LocalStore,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    added: Vec<(String, String)>,
    reply: Option<(u32, Vec<u8>)>,
}

impl SharedStore for AuthzHost<'_> {
    fn store_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        self.store.store_get(key)
    }
    fn store_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.store.store_set(key, value, cas)
    }
}

impl Host for AuthzHost<'_> {
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        Ok(self.headers.clone())
    }
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.added.push((name.to_string(), value.to_string()));
        Ok(())
    }
    fn remove_request_header(&mut self, _name: &str) -> Result<(), HostError> {
        Ok(())
    }
    fn request_body(&mut self, len: usize) -> Result<Vec<u8>, HostError> {
        self.body.get(..len).map(<[u8]>::to_vec).ok_or(HostError)
    }
    fn replace_request_body(&mut self, _old_len: usize, _body: &[u8]) -> Result<(), HostError> {
        Err(HostError)
    }
    fn send_reply(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        self.reply = Some((reply.status, reply.body.to_vec()));
        Ok(())
    }
    fn response_status(&mut self) -> Option<u32> {
        // ext_authz never sees the backend's answer: the design remembers at
        // authorization time.
        Some(200)
    }

    fn response_code_details(&mut self) -> Option<String> {
        Some(combo_webhook_filter::host::VIA_UPSTREAM.to_string())
    }

    fn upstream_attempts(&mut self) -> Option<u64> {
        Some(1)
    }
    fn clock_nanos(&mut self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }
    fn source_address(&mut self) -> Option<String> {
        None
    }
    fn peer_certificate(&mut self) -> Option<Peer> {
        None
    }
    fn count(&mut self, _counter: Counter) {}
    fn observe_filter_us(&mut self, _us: u64) {}
    fn set_filter_state(&mut self, _key: &str, _value: &[u8]) -> Result<(), HostError> {
        Ok(())
    }
    fn log_enabled(&self, _level: Level) -> bool {
        false
    }
    fn log(&mut self, _level: Level, _message: &str) {}
    // The baseline keeps its replay cache in process (the local store).
    fn http_call(&mut self, _call: &Callout) -> Result<u32, HostError> {
        Err(HostError)
    }
    fn resume_request(&mut self) -> Result<(), HostError> {
        Ok(())
    }

    fn resume_response(&mut self) -> Result<(), HostError> {
        Ok(())
    }
}

/// The service: one plan, one in-process replay store, as the filter's
/// local store is one per Envoy.
struct Authz {
    plan: Arc<InboundPlan>,
    store: Arc<LocalStore>,
}

impl Authz {
    fn check(&self, req: CheckRequest) -> CheckResponse {
        let http = req.attributes.and_then(|a| a.request).and_then(|r| r.http).unwrap_or_default();
        let mut headers =
            vec![(":method".to_string(), http.method.into_bytes()), (":path".to_string(), http.path.into_bytes())];
        headers.extend(http.headers.into_iter().filter(|(k, _)| !k.starts_with(':')).map(|(k, v)| (k, v.into_bytes())));
        let body = http.raw_body;
        let len = body.len();
        let host = AuthzHost { store: &self.store, headers, body, added: Vec::new(), reply: None };
        let mut s = Stream::new(host, Inbound::new(Arc::clone(&self.plan)));
        s.on_request_headers(false);
        s.on_request_body(len, true);
        s.on_response_headers();
        s.on_done();
        let host = s.into_host();
        let mut resp = CheckResponse::new();
        match host.reply {
            None => {
                let mut ok = OkHttpResponseBuilder::new();
                for (k, v) in host.added {
                    ok.add_header(k, v, None, false);
                }
                resp.set_status(tonic::Status::ok("")).set_http_response(ok);
            }
            Some((status, body)) => {
                let mut denied = DeniedHttpResponseBuilder::new();
                let code = HttpStatusCode::try_from(status as i32).unwrap_or(HttpStatusCode::Forbidden);
                denied
                    .set_http_status(code)
                    .add_header("content-type", "application/json", None, false)
                    .set_body(String::from_utf8_lossy(&body).into_owned());
                resp.set_status(tonic::Status::permission_denied("refused")).set_http_response(denied);
            }
        }
        resp
    }
}

#[tonic::async_trait]
impl Authorization for Authz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(Authz::check(self, request.into_inner())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(config)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: authz_server ADDR PLUGIN_CONFIG.json [THREADS]");
        std::process::exit(2);
    };
    let threads: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let plan = match plan::from_json(&text, &|k| std::env::var(k).ok(), now) {
        Ok(Compiled::Inbound(p)) => Arc::new(p),
        _ => {
            eprintln!("authz_server: {config} is not a valid inbound configuration");
            std::process::exit(1);
        }
    };
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        eprintln!("authz_server: {addr} is not an address");
        std::process::exit(2);
    };
    if !addr.ip().is_loopback() {
        eprintln!("authz_server: loopback addresses only");
        std::process::exit(2);
    }
    let store = Arc::new(LocalStore::default());
    replay::create_buckets(store.as_ref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("authz_server: {e}");
            std::process::exit(1);
        }
    };
    println!("authz_server listening on {addr}");
    let served = runtime.block_on(
        tonic::transport::Server::builder().add_service(AuthorizationServer::new(Authz { plan, store })).serve(addr),
    );
    if let Err(e) = served {
        eprintln!("authz_server: {e}");
        std::process::exit(1);
    }
}
