//! Host-side NFS exports: the lines devenv adds to `/etc/exports` for a project, in the dialect of
//! the host OS, inside a block marked as devenv's own so that nothing outside it is ever touched.
//!
//! The export is granted to the VM's address or its host-only subnet only, never to `*`, and
//! squashes every client user to the developer's uid/gid so files created from pods belong to
//! the developer on the host.

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

/// One export line for `path`.
pub fn export_line(
    dialect: ExportsDialect,
    path: &Path,
    client: ExportClient,
    owner: Owner,
) -> String {
    let path = escape_path(&path.to_string_lossy());
    match dialect {
        ExportsDialect::Linux => format!(
            "{path} {client}(rw,async,no_subtree_check,all_squash,anonuid={},anongid={})",
            owner.uid, owner.gid
        ),
        ExportsDialect::MacOs => {
            let who = match client {
                ExportClient::Address(ip) => ip.to_string(),
                ExportClient::Subnet { network, prefix } => {
                    format!("-network {network} -mask {}", mask(prefix))
                }
            };
            format!("{path} -alldirs -mapall={}:{} {who}", owner.uid, owner.gid)
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
    for b in path.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'#') || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:03o}"));
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
    fn the_block_is_framed_by_markers_naming_project_and_user() {
        let b = block("shop", ME, &["L".to_string()]);
        assert_eq!(
            b,
            "# BEGIN devenv shop uid=501\nL\n# END devenv shop uid=501\n"
        );
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
