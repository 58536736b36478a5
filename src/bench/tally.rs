//! Bench builds only (`--features bench-stages`): every call the filter makes
//! into its host, by kind, with the bytes it moves, and (native module only)
//! the nanoseconds it took, timed on the live stream under load. The native
//! module's hooks are tallied too (`hook_*`: Envoy's calls into the module,
//! the module's calls into Envoy included), so the module's own code is the
//! hooks' time less the calls'. `make bench` reads the totals from the
//! `bench_hostcalls` log line.

use std::cell::RefCell;

/// (kind, calls, bytes, ns) of each kind, and the number of streams they belong to.
type Totals = (Vec<(&'static str, u64, u64, u64)>, u64);

thread_local! {
    static CALLS: RefCell<Totals> = const { RefCell::new((Vec::new(), 0)) };
}

pub fn add(kind: &'static str, bytes: usize) {
    add_timed(kind, bytes, 0);
}

/// Never panics: it runs inside the native module's hooks, outside their
/// guard (a call it cannot record is dropped).
fn add_timed(kind: &'static str, bytes: usize, ns: u64) {
    let _ = CALLS.try_with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else { return };
        let calls = &mut c.0;
        // By address first: each kind is one literal, and this runs inside
        // the hooks it times.
        let at = calls
            .iter()
            .position(|(k, ..)| std::ptr::eq(*k, kind))
            .or_else(|| calls.iter().position(|(k, ..)| *k == kind));
        match at.and_then(|i| calls.get_mut(i)) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += bytes as u64;
                entry.3 += ns;
            }
            None => calls.push((kind, 1, bytes as u64, ns)),
        }
    });
}

/// Runs one call and tallies it with its time.
#[cfg(not(target_arch = "wasm32"))]
pub fn timed<T>(kind: &'static str, bytes: usize, call: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = call();
    add_timed(kind, bytes, started.elapsed().as_nanos() as u64);
    out
}

/// What timing an empty call costs (two clock reads and the tally), in ns:
/// the model subtracts it once per timed call.
#[cfg(not(target_arch = "wasm32"))]
fn timer_ns() -> u64 {
    static NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| {
        const N: u32 = 10_000;
        const KIND: &str = "timer_calibration";
        let started = std::time::Instant::now();
        for _ in 0..N {
            timed(KIND, 0, || ());
        }
        let ns = (started.elapsed().as_nanos() / u128::from(N)) as u64;
        let _ = CALLS.try_with(|c| c.try_borrow_mut().map(|mut c| c.0.retain(|(k, ..)| *k != KIND)));
        ns
    })
}

#[cfg(target_arch = "wasm32")]
fn timer_ns() -> u64 {
    0
}

/// Counts one finished stream; every `every`th, the totals as JSON:
/// `{"streams": n, "timer_ns": t, "calls": {kind: [calls, bytes, ns]}}`.
pub fn stream_done(every: u64) -> Option<String> {
    let timer_ns = timer_ns();
    CALLS
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            c.1 += 1;
            (c.1 % every == 0).then(|| {
                let kinds: serde_json::Map<String, serde_json::Value> =
                    c.0.iter().map(|(k, n, b, ns)| (k.to_string(), serde_json::json!([n, b, ns]))).collect();
                serde_json::json!({"streams": c.1, "timer_ns": timer_ns, "calls": kinds}).to_string()
            })
        })
        .ok()
        .flatten()
}
