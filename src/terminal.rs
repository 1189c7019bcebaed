//! The user's terminal, for a shell in a pod: what stdin is, raw mode (every key, Ctrl-C
//! included, goes to the remote program instead of becoming a signal here) restored however
//! devenv ends, and the window size.

use std::os::fd::RawFd;

const STDIN: RawFd = 0;
const STDOUT: RawFd = 1;

/// What devenv's stdin is, which decides what a remote command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A terminal: a remote terminal too, in raw mode.
    Terminal,
    /// A pipe or a file: its bytes, then end of file.
    Data,
    /// `/dev/null`, a closed descriptor, anything else: no stdin at all (as kubectl without
    /// `-i`), so the remote program never waits for input nobody can give.
    Nothing,
}

/// Classify fd 0.
pub fn stdin() -> Input {
    // SAFETY: isatty and fstat only read the descriptor's state into `st`.
    unsafe {
        if libc::isatty(STDIN) == 1 {
            return Input::Terminal;
        }
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(STDIN, &mut st) != 0 {
            return Input::Nothing;
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFIFO | libc::S_IFREG | libc::S_IFSOCK => Input::Data,
            _ => Input::Nothing,
        }
    }
}

/// The terminal's size as (columns, rows), read from stdout, else stdin.
pub fn size() -> Option<(u16, u16)> {
    [STDOUT, STDIN].into_iter().find_map(|fd| {
        // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0;
        (ok && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
    })
}

/// Raw mode on stdin while this lives; the settings before are put back on drop, so a failed
/// or interrupted session never leaves the user's terminal without echo.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// Switch stdin's terminal to raw mode; `None` when it is not a terminal.
    pub fn enable() -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr read and write one termios of fd 0.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(STDIN, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(STDIN, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: puts back the termios read in `enable`.
        unsafe {
            libc::tcsetattr(STDIN, libc::TCSANOW, &self.saved);
        }
    }
}
