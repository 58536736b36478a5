//! Bench builds only (`--features bench-stages`): every host call the filter
//! makes, by kind, with the bytes it moves across the VM boundary. `make
//! bench` reads the totals from the `bench_hostcalls` log line.

use std::cell::RefCell;

/// (kind, calls, bytes) of each kind, and the number of streams they belong to.
type Totals = (Vec<(&'static str, u64, u64)>, u64);

thread_local! {
    static CALLS: RefCell<Totals> = const { RefCell::new((Vec::new(), 0)) };
}

pub fn add(kind: &'static str, bytes: usize) {
    CALLS.with(|c| {
        let calls = &mut c.borrow_mut().0;
        match calls.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += bytes as u64;
            }
            None => calls.push((kind, 1, bytes as u64)),
        }
    });
}

/// Counts one finished stream; every `every`th, the totals as JSON.
pub fn stream_done(every: u64) -> Option<String> {
    CALLS.with(|c| {
        let mut c = c.borrow_mut();
        c.1 += 1;
        (c.1 % every == 0).then(|| {
            let kinds: serde_json::Map<String, serde_json::Value> =
                c.0.iter().map(|(k, n, b)| (k.to_string(), serde_json::json!([n, b]))).collect();
            serde_json::json!({"streams": c.1, "calls": kinds}).to_string()
        })
    })
}
