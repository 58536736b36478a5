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
