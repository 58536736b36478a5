//! The Envoy dynamic-module adapter (`--features envoy-module`, built as
//! `libcombo_webhook_filter.so`): Envoy's C hooks forwarded to the same
//! `Stream` state machines the .wasm runs, over `NativeHost`. No domain rule
//! lives here.
//!
//! A panic must never unwind into Envoy (undefined behaviour): every hook
//! runs under `catch_unwind` (the native profile builds with
//! `panic = "unwind"`), and a stream that panicked fails closed as its hook's
//! phase allows (`Phase`: 500 once, a reset, or a log line) and is left
//! alone after that.

/// A call into Envoy while a stream runs, or one of the module's hooks,
/// named by its callback. A bench build (`bench-stages`) times it for `make
/// bench`'s native cost model; every other build compiles to the call alone.
macro_rules! timed {
    ($kind:literal, $bytes:expr, $call:expr) => {{
        #[cfg(feature = "bench-stages")]
        let out = crate::bench::tally::timed($kind, $bytes, || $call);
        #[cfg(not(feature = "bench-stages"))]
        let out = $call;
        out
    }};
}

mod abi;
mod abi_config;
mod config;
#[cfg(any(test, feature = "fake-envoy"))]
pub mod drive;
#[cfg(any(test, feature = "fake-envoy"))]
pub mod fake_envoy;
mod ffi;
mod host;
#[cfg(test)]
mod tests;

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::adapter::core::seam;
use crate::contract::error::Reject;
use crate::host::{Action, Level};
use crate::stream::outbound::Outbound;
use crate::stream::Stream;
use ffi::{EnvoyBuffer, FilterEnvoy};
use host::NativeHost;

pub use ffi::{ABI_VERSION, EXPORTED, IMPORTED};

/// One HTTP stream: the mode's state machine over the native host.
// Boxed once per stream; the variants' sizes never move.
#[allow(clippy::large_enum_variant)]
enum Filter {
    Inbound(Stream<seam::Host<NativeHost>, seam::Inbound>),
    Outbound(Stream<seam::Host<NativeHost>, Outbound>),
    /// A hook panicked: the stream was answered (500) and is left alone.
    Poisoned,
}

/// One stream's filter as Envoy holds it. Envoy before 1.40 destroys a
/// filter inside the hook that made it send a local reply (its destroy is
/// not deferred until the hook returns; envoyproxy/envoy#46548): the slot
/// then outlives the destroy until that hook returns, and nothing calls into
/// Envoy for the stream after it.
pub(crate) struct Slot {
    filter: Filter,
    /// Hooks running on the filter (a destroy can only come from inside one).
    running: std::cell::Cell<u32>,
    destroyed: std::cell::Cell<bool>,
}

#[cfg(test)]
thread_local! {
    /// Tests: this thread's slots not yet freed (a destroy must not free a
    /// slot whose hook still runs).
    pub(crate) static LIVE_SLOTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
impl Drop for Slot {
    fn drop(&mut self) {
        LIVE_SLOTS.with(|n| n.set(n.get() - 1));
    }
}

impl Slot {
    fn into_raw(filter: Filter) -> *const c_void {
        #[cfg(test)]
        LIVE_SLOTS.with(|n| n.set(n.get() + 1));
        let slot = Slot { filter, running: std::cell::Cell::new(0), destroyed: std::cell::Cell::new(false) };
        Box::into_raw(Box::new(slot)).cast_const().cast()
    }

    /// Envoy's destroy: freed now, or when the hook running on it returns.
    ///
    /// # Safety
    /// `ptr` is a pointer `into_raw` returned, destroyed once.
    unsafe fn destroy(ptr: *const c_void) {
        let slot = ptr as *mut Slot;
        // Only the flags are touched: a running hook holds the filter.
        if (*slot).running.get() > 0 {
            (*slot).destroyed.set(true);
        } else {
            drop(Box::from_raw(slot));
        }
    }
}

macro_rules! each {
    ($filter:expr, $s:ident => $body:expr, $poisoned:expr) => {
        match $filter {
            Filter::Inbound($s) => $body,
            Filter::Outbound($s) => $body,
            Filter::Poisoned => $poisoned,
        }
    };
}

fn status(a: Action) -> u32 {
    match a {
        Action::Continue => ffi::CONTINUE,
        Action::Pause => ffi::STOP,
    }
}

/// Runs `f` and turns a panic into `fallback`.
fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        abi::log(Level::Error, "combo_webhook: a hook panicked; the stream fails closed");
        fallback
    })
}

/// Where a hook runs, which decides what a panic in it does (as the
/// Envoy SDK's `CatchUnwind`): the request can still be refused, a response
/// under way can only be cut, a finished stream has nobody left to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Request hooks and the callouts they wait for: answered 500.
    Request,
    /// Response hooks: the stream is reset.
    Response,
    /// The stream is over: logged only.
    Completion,
}

/// Runs a stream hook; a panic poisons the filter, then fails closed as its
/// `phase` allows: 500 once, a reset, or a log line only.
/// When the hook changed request headers, Envoy picks the route again.
///
/// # Safety
/// `filter` is a pointer `on_http_filter_new` returned, not yet destroyed.
unsafe fn stream_hook(
    envoy: FilterEnvoy,
    filter: *const c_void,
    phase: Phase,
    f: impl FnOnce(&mut Filter) -> u32,
) -> u32 {
    let slot = filter as *mut Slot;
    if slot.is_null() {
        // No filter (`on_http_filter_new` failed): Envoy 1.40 answers 500
        // itself, 1.38 and 1.39 call every hook with a null filter. The
        // request is refused, never passed (a reply Envoy already sent makes
        // a second one a no-op).
        if phase == Phase::Request {
            if let Some(r) = crate::stream::Outcome::<()>::Reject(Reject::HostError).reply() {
                guard((), || abi::send_response(envoy, r.status, &r.headers, &r.body, &r.details));
            }
            return ffi::STOP;
        }
        return ffi::CONTINUE;
    }
    (*slot).running.set((*slot).running.get() + 1);
    let status = run_hook(envoy, slot, phase, f);
    (*slot).running.set((*slot).running.get() - 1);
    if (*slot).destroyed.get() && (*slot).running.get() == 0 {
        drop(Box::from_raw(slot));
    }
    status
}

/// # Safety
/// `slot` is live for the call (`stream_hook` holds it).
unsafe fn run_hook(envoy: FilterEnvoy, slot: *mut Slot, phase: Phase, f: impl FnOnce(&mut Filter) -> u32) -> u32 {
    let filter = &mut (*slot).filter;
    let destroyed = || (*slot).destroyed.get();
    let run = |filter: &mut Filter| {
        let status = f(filter);
        if !destroyed() {
            each!(filter, s => s.host_mut().refresh_route(), ());
        }
        status
    };
    match catch_unwind(AssertUnwindSafe(|| run(filter))) {
        Ok(status) => status,
        Err(_) if destroyed() => {
            abi::log(Level::Error, "combo_webhook: a hook panicked; the stream is over");
            ffi::STOP
        }
        Err(_) => {
            let poisoned = matches!(filter, Filter::Poisoned);
            *filter = Filter::Poisoned;
            abi::log(Level::Error, "combo_webhook: a hook panicked; the stream fails closed");
            match phase {
                // Once: a stream poisoned before was answered already.
                Phase::Request if !poisoned => {
                    if let Some(r) = crate::stream::Outcome::<()>::Reject(Reject::HostError).reply() {
                        guard((), || abi::send_response(envoy, r.status, &r.headers, &r.body, &r.details));
                    }
                    ffi::STOP
                }
                Phase::Request => ffi::STOP,
                Phase::Response => {
                    guard((), || abi::reset_stream(envoy, "combo_webhook_panic"));
                    ffi::STOP
                }
                Phase::Completion => ffi::CONTINUE,
            }
        }
    }
}

/// # Safety
/// `b` comes from Envoy and is valid for the running hook.
unsafe fn bytes<'a>(b: EnvoyBuffer) -> &'a [u8] {
    if b.ptr.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(b.ptr, b.length)
}

// After `each!`: the exported hooks use it.
pub(crate) mod exports;
