//! Replays the kept fuzz corpus (fuzz/corpus/<target>/) through the fuzz
//! entry points on stable: every input the fuzzers found interesting, and
//! every crash they found and we fixed, stays a regression test.

#![allow(clippy::unwrap_used, clippy::panic)] // a test harness: failing loudly is its job
use std::path::Path;

use combo_webhook_filter::fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        run(&data);
        n += 1;
    }
    assert!(n > 0, "{target}: the corpus is empty");
}

#[test]
fn config_corpus() {
    replay("config", fuzzing::config);
}

#[test]
fn signature_headers_corpus() {
    replay("signature_headers", fuzzing::signature_headers);
}

#[test]
fn body_fields_corpus() {
    replay("body_fields", fuzzing::body_fields);
}

#[test]
fn multipart_corpus() {
    replay("multipart", fuzzing::multipart);
}

#[test]
fn path_corpus() {
    replay("path", fuzzing::path);
}

#[test]
fn template_corpus() {
    replay("template", fuzzing::template);
}

#[test]
fn inbound_corpus() {
    replay("inbound", fuzzing::inbound);
}

/// The native module's hooks (`cargo test --features fake-envoy`).
#[cfg(feature = "fake-envoy")]
#[test]
fn native_hooks_corpus() {
    replay("native_hooks", fuzzing::native_hooks);
}
