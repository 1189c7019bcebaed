//! The hosts file's managed block: the Ingress hosts of the chart (`shop.local`) mapped to the
//! VM's address, so a browser on the laptop reaches them by name.
//!
//! Written with the exports file's care: the block is the only thing devenv ever changes,
//! between its own markers (`# BEGIN devenv <project> uid=<uid>` … `# END …`, one per project
//! and user); every other byte of the file is kept exactly, line ends included; a file whose
//! markers do not pair is refused, not guessed at; the old file is copied to a backup first,
//! and the new one replaces it atomically (a temp file renamed over it), keeping its mode,
//! owner and extended attributes. When devenv cannot write the file itself (it is root's), the
//! same steps run through sudo's fixed command lines, never a shell string.
//!
//! What goes in is checked: the address must be a private IPv4 address (the VM's), and every
//! name a DNS name; `devenv down --purge` removes the block.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::process::{Cmd, Runner};

/// The hosts file of Linux and macOS.
pub const HOSTS_FILE: &str = "/etc/hosts";

/// Why the hosts file was not changed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("{path}: line {line}: {what} of devenv's block for {project} has no {missing}")]
    Unpaired {
        path: PathBuf,
        line: usize,
        what: &'static str,
        missing: &'static str,
        project: String,
    },
    #[error("{name:?} is not a host name devenv writes to the hosts file: {why}")]
    Name { name: String, why: String },
    #[error("{address} is not a private IPv4 address: devenv maps names only to the VM")]
    Address { address: Ipv4Addr },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} was not changed: {why}")]
    Sudo { path: PathBuf, why: String },
}

impl HostsError {
    pub fn help(&self) -> Option<String> {
        match self {
            HostsError::Unpaired { path, project, .. } => Some(format!(
                "fix or delete the lines of `# BEGIN devenv {project}` and `# END devenv {project}` in {} by hand; devenv changes nothing it cannot read whole",
                path.display()
            )),
            HostsError::Name { .. } => Some(
                "Ingress hosts must be DNS names (letters, digits, '-' and '.'); fix the chart's Ingress"
                    .into(),
            ),
            HostsError::Address { .. } => {
                Some("`devenv status` shows the VM's address; is the VM running?".into())
            }
            HostsError::Io { .. } | HostsError::Sudo { .. } => Some(
                "nothing was changed; the lines `devenv urls` prints can be added by hand".into(),
            ),
        }
    }
}

fn begin(project: &str, uid: u32) -> String {
    format!("# BEGIN devenv {project} uid={uid}")
}

fn end(project: &str, uid: u32) -> String {
    format!("# END devenv {project} uid={uid}")
}

/// A DNS name as RFC 1123 allows it in a hosts file: labels of letters, digits and '-', not
/// at their ends, at most 63 bytes each and 253 in all.
fn check_name(name: &str) -> Result<(), HostsError> {
    let bad = |why: &str| HostsError::Name {
        name: name.to_string(),
        why: why.to_string(),
    };
    if name.is_empty() || name.len() > 253 {
        return Err(bad("it must have 1 to 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("every label between dots has 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(bad(
                "labels hold letters, digits and '-' (not at their ends), nothing else",
            ));
        }
    }
    Ok(())
}

/// The block's lines: `address name…`, names sorted and each once.
pub fn block_lines(address: Ipv4Addr, names: &[String]) -> Result<Vec<String>, HostsError> {
    if !address.is_private() {
        return Err(HostsError::Address { address });
    }
    let mut names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    for n in &names {
        check_name(n)?;
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![format!("{address} {}", names.join(" "))])
}

/// A block found: the byte range from the start of its BEGIN line to the end of its END line
/// (line end included), and its lines between.
type Found = (std::ops::Range<usize>, Vec<String>);

/// Where the block of `project`/`uid` is in `text`, if anywhere.
fn find(text: &str, path: &Path, project: &str, uid: u32) -> Result<Option<Found>, HostsError> {
    let (b, e) = (begin(project, uid), end(project, uid));
    let mut start: Option<(usize, usize)> = None;
    let mut inner = Vec::new();
    let mut found = None;
    let mut offset = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        let unpaired = |what, missing| HostsError::Unpaired {
            path: path.to_path_buf(),
            line: i + 1,
            what,
            missing,
            project: project.to_string(),
        };
        if line == b {
            if start.is_some() || found.is_some() {
                return Err(unpaired("a second BEGIN", "END before it"));
            }
            start = Some((offset, i));
        } else if line == e {
            let Some((s, _)) = start.take() else {
                return Err(unpaired("the END", "BEGIN"));
            };
            found = Some((s..offset + raw.len(), std::mem::take(&mut inner)));
        } else if start.is_some() {
            inner.push(line.to_string());
        }
        offset += raw.len();
    }
    if let Some((_, line)) = start {
        return Err(HostsError::Unpaired {
            path: path.to_path_buf(),
            line: line + 1,
            what: "the BEGIN",
            missing: "END",
            project: project.to_string(),
        });
    }
    Ok(found)
}

/// The lines of the block of `project`/`uid` in `text`, when there is one.
pub fn current(
    text: &str,
    path: &Path,
    project: &str,
    uid: u32,
) -> Result<Option<Vec<String>>, HostsError> {
    Ok(find(text, path, project, uid)?.map(|(_, lines)| lines))
}

/// `text` with the block of `project`/`uid` holding `lines` (removed when `None` or empty);
/// every byte outside the block is kept, and a new block is appended at the end, after a line
/// break if the file lacks its last one. The block uses the file's line end (CRLF or LF).
pub fn edit(
    text: &str,
    path: &Path,
    project: &str,
    uid: u32,
    lines: Option<&[String]>,
) -> Result<String, HostsError> {
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let block = match lines.filter(|l| !l.is_empty()) {
        Some(lines) => {
            let mut b = begin(project, uid);
            b.push_str(nl);
            for l in lines {
                b.push_str(l);
                b.push_str(nl);
            }
            b.push_str(&end(project, uid));
            b.push_str(nl);
            b
        }
        None => String::new(),
    };
    Ok(match find(text, path, project, uid)? {
        Some((range, _)) => format!("{}{block}{}", &text[..range.start], &text[range.end..]),
        None if block.is_empty() => text.to_string(),
        None if text.is_empty() || text.ends_with('\n') => format!("{text}{block}"),
        None => format!("{text}{nl}{block}"),
    })
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Written,
}

/// Set the block of `project`/`uid` in the hosts file at `path` to `lines` (`None`: remove
/// it). The old file is copied to `backup` first; the new one replaces it atomically, as
/// devenv itself when it may write there, else through sudo's fixed command lines.
pub async fn apply(
    runner: &dyn Runner,
    path: &Path,
    backup: &Path,
    project: &str,
    uid: u32,
    lines: Option<&[String]>,
) -> Result<Applied, HostsError> {
    let file = crate::nfs::attrs::target_of(path);
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| HostsError::Io {
            action,
            path,
            source,
        }
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io("read", &file)(e)),
    };
    let after = edit(&text, path, project, uid, lines)?;
    if after == text {
        return Ok(Applied::Unchanged);
    }
    if let Some(dir) = backup.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    std::fs::write(backup, &text).map_err(io("back up the hosts file to", backup))?;
    match crate::nfs::attrs::replace(&file, after.as_bytes(), Some(&file), ".hosts.devenv-") {
        Ok(()) => Ok(Applied::Written),
        Err((_, e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            sudo_replace(runner, &file, after.as_bytes()).await?;
            Ok(Applied::Written)
        }
        Err((action, source)) => Err(HostsError::Io {
            action,
            path: file,
            source,
        }),
    }
}

/// The new file through sudo, as fixed argument lists: a staging copy beside the file (`cp
/// -p` keeps mode and owner), overwritten with `tee` (which keeps them), moved over the file.
async fn sudo_replace(runner: &dyn Runner, file: &Path, bytes: &[u8]) -> Result<(), HostsError> {
    let mut staging = file.as_os_str().to_owned();
    staging.push(".devenv.tmp");
    let staging = PathBuf::from(staging);
    let steps = [
        Cmd::new("sudo")
            .args(["cp", "-p"])
            .arg(file)
            .arg(&staging)
            .interactive(),
        Cmd::new("sudo")
            .arg("tee")
            .arg(&staging)
            .stdin(bytes.to_vec()),
        Cmd::new("sudo").arg("mv").arg(&staging).arg(file),
    ];
    for step in &steps {
        runner.run(step).await.map_err(|e| HostsError::Sudo {
            path: file.to_path_buf(),
            why: e.to_string(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/etc/hosts";

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// `text` with project shop's block (uid 1000) holding `block`.
    fn set(text: &str, block: &[&str]) -> String {
        edit(text, Path::new(P), "shop", 1000, Some(&lines(block))).unwrap()
    }

    #[test]
    fn a_new_block_is_appended_and_every_other_byte_kept() {
        let text = "127.0.0.1\tlocalhost\n# a comment\n::1 localhost ip6-localhost";
        let after = set(text, &["192.168.39.10 shop.local"]);
        assert_eq!(
            after,
            "127.0.0.1\tlocalhost\n# a comment\n::1 localhost ip6-localhost\n\
             # BEGIN devenv shop uid=1000\n192.168.39.10 shop.local\n# END devenv shop uid=1000\n"
        );
        // Set again: unchanged; removed: the file as it was, but for the line end it lacked.
        let again = set(&after, &["192.168.39.10 shop.local"]);
        assert_eq!(again, after);
        let removed = edit(&after, Path::new(P), "shop", 1000, None).unwrap();
        assert_eq!(removed, format!("{text}\n"));
    }

    #[test]
    fn only_this_projects_and_users_block_is_touched_and_crlf_is_kept() {
        let text = "127.0.0.1 localhost\r\n# BEGIN devenv shop uid=1001\r\n10.0.0.2 shop.local\r\n# END devenv shop uid=1001\r\n# BEGIN devenv shop uid=1000\r\n10.0.0.1 old.local\r\n# END devenv shop uid=1000\r\n# after\r\n";
        let after = set(text, &["10.0.0.9 shop.local"]);
        assert_eq!(
            after,
            text.replace("10.0.0.1 old.local", "10.0.0.9 shop.local")
        );
        assert_eq!(
            current(&after, Path::new(P), "shop", 1001).unwrap(),
            Some(lines(&["10.0.0.2 shop.local"]))
        );
    }

    #[test]
    fn markers_that_do_not_pair_are_refused_with_their_line() {
        let e = edit(
            "a\n# BEGIN devenv shop uid=1\nb\n",
            Path::new(P),
            "shop",
            1,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/hosts: line 2: the BEGIN of devenv's block for shop has no END"
        );
        let e = edit("# END devenv shop uid=1\n", Path::new(P), "shop", 1, None).unwrap_err();
        assert!(e.to_string().contains("line 1: the END"), "{e}");
    }

    #[test]
    fn only_dns_names_go_to_a_private_address() {
        let ip: Ipv4Addr = "192.168.39.10".parse().unwrap();
        assert_eq!(
            block_lines(ip, &lines(&["shop.local", "API.shop.local", "shop.local"])).unwrap(),
            ["192.168.39.10 api.shop.local shop.local"]
        );
        assert!(block_lines(ip, &lines(&["shop.local evil.com"])).is_err());
        assert!(block_lines(ip, &lines(&["-x.local"])).is_err());
        assert!(block_lines(ip, &lines(&["a..local"])).is_err());
        assert!(block_lines("8.8.8.8".parse().unwrap(), &lines(&["shop.local"])).is_err());
        assert!(block_lines(ip, &[]).unwrap().is_empty());
    }
}
