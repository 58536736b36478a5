//! Test support (`cfg(test)` or `--features testing`; never in a shipped
//! artifact): a host held in memory, with the request, the store and
//! everything the stream did to them, for unit tests, fuzzing and the
//! bench's pipeline probe; and a store wrapper that injects write conflicts.
//! It behaves like Envoy where the stream can tell.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::local_store::LocalStore;
use super::{Callout, Host, HostError, Level, LocalReply, Peer, SharedStore, StoreError};
use crate::contract::metrics::Counter;

/// The production store (`LocalStore`) wrapped with a fault knob: the next
/// writes can fail as if another worker had written first (CAS retries
/// under test).
#[derive(Debug, Clone, Default)]
pub struct FaultyStore {
    inner: LocalStore,
    conflicts: Arc<AtomicU32>,
}

impl FaultyStore {
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The next `n` writes fail with a CAS mismatch (a racing worker).
    pub fn fail_next_writes(&self, n: u32) {
        self.conflicts.store(n, Ordering::SeqCst);
    }
}

impl SharedStore for FaultyStore {
    fn store_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        self.inner.store_get(key)
    }

    fn store_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let injected = self.conflicts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if injected {
            // The racing writer's write: the value's token moves on.
            if let Some(entry) = self.inner.entries().get_mut(key) {
                entry.1 += 1;
            }
            return Err(StoreError::CasMismatch);
        }
        self.inner.store_set(key, value, cas)
    }
}

/// The reply a stream sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub details: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default)]
pub struct MemoryHost {
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body the client sends; `body_len` of it is buffered so far.
    pub body: Vec<u8>,
    pub now: i64,
    pub source: Option<String>,
    pub peer: Option<Peer>,
    pub response_status: Option<u32>,
    /// Envoy's response code details; `via_upstream` unless a test says otherwise.
    pub response_details: Option<String>,
    /// Upstream requests started; 1 unless a test says otherwise.
    pub upstream_attempts: Option<u64>,
    pub store: FaultyStore,
    // What the stream did.
    pub reply: Option<Reply>,
    pub counters: Vec<Counter>,
    pub filter_us: Vec<u64>,
    pub filter_state: Vec<(String, Vec<u8>)>,
    pub logs: Vec<(Level, String)>,
    pub clock_reads: u32,
    /// Make every header or body write fail, like a host that refuses.
    pub refuse_writes: bool,
    /// Callouts sent, in order (the token is the index).
    pub callouts: Vec<Callout>,
    pub resumed: u32,
    pub resumed_response: u32,
}

impl MemoryHost {
    pub fn new(headers: &[(&str, &str)], body: &[u8], now: i64) -> Self {
        MemoryHost {
            headers: headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())).collect(),
            body: body.to_vec(),
            now,
            source: Some("127.0.0.1:50000".to_string()),
            response_details: Some(super::VIA_UPSTREAM.to_string()),
            upstream_attempts: Some(1),
            ..MemoryHost::default()
        }
    }

    /// The first value of a request header as the upstream would see it.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn count_of(&self, counter: Counter) -> usize {
        self.counters.iter().filter(|c| **c == counter).count()
    }

    fn write(&self) -> Result<(), HostError> {
        if self.refuse_writes {
            Err(HostError)
        } else {
            Ok(())
        }
    }
}

impl SharedStore for MemoryHost {
    fn store_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        self.store.store_get(key)
    }

    fn store_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.store.store_set(key, value, cas)
    }
}

impl Host for MemoryHost {
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        Ok(self.headers.clone())
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.write()?;
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_string(), value.as_bytes().to_vec()));
        Ok(())
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.write()?;
        self.headers.retain(|(k, _)| k != name);
        Ok(())
    }

    fn request_body(&mut self, len: usize) -> Result<Vec<u8>, HostError> {
        self.body.get(..len).map(<[u8]>::to_vec).ok_or(HostError)
    }

    fn replace_request_body(&mut self, old_len: usize, body: &[u8]) -> Result<(), HostError> {
        self.write()?;
        if old_len > self.body.len() {
            return Err(HostError);
        }
        self.body.splice(..old_len, body.iter().copied());
        Ok(())
    }

    fn send_reply(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        self.reply = Some(Reply {
            status: reply.status,
            details: reply.details.clone(),
            headers: reply.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: reply.body.to_vec(),
        });
        Ok(())
    }

    fn response_status(&mut self) -> Option<u32> {
        self.response_status
    }

    fn response_code_details(&mut self) -> Option<String> {
        self.response_details.clone()
    }

    fn upstream_attempts(&mut self) -> Option<u64> {
        self.upstream_attempts
    }

    fn clock_nanos(&mut self) -> u64 {
        // Each read a microsecond after the last: time moves, the second does not.
        self.clock_reads += 1;
        (self.now.max(0) as u64) * 1_000_000_000 + u64::from(self.clock_reads) * 1_000
    }

    fn source_address(&mut self) -> Option<String> {
        self.source.clone()
    }

    fn peer_certificate(&mut self) -> Option<Peer> {
        self.peer.clone()
    }

    fn count(&mut self, counter: Counter) {
        self.counters.push(counter);
    }

    fn observe_filter_us(&mut self, us: u64) {
        self.filter_us.push(us);
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.filter_state.push((key.to_string(), value.to_vec()));
        Ok(())
    }

    fn log_enabled(&self, _level: Level) -> bool {
        true
    }

    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }

    fn http_call(&mut self, call: &Callout) -> Result<u32, HostError> {
        self.callouts.push(call.clone());
        Ok(self.callouts.len() as u32 - 1)
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        self.resumed += 1;
        Ok(())
    }

    fn resume_response(&mut self) -> Result<(), HostError> {
        self.resumed_response += 1;
        Ok(())
    }
}
