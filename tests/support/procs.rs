//! The machine's processes as `/proc` lists them, for the tests that check what devenv leaves
//! running after a signal or a kill. A process that exits while it is read is skipped.

/// One process: its pid, its argv and its environment (`KEY=value` each).
pub struct Proc {
    pub pid: u32,
    pub argv: Vec<String>,
    environ: Vec<Vec<u8>>,
}

impl Proc {
    /// Whether `KEY=value` is in its environment exactly.
    pub fn has_env(&self, key_value: &str) -> bool {
        self.environ.iter().any(|kv| kv == key_value.as_bytes())
    }

    /// Its command line, words joined by spaces, for a message.
    pub fn command(&self) -> String {
        self.argv.join(" ")
    }
}

/// Every process this test may read.
pub fn all() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            Some(Proc {
                pid,
                argv: cmdline
                    .split(|b| *b == 0)
                    .filter(|w| !w.is_empty())
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect(),
                environ: environ.split(|b| *b == 0).map(<[u8]>::to_vec).collect(),
            })
        })
        .collect()
}
