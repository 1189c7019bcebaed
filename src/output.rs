//! stdout and stderr that never panic. `println!` panics when stdout is a closed pipe
//! (`devenv status --json | head -1`) or a full disk (`devenv up > /dev/full`), which would stop
//! a command in the middle of a change. Through these macros a failed write loses only that
//! output, never the work: the command goes on and ends with its own exit code, saying nothing
//! about the lost output (as `cat` says nothing when its reader goes away).

use std::io::Write;

/// `println!` that cannot panic.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that cannot panic.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::out(format_args!($($arg)*))
    };
}

/// `eprintln!` that cannot panic.
#[macro_export]
macro_rules! errln {
    () => {
        $crate::output::err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that cannot panic.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::err(format_args!($($arg)*))
    };
}

/// Write to stdout; a closed pipe or a full disk loses the text.
pub fn out(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(args);
}

/// Write to stdout; false when it failed (a closed pipe): for commands that print until
/// stopped (`logs -f`), whose reader going away is the end.
pub fn out_ok(args: std::fmt::Arguments<'_>) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(args).and_then(|()| stdout.flush()).is_ok()
}

/// Write to stderr; a closed pipe or a full disk loses the text.
pub fn err(args: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(args);
}
