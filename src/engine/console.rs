//! Printing that never panics. `println!` and `eprintln!` panic when the write fails, and it
//! fails whenever the reader went away: `warez-pipe status | head -1`, a CI log collector that
//! stopped, a closed terminal. (Rust ignores SIGPIPE, so a closed pipe is a write error, not a
//! signal.) A panic in a stage's worker thread would stop the run half-way, so every command
//! prints through these macros instead:
//!
//! - [`errln!`](crate::errln) / [`err!`](crate::err) — diagnostics and progress on stderr; a
//!   failed write is dropped: losing the log never stops a run or changes its exit status.
//! - [`outln!`](crate::outln) / [`out!`](crate::out) — results on stdout; the output is what
//!   was asked for, so a failed write ends the process: quietly with status 141 (128 + SIGPIPE,
//!   what a shell reports for a program a closed pipe stopped) when the reader closed the pipe,
//!   else with an error naming stdout and status 1 (a full disk must not look like success).
//!   Commands print their results last, after the work is recorded.

use std::fmt;
use std::io::{self, Write};

/// The exit status of a command whose stdout reader went away: 128 + SIGPIPE.
pub const CLOSED_STDOUT_STATUS: i32 = 141;

/// Writes to stderr, dropping a failed write.
pub fn write_stderr(text: fmt::Arguments) {
    let _ = io::stderr().lock().write_fmt(text);
}

/// Writes to stdout; a failed write ends the process (see the module doc).
pub fn write_stdout(text: fmt::Arguments) {
    let mut stdout = io::stdout().lock();
    let written = stdout.write_fmt(text).and_then(|()| stdout.flush());
    if let Err(error) = written {
        if error.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(CLOSED_STDOUT_STATUS);
        }
        write_stderr(format_args!("error: writing to stdout: {error}\n"));
        std::process::exit(1);
    }
}

/// `eprintln!` that never panics (see [`crate::engine::console`]).
#[macro_export]
macro_rules! errln {
    () => { $crate::engine::console::write_stderr(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::engine::console::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics (see [`crate::engine::console`]).
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::engine::console::write_stderr(format_args!($($arg)*)) };
}

/// `println!` that never panics (see [`crate::engine::console`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::engine::console::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::engine::console::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics (see [`crate::engine::console`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::engine::console::write_stdout(format_args!($($arg)*)) };
}
