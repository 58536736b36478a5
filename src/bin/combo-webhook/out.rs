//! Standard output for every subcommand. `println!` panics when the reader
//! has gone (`combo-webhook presets | head -1`: "failed printing to stdout:
//! Broken pipe"); here a closed pipe ends the program quietly with status 0,
//! as ripgrep does, and any other write error is reported with status 2.

use std::io::Write;

/// `println!` that never panics: see the module comment.
macro_rules! outln {
    ($($arg:tt)*) => {
        crate::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

pub fn line(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(format_args!("{args}\n")) {
        failed(&e);
    }
}

pub fn bytes(data: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(data).and_then(|()| out.flush()) {
        failed(&e);
    }
}

fn failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    // Standard error may be gone too: never panic on it either.
    let _ = writeln!(std::io::stderr(), "combo-webhook: writing to standard output: {e}");
    std::process::exit(2);
}
