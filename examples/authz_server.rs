//! The ext_authz design of `make bench`: a native HTTP authorization service
//! that runs the crate's same stream (header checks, HMAC, replay, JSON,
//! match, inputs) on the body Envoy's ext_authz filter sends it. Answers 200
//! with the x-combo-* headers to add upstream, or the filter's error status
//! and body. Thread per connection, HTTP/1.1 keep-alive.
//!
//!   cargo run --release --example authz_server -- 127.0.0.1:9191 plugin-config.json

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[path = "support/http1.rs"]
mod http1;

use combo_webhook_filter::contract::metrics::Counter;
use combo_webhook_filter::host::memory::MemoryStore;
use combo_webhook_filter::host::{Callout, CalloutResponse, Host, HostError, Level, Peer, SharedStore, StoreError};
use combo_webhook_filter::plan::{self, Compiled, InboundPlan};
use combo_webhook_filter::rules::replay;
use combo_webhook_filter::stream::inbound::{Inbound, Stream};

/// One authorization request as the host of a stream: the headers to add
/// upstream are collected, a local reply becomes the denial.
struct AuthzHost<'a> {
    store: &'a MemoryStore,
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
    fn send_reply(
        &mut self,
        status: u32,
        _details: &str,
        _headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        self.reply = Some((status, body.to_vec()));
        Ok(())
    }
    fn response_status(&mut self) -> Option<u32> {
        // ext_authz never sees the backend's answer: the design remembers at
        // authorization time.
        Some(200)
    }
    fn unix_now(&mut self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
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
    fn callout_response(&mut self, _body_size: usize) -> CalloutResponse {
        CalloutResponse::default()
    }
    fn resume_request(&mut self) -> Result<(), HostError> {
        Ok(())
    }
}

fn serve(stream: TcpStream, plan: &Arc<InboundPlan>, store: &MemoryStore) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    while let Some(head) = http1::read_head(&mut r)? {
        let body = http1::read_body(&mut r, &head)?;
        let mut headers =
            vec![(":method".to_string(), head.method.into_bytes()), (":path".to_string(), head.path.into_bytes())];
        headers.extend(head.headers.into_iter().map(|(k, v)| (k, v.into_bytes())));
        let len = body.len();
        let host = AuthzHost { store, headers, body, added: Vec::new(), reply: None };
        let mut s = Stream::new(host, Inbound::new(Arc::clone(plan)));
        s.on_request_headers(false);
        s.on_request_body(len, true);
        s.on_response_headers();
        s.on_done();
        let host = s.into_host();
        let (status, body) = host.reply.unwrap_or((200, Vec::new()));
        let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in &host.added {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        w.write_all(&bytes)?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(config)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: authz_server ADDR PLUGIN_CONFIG.json");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let plan = match plan::from_json(&text, &|k| std::env::var(k).ok(), now) {
        Ok(Compiled::Inbound(p)) => Arc::new(p),
        _ => {
            eprintln!("authz_server: {config} is not a valid inbound configuration");
            std::process::exit(1);
        }
    };
    let store = Arc::new(MemoryStore::default());
    replay::create_buckets(store.as_ref());
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("authz_server: bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("authz_server listening on {addr}");
    for stream in listener.incoming().flatten() {
        let (plan, store) = (Arc::clone(&plan), Arc::clone(&store));
        std::thread::spawn(move || {
            let _ = serve(stream, &plan, &store);
        });
    }
}
