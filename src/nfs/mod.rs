//! Host-side NFS exports: the lines devenv adds to `/etc/exports` for a project, in the dialect of
//! the host OS, inside a block marked as devenv's own so that nothing outside it is ever touched.
//!
//! The export is granted to the VM's address or its host-only subnet only, never to `*`, and
//! squashes every client user to the developer's uid/gid so files created from pods belong to
//! the developer on the host.

pub mod apply;
pub mod attrs;
pub mod file;
pub mod helper;
pub mod macos;
pub mod scope;

use std::net::Ipv4Addr;
use std::path::Path;

use devenv_drivers::{ExportClient, ExportsDialect};

use crate::process::Cmd;

/// The default location of the exports file on both Linux and macOS.
pub const EXPORTS_FILE: &str = "/etc/exports";

/// Who owns the exported files on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub fn current() -> Owner {
        // SAFETY: getuid/getgid have no preconditions and cannot fail.
        unsafe {
            Owner {
                uid: libc::getuid(),
                gid: libc::getgid(),
            }
        }
    }
}

/// The first line of devenv's block for `project` and the user `uid`.
pub fn begin_marker(project: &str, uid: u32) -> String {
    format!("# BEGIN devenv {project} uid={uid}")
}

/// The last line of devenv's block.
pub fn end_marker(project: &str, uid: u32) -> String {
    format!("# END devenv {project} uid={uid}")
}

/// Whether the VM may write the exported tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

impl Access {
    /// The word for it in a helper request and in Linux export options.
    pub fn word(self) -> &'static str {
        match self {
            Access::ReadWrite => "rw",
            Access::ReadOnly => "ro",
        }
    }
}

/// What one export grants, as the developer asks for it: the directory (canonical, as the user
/// sees it: firmlinks not yet resolved), the client and the access. The privileged helper
/// ([`helper`]) receives exactly this and derives the line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub dir: std::path::PathBuf,
    pub client: ExportClient,
    pub access: Access,
}

/// One read-write export line for `path`.
pub fn export_line(
    dialect: ExportsDialect,
    path: &Path,
    client: ExportClient,
    owner: Owner,
) -> String {
    export_line_with(dialect, path, client, owner, Access::ReadWrite)
}

/// One export line for `path` with the given access: every client user squashed to `owner`,
/// never `no_root_squash`, `insecure` or a wildcard.
pub fn export_line_with(
    dialect: ExportsDialect,
    path: &Path,
    client: ExportClient,
    owner: Owner,
    access: Access,
) -> String {
    let path = escape_path(&path.to_string_lossy());
    match dialect {
        ExportsDialect::Linux => format!(
            "{path} {client}({},async,no_subtree_check,all_squash,anonuid={},anongid={})",
            access.word(),
            owner.uid,
            owner.gid
        ),
        ExportsDialect::MacOs => {
            let who = match client {
                ExportClient::Address(ip) => ip.to_string(),
                ExportClient::Subnet { network, prefix } => {
                    format!("-network {network} -mask {}", mask(prefix))
                }
            };
            let ro = match access {
                Access::ReadWrite => "",
                Access::ReadOnly => " -ro",
            };
            format!(
                "{path} -alldirs{ro} -mapall={}:{} {who}",
                owner.uid, owner.gid
            )
        }
    }
}

/// The whole block, markers included, with a trailing newline.
pub fn block(project: &str, owner: Owner, lines: &[String]) -> String {
    let mut out = begin_marker(project, owner.uid);
    out.push('\n');
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&end_marker(project, owner.uid));
    out.push('\n');
    out
}

/// A path as both dialects read it: in double quotes (for spaces), with `"`, `\`, `#`, control
/// and non-ASCII bytes written as a backslash and three octal digits, which exports(5) decodes.
pub fn escape_path(path: &str) -> String {
    let mut out = String::from("\"");
    // exportfs decodes `\134` into a backslash and then reads that backslash with the digits
    // after it as another escape, so up to three octal digits after an escaped backslash are
    // escaped too.
    let mut guard: u8 = 0;
    for b in path.bytes() {
        let plain = (b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'#')) || b == b' ';
        let digit = (b'0'..=b'7').contains(&b);
        if plain && !(guard > 0 && digit) {
            out.push(b as char);
            guard = 0;
        } else {
            out.push_str(&format!("\\{b:03o}"));
            guard = match b {
                b'\\' => 3,
                _ if digit => guard - 1,
                _ => 0,
            };
        }
    }
    out.push('"');
    out
}

fn mask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

/// Parse an export client written as an IPv4 address or `network/prefix` (a devenv.toml
/// override), held to the same scope rule as devenv's own lines ([`scope::check_client_scope`]).
pub fn parse_client(text: &str) -> Result<ExportClient, crate::unreadable::Unreadable> {
    let text = text.trim();
    scope::check_client_scope(text).map_err(|e| e.to_string())?;
    match text.split_once('/') {
        None => text
            .parse()
            .map(ExportClient::Address)
            .map_err(|_| format!("\"{text}\" is not an IPv4 address").into()),
        Some((net, prefix)) => {
            let network: Ipv4Addr = net
                .parse()
                .map_err(|_| format!("\"{text}\" is not an IPv4 subnet"))?;
            let prefix: u8 = prefix
                .parse()
                .map_err(|_| format!("\"{text}\": write the prefix as a length, e.g. /24"))?;
            if u32::from(network) & !u32::from(mask(prefix)) != 0 {
                return Err(format!("\"{text}\" has host bits set").into());
            }
            Ok(ExportClient::Subnet { network, prefix })
        }
    }
}

/// The path to write in the exports file for `path`: on macOS, a path under a firmlink is
/// written as its real location under /System/Volumes/Data, as nfsd requires.
pub fn exported_path(dialect: ExportsDialect, path: &Path, firmlinks: &str) -> std::path::PathBuf {
    match dialect {
        ExportsDialect::Linux => path.to_path_buf(),
        ExportsDialect::MacOs => macos::resolve_firmlinks(path, firmlinks),
    }
}

/// A unified-style diff of two versions of the exports file: the changed lines with one line of
/// context. devenv only ever changes one contiguous block, so a common prefix and suffix is all
/// the alignment needed.
///
/// The versions are bytes, as the file is kept; a byte that is not UTF-8 shows as U+FFFD here
/// and nowhere else.
pub fn diff(old: &[u8], new: &[u8]) -> String {
    if old == new {
        return String::new();
    }
    let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = String::new();
    let line = |mark: char, l: &str| {
        let l = l.trim_end_matches(['\n', '\r']);
        format!("{mark}{l}\n")
    };
    if prefix > 0 {
        out.push_str(&line(' ', a[prefix - 1]));
    }
    for l in &a[prefix..a.len() - suffix] {
        out.push_str(&line('-', l));
    }
    for l in &b[prefix..b.len() - suffix] {
        out.push_str(&line('+', l));
    }
    if suffix > 0 {
        out.push_str(&line(' ', a[a.len() - suffix]));
    }
    out
}

/// The exports file as it is on disk, `None` when there is none. Bytes, not text: the file is
/// shared, and a byte that is not UTF-8 (a Latin-1 comment, a directory named in another
/// encoding) belongs to someone else and is written back as it was.
pub fn read_exports(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The command that makes the NFS server re-read the exports file.
pub fn reload(dialect: ExportsDialect, as_root: bool) -> Cmd {
    let (program, args): (&str, &[&str]) = match dialect {
        ExportsDialect::Linux => ("exportfs", &["-ra"]),
        ExportsDialect::MacOs => ("nfsd", &["update"]),
    };
    if as_root {
        Cmd::new(program).args(args)
    } else {
        Cmd::new("sudo").arg(program).args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Owner = Owner { uid: 501, gid: 20 };

    #[test]
    fn linux_line_grants_the_vm_address_and_squashes_to_the_developer() {
        let line = export_line(
            ExportsDialect::Linux,
            Path::new("/home/ann/src/shop"),
            ExportClient::Address(Ipv4Addr::new(192, 168, 39, 12)),
            ME,
        );
        assert_eq!(
            line,
            "\"/home/ann/src/shop\" 192.168.39.12(rw,async,no_subtree_check,all_squash,anonuid=501,anongid=20)"
        );
    }

    #[test]
    fn macos_line_uses_network_and_mask_for_a_subnet() {
        let line = export_line(
            ExportsDialect::MacOs,
            Path::new("/System/Volumes/Data/Users/ann/shop"),
            ExportClient::Subnet {
                network: Ipv4Addr::new(192, 168, 64, 0),
                prefix: 24,
            },
            ME,
        );
        assert_eq!(
            line,
            "\"/System/Volumes/Data/Users/ann/shop\" -alldirs -mapall=501:20 -network 192.168.64.0 -mask 255.255.255.0"
        );
    }

    #[test]
    fn awkward_path_characters_are_octal_escaped() {
        assert_eq!(
            escape_path("/a b/c\"d#e\\é"),
            "\"/a b/c\\042d\\043e\\134\\303\\251\""
        );
    }

    #[test]
    fn octal_digits_after_a_backslash_are_escaped_too() {
        assert_eq!(escape_path("/b\\101"), "\"/b\\134\\061\\060\\061\"");
        assert_eq!(escape_path("/b\\x1"), "\"/b\\134x1\"");
    }

    #[test]
    fn the_block_is_framed_by_markers_naming_project_and_user() {
        let b = block("shop", ME, &["L".to_string()]);
        assert_eq!(
            b,
            "# BEGIN devenv shop uid=501\nL\n# END devenv shop uid=501\n"
        );
    }

    #[test]
    fn private_clients_pass_the_scope_rule() {
        assert!(parse_client("192.168.39.0/24").is_ok());
        assert!(parse_client("10.1.2.3").is_ok());
        assert!(parse_client("172.20.0.0/16").is_ok());
    }

    #[test]
    fn wildcards_public_and_too_wide_ranges_are_refused() {
        for bad in [
            "*",
            "0.0.0.0/0",
            "8.8.8.8",
            "192.168.0.0/8",
            "172.0.0.0/8",
            "host.local",
            "10.0.0.1/24",
            "10.0.0.0/33",
        ] {
            assert!(parse_client(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_diff_shows_the_block_with_context() {
        let old = "a\nb\n";
        let new = "a\nb\n# BEGIN x\nL\n# END x\n";
        assert_eq!(
            diff(old.as_bytes(), new.as_bytes()),
            " b\n+# BEGIN x\n+L\n+# END x\n"
        );
        assert_eq!(
            diff(new.as_bytes(), old.as_bytes()),
            " b\n-# BEGIN x\n-L\n-# END x\n"
        );
        assert_eq!(diff(old.as_bytes(), old.as_bytes()), "");
    }

    #[test]
    fn reload_needs_sudo_unless_root() {
        assert_eq!(
            reload(ExportsDialect::Linux, false).display(),
            "sudo exportfs -ra"
        );
        assert_eq!(reload(ExportsDialect::MacOs, true).display(), "nfsd update");
    }
}
