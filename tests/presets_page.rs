//! The book's preset table (docs/src/schemes/presets-table.md) is what
//! `combo-webhook presets --markdown` prints from `presets.json`: a preset
//! added or changed without the page regenerated fails here.

#![allow(clippy::unwrap_used, clippy::panic)] // a test harness: failing loudly is its job
use std::path::Path;
use std::process::Command;

const PAGE: &str = "docs/src/schemes/presets-table.md";

#[test]
fn the_committed_preset_page_is_the_clis_output() {
    let out = Command::new(env!("CARGO_BIN_EXE_combo-webhook")).args(["presets", "--markdown"]).output().unwrap();
    assert!(out.status.success(), "combo-webhook presets --markdown: {}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE)).unwrap();
    if generated != committed {
        let same = generated.lines().zip(committed.lines()).take_while(|(g, c)| g == c).count();
        panic!(
            "{PAGE} differs from `combo-webhook presets --markdown` from line {}; regenerate it: \
             cargo run --bin combo-webhook -- presets --markdown > {PAGE}",
            same + 1
        );
    }
    // Every preset has its row.
    let rows = generated.lines().filter(|l| l.starts_with("| `")).count();
    assert!(rows >= 70, "{rows} rows");
}

#[test]
fn the_json_listing_holds_the_same_rows() {
    let run = |flag: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_combo-webhook")).args(["presets", flag]).output().unwrap();
        assert!(out.status.success(), "combo-webhook presets {flag}");
        String::from_utf8(out.stdout).unwrap()
    };
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run("--json")).unwrap();
    let page = run("--markdown");
    assert_eq!(rows.len(), page.lines().filter(|l| l.starts_with("| `") && !l.starts_with("| `source`")).count());
    let paypal = rows.iter().find(|r| r["source"] == "paypal").unwrap();
    assert_eq!(paypal["algorithm"], "rsa-sha256");
    assert_eq!(paypal["signed"], "{id}|{timestamp}|{param:webhook_id}|{body_crc32}", "markdown escapes are undone");
    assert!(rows.iter().all(|r| r["doc"].as_str().is_some_and(|d| !d.is_empty())), "every preset cites its docs");
}
