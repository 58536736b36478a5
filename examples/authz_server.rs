//! The ext_authz design of `make bench`: a native HTTP authorization service
//! that runs the crate's same verification code (header checks, HMAC, replay,
//! JSON, match, inputs) on the body Envoy's ext_authz filter sends it.
//! Answers 200 with the x-combo-* headers to add upstream, or the filter's
//! error status and body. Thread per connection, HTTP/1.1 keep-alive.
//!
//!   cargo run --release --example authz_server -- 127.0.0.1:9191 plugin-config.json

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[path = "support/http1.rs"]
mod http1;

use combo_webhook_filter::error::Reject;
use combo_webhook_filter::headers::Headers;
use combo_webhook_filter::inbound::{self, Connection, Head, Peer, Verdict};
use combo_webhook_filter::plan::{self, Compiled, Plan};
use combo_webhook_filter::replay::{self, SharedStore};

/// The replay cache in process memory, same buckets and CAS as in Envoy.
#[derive(Default)]
struct MemoryStore(Mutex<HashMap<String, (Vec<u8>, u32)>>);

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).map_or((None, None), |(v, c)| (Some(v.clone()), Some(*c)))
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), bool> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let current = map.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return Err(true);
        }
        map.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
        Ok(())
    }
}

struct NoConnectionFacts;

impl Connection for NoConnectionFacts {
    fn source_ip(&self) -> Option<IpAddr> {
        None
    }
    fn peer(&self) -> Option<Peer> {
        None
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

struct Answer {
    status: u32,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reject(r: Reject) -> Answer {
    Answer { status: r.status(), headers: vec![("content-type".into(), "application/json".into())], body: r.body().into_bytes() }
}

fn decide(plan: &Plan, store: &MemoryStore, method: &str, path: &str, headers: &Headers, body: &[u8]) -> Answer {
    let now = now();
    let pending = match inbound::check_head(plan, method, path, headers, &NoConnectionFacts, now) {
        Head::PassThrough => return Answer { status: 200, headers: vec![], body: vec![] },
        Head::Reject(r) => return reject(r),
        Head::ReadBody(p) => p,
    };
    if inbound::body_over_limit(plan, body.len()) {
        return reject(Reject::PayloadTooLarge);
    }
    let secret = match inbound::verify_body(&pending, body, now) {
        Ok(s) => s,
        Err(r) => return reject(r),
    };
    let mut entry = None;
    if let Some((key, expires)) = inbound::replay_entry(plan, &pending, now) {
        let (hit, snapshot) = replay::seen(store, &key, now);
        if hit {
            return Answer { status: 200, headers: vec![], body: br#"{"status":"duplicate"}"#.to_vec() };
        }
        entry = Some((key, expires, snapshot));
    }
    match inbound::annotate(plan, &pending, secret, headers, body) {
        Verdict::Reject(r) => reject(r),
        Verdict::Ignored => Answer { status: 202, headers: vec![], body: br#"{"status":"ignored"}"#.to_vec() },
        Verdict::Forward(a) => {
            // The design remembers at authorization time: ext_authz never
            // sees the backend's answer.
            if let Some((key, expires, snapshot)) = entry {
                replay::remember(store, &key, expires, now, replay::per_bucket(plan.replay.max_entries), Some(snapshot));
            }
            Answer { status: 200, headers: a.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), body: vec![] }
        }
    }
}

fn serve(stream: TcpStream, plan: &Plan, store: &MemoryStore) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    while let Some(head) = http1::read_head(&mut r)? {
        let body = http1::read_body(&mut r, &head)?;
        let (method, path) = (head.method, head.path);
        let mut pairs = vec![(":method".to_string(), method.clone()), (":path".to_string(), path.clone())];
        pairs.extend(head.headers);
        let a = decide(plan, store, &method, &path, &Headers::new(pairs), &body);
        let mut out = format!("HTTP/1.1 {} X\r\ncontent-length: {}\r\n", a.status, a.body.len());
        for (k, v) in &a.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&a.body);
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
    let plan = match plan::from_json(&text, &|k| std::env::var(k).ok()) {
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
