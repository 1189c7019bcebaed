//! The exports file editor as a specification: golden files for both dialects (add, update and
//! remove devenv's block among other tools' content), the real Linux `exportfs` as the judge of
//! every Linux file devenv writes and of the parser's own verdicts on a corpus of good and bad
//! lines, and property tests over random foreign content and random edits.
//!
//! Goldens live in `tests/golden/exports/`: `<dialect>-<case>.input` is a file devenv finds,
//! `.added` the file after adding the project's block, `.updated` after changing it; removing the
//! block must give back `.input` byte for byte. `UPDATE_GOLDEN=1 cargo test --test exports_file`
//! rewrites `.added` and `.updated` (review the diff before committing).
//!
//! `exportfs` validates a candidate file in a private mount namespace (see `../shared/tools.md`):
//! the candidate is bind-mounted over /etc/exports, a temp dir over /var/lib/nfs, and tmpfs over
//! /proc/fs/nfsd, /proc/net/rpc and the top directories of the exported paths, so neither the
//! machine's exports nor a running NFS server are touched. That needs root, `unshare` and
//! `exportfs` (Debian's nfs-kernel-server); without them these tests say "skipping" and return,
//! except under CI where they fail.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use devenv::nfs::file::{BlockKey, ExportsFile};
use devenv::nfs::{Owner, export_line, macos};
use devenv_drivers::{ExportClient, ExportsDialect};
use proptest::prelude::*;

const PROJECT: &str = "shop";
const OWNER: Owner = Owner { uid: 501, gid: 20 };
const FIRMLINKS: &str =
    "/Applications\tApplications\n/Library\tLibrary\n/Users\tUsers\n/usr/local\tusr/local\n";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/exports")
}

/// The project's directories as the host sees them.
fn project_paths(dialect: ExportsDialect) -> [PathBuf; 2] {
    let [main, libs] = match dialect {
        ExportsDialect::Linux => ["/home/ann/src/shop", "/home/ann/src/shop-libs/ü #1"],
        ExportsDialect::MacOs => ["/Users/ann/src/shop", "/Users/ann/src/shop-libs/ü #1"],
    };
    [main, libs].map(|p| match dialect {
        ExportsDialect::Linux => PathBuf::from(p),
        ExportsDialect::MacOs => macos::resolve_firmlinks(Path::new(p), FIRMLINKS),
    })
}

/// First `devenv up`: the VM's address is known.
fn added_lines(dialect: ExportsDialect) -> Vec<String> {
    let [main, _] = project_paths(dialect);
    let vm = match dialect {
        ExportsDialect::Linux => Ipv4Addr::new(192, 168, 39, 12),
        ExportsDialect::MacOs => Ipv4Addr::new(192, 168, 64, 2),
    };
    vec![export_line(
        dialect,
        &main,
        ExportClient::Address(vm),
        OWNER,
    )]
}

/// A later `devenv up`: a second directory, exported to the host-only subnet. On macOS both
/// are on one filesystem, so they share a line.
fn updated_lines(dialect: ExportsDialect) -> Vec<String> {
    let network = match dialect {
        ExportsDialect::Linux => Ipv4Addr::new(192, 168, 39, 0),
        ExportsDialect::MacOs => Ipv4Addr::new(192, 168, 64, 0),
    };
    let client = ExportClient::Subnet {
        network,
        prefix: 24,
    };
    let lines: Vec<String> = project_paths(dialect)
        .iter()
        .map(|p| export_line(dialect, p, client, OWNER))
        .collect();
    match dialect {
        ExportsDialect::Linux => lines,
        ExportsDialect::MacOs => macos::merge_lines(&lines, |_| "data volume"),
    }
}

struct Golden {
    name: String,
    dialect: ExportsDialect,
    input: Vec<u8>,
}

fn goldens() -> Vec<Golden> {
    let mut out: Vec<Golden> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("input")))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let dialect = if name.starts_with("linux-") {
                ExportsDialect::Linux
            } else if name.starts_with("macos-") {
                ExportsDialect::MacOs
            } else {
                panic!("{name}: golden names start with linux- or macos-")
            };
            Golden {
                name,
                dialect,
                input: std::fs::read(&p).unwrap(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 8, "the goldens are missing");
    out
}

/// Compares with the golden file, or rewrites it under UPDATE_GOLDEN.
fn assert_golden(name: &str, actual: &[u8]) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e} (UPDATE_GOLDEN=1 writes it)"));
    assert_eq!(
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(&expected),
        "{name} differs (UPDATE_GOLDEN=1 rewrites it)"
    );
    assert_eq!(actual, expected.as_slice(), "{name} differs in its bytes");
}

fn parse(bytes: &[u8], dialect: ExportsDialect) -> ExportsFile {
    ExportsFile::parse_bytes(bytes, dialect).expect("golden files parse")
}

#[test]
fn every_golden_input_gets_the_expected_block_and_gets_its_bytes_back_when_the_block_goes() {
    for golden in goldens() {
        let Golden {
            name,
            dialect,
            input,
        } = &golden;
        let file = parse(input, *dialect);
        assert_eq!(
            file.to_bytes(),
            *input,
            "{name}: parsing alone changes nothing"
        );
        assert!(
            file.block_lines(PROJECT, OWNER.uid).is_none(),
            "{name}: inputs have no block of the project"
        );

        let mut added = file.clone();
        assert!(added.set_block(PROJECT, OWNER.uid, &added_lines(*dialect)));
        assert_golden(&format!("{name}.added"), &added.to_bytes());

        let mut updated = parse(&added.to_bytes(), *dialect);
        assert!(updated.set_block(PROJECT, OWNER.uid, &updated_lines(*dialect)));
        assert_golden(&format!("{name}.updated"), &updated.to_bytes());

        let mut direct = file.clone();
        direct.set_block(PROJECT, OWNER.uid, &updated_lines(*dialect));
        assert_eq!(
            direct.to_bytes(),
            updated.to_bytes(),
            "{name}: updating gives the same file as adding the new lines at once"
        );

        let mut again = parse(&updated.to_bytes(), *dialect);
        assert!(
            !again.set_block(PROJECT, OWNER.uid, &updated_lines(*dialect)),
            "{name}: a second identical update changes nothing"
        );
        assert_eq!(again.to_bytes(), updated.to_bytes());

        for (stage, text) in [("added", added.to_bytes()), ("updated", updated.to_bytes())] {
            let mut file = parse(&text, *dialect);
            assert!(file.remove_block(PROJECT, OWNER.uid));
            assert_eq!(
                String::from_utf8_lossy(&file.to_bytes()),
                String::from_utf8_lossy(input),
                "{name}: removing the {stage} block restores the input"
            );
            assert_eq!(file.to_bytes(), *input, "{name}: byte for byte");
        }
    }
}

#[test]
fn golden_files_pass_the_parsers_checks_and_list_the_projects_directories() {
    for golden in goldens() {
        let name = &golden.name;
        for stage in ["input", "added", "updated"] {
            let text = std::fs::read(golden_dir().join(format!("{name}.{stage}"))).unwrap();
            let file = parse(&text, golden.dialect);
            let problems: Vec<String> = file.check().iter().map(ToString::to_string).collect();
            assert_eq!(problems, Vec::<String>::new(), "{name}.{stage}");
            let ours: Vec<PathBuf> = file
                .entries()
                .into_iter()
                .filter(|e| e.block == Some(BlockKey::new(PROJECT, OWNER.uid)))
                .map(|e| e.path)
                .collect();
            let [main, libs] = project_paths(golden.dialect);
            let expected = match stage {
                "input" => vec![],
                "added" => vec![main],
                _ => vec![main, libs],
            };
            assert_eq!(ours, expected, "{name}.{stage}");
        }
    }
}

#[test]
fn the_projects_directory_conflicts_with_an_overlapping_foreign_export_in_a_golden() {
    let text = std::fs::read(golden_dir().join("linux-vagrant.added")).unwrap();
    let file = parse(&text, ExportsDialect::Linux);
    let conflicts = file.conflicts(Path::new("/home/ann/vagrant"), PROJECT, OWNER.uid);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        conflicts[0].to_string(),
        "line 4 exports /home/ann/vagrant/app, which is inside /home/ann/vagrant: remove that line or export a different directory"
    );
    assert!(
        file.conflicts(Path::new("/home/ann/src/shop"), PROJECT, OWNER.uid)
            .is_empty(),
        "the project's own block and unrelated exports are no conflict"
    );
}

// ---------------------------------------------------------------------------------------------
// The real exportfs.

struct Exportfs;

struct Verdict {
    accepted: bool,
    stderr: String,
    /// `exportfs -v` after the reload: what the server would export.
    exported: Vec<u8>,
}

impl Verdict {
    fn exports(&self, path: &Path) -> bool {
        let needle = path.as_os_str().as_bytes();
        self.exported.windows(needle.len()).any(|w| w == needle)
    }
}

/// The real exportfs, or `None` (after saying so) where it cannot run.
fn exportfs() -> Option<Exportfs> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var_os("CI").is_some() {
            panic!("the real exportfs tests need root under CI");
        }
        eprintln!("skipping: the real exportfs tests need root (for a private mount namespace)");
        return None;
    }
    support::real_tool("unshare")?;
    support::real_tool("exportfs")?;
    Some(Exportfs)
}

impl Exportfs {
    /// `exportfs -ra` on `file` in a private mount namespace. `tops` get an empty tmpfs and
    /// `dirs` are created under them first, so paths such as /home/ann/src/shop exist for
    /// exportfs without touching the machine.
    fn judge(&self, file: &[u8], tops: &[PathBuf], dirs: &[PathBuf]) -> Verdict {
        const SCRIPT: &str = r#"
set -e
candidate=$1; state=$2; tops=$3; shift 3
mount --bind "$candidate" /etc/exports
mount --bind "$state" /var/lib/nfs
for p in /proc/fs/nfsd /proc/net/rpc; do
  if [ -d "$p" ]; then mount -t tmpfs devenv-test "$p"; fi
done
while IFS= read -r top; do
  [ -n "$top" ] && mount -t tmpfs devenv-test "$top"
done < "$tops"
for d in "$@"; do mkdir -p -- "$d"; done
cd /
set +e
exportfs -ra
rc=$?
exportfs -v
exit $rc
"#;
        for top in tops {
            assert!(
                ["/home", "/srv", "/mnt", "/opt"]
                    .iter()
                    .any(|t| top == Path::new(t)),
                "{}: exported paths in tests live under /home, /srv, /mnt or /opt",
                top.display()
            );
        }
        let work = tempfile::tempdir().unwrap();
        let candidate = work.path().join("exports");
        std::fs::write(&candidate, file).unwrap();
        let state = work.path().join("nfs-state");
        std::fs::create_dir(&state).unwrap();
        let tops_file = work.path().join("tops");
        let mut listed = Vec::new();
        for top in tops {
            listed.extend_from_slice(top.as_os_str().as_bytes());
            listed.push(b'\n');
        }
        std::fs::write(&tops_file, listed).unwrap();
        let output = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh"])
            .arg(&candidate)
            .arg(&state)
            .arg(&tops_file)
            .args(dirs)
            .output()
            .expect("unshare runs");
        Verdict {
            accepted: output.status.success(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            exported: output.stdout,
        }
    }
}

/// Every absolute path a file exports, and the top directories they live under.
fn paths_of(file: &ExportsFile) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let dirs: Vec<PathBuf> = file
        .entries()
        .into_iter()
        .map(|e| e.path)
        .filter(|p| p.is_absolute())
        .collect();
    let tops: BTreeSet<PathBuf> = dirs
        .iter()
        .filter_map(|d| d.components().nth(1))
        .map(|c| Path::new("/").join(c))
        .collect();
    (tops.into_iter().collect(), dirs)
}

#[test]
fn exportfs_accepts_every_linux_golden_and_exports_every_directory_the_parser_lists() {
    let Some(exportfs) = exportfs() else { return };
    for golden in goldens()
        .into_iter()
        .filter(|g| g.dialect == ExportsDialect::Linux)
    {
        for stage in ["input", "added", "updated"] {
            let name = format!("{}.{stage}", golden.name);
            let text = std::fs::read(golden_dir().join(&name)).unwrap();
            let file = parse(&text, ExportsDialect::Linux);
            let (tops, dirs) = paths_of(&file);
            let verdict = exportfs.judge(&text, &tops, &dirs);
            assert!(
                verdict.accepted,
                "{name}: exportfs refused it:\n{}",
                verdict.stderr
            );
            for dir in &dirs {
                assert!(
                    verdict.exports(dir),
                    "{name}: exportfs does not export {}:\n{}",
                    dir.display(),
                    String::from_utf8_lossy(&verdict.exported)
                );
            }
        }
    }
}

/// A directory that exists for exportfs, with the subdirectories the corpus names.
struct Corpus {
    _dir: tempfile::TempDir,
    root: String,
}

impl Corpus {
    fn new() -> Corpus {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["with space", "hash#tag"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let root = dir.path().to_str().unwrap().to_string();
        Corpus { _dir: dir, root }
    }

    /// The case as a file: a valid export first, so that the case starts on line 2.
    fn file(&self, case: &str) -> String {
        let long = "a".repeat(512);
        format!(
            "\"{}/with space\" 10.0.0.99(ro)\n{}\n",
            self.root,
            case.replace("{D}", &self.root).replace("{LONG}", &long)
        )
    }
}

/// Lines exportfs rejects, with what the parser must say about each.
const BAD: &[(&str, &str)] = &[
    ("{D} 10.0.0.1(rw,bogusopt)", "unknown keyword \"bogusopt\""),
    ("{D} 10.0.0.1(RW)", "unknown keyword \"RW\""),
    ("{D} 10.0.0.1(rw,async=1)", "unknown keyword \"async=1\""),
    ("{D} 10.0.0.1(rw,mapping=identity)", "unknown keyword"),
    ("{D} 10.0.0.1(rw,xprtsec=tls)", "unknown keyword"),
    ("{D} 10.0.0.1(rw,,async)", "unknown keyword \"\""),
    ("{D} 10.0.0.1(,rw)", "unknown keyword \"\""),
    ("srv/devenv-no-such-dir 10.0.0.1(rw)", "is not absolute"),
    ("\"{D} 10.0.0.1(rw)", "unterminated quote"),
    (
        "{D} 10.0.0.1(rw,anonuid=abc)",
        "bad anonuid \"anonuid=abc\"",
    ),
    ("{D} 10.0.0.1(rw,anonuid=)", "bad anonuid"),
    ("{D} 10.0.0.1(rw,anonuid=0x5)", "bad anonuid"),
    ("{D} 10.0.0.1(rw,anongid=1x)", "bad anongid"),
    ("{D} 10.0.0.1(rw,fsid=abc)", "bad fsid"),
    ("{D} 10.0.0.1(rw,fsid=08)", "bad fsid"),
    ("{D} 10.0.0.1(rw,fsid=)", "bad fsid"),
    ("{D} 10.0.0.1(rw", "bad option list"),
    ("{D} 10.0.0.1(rw))", "bad option list"),
    ("{D} 10.0.0.1(rw)x", "bad option list"),
    ("{D} 10.0.0.1(rw)(ro)", "bad option list"),
    ("{D} 10.0.0.1( rw)", "bad option list"),
    ("{D} 10.0.0.1(rw,sec=foo)", "unknown flavor foo"),
    ("{D} 10.0.0.1(rw,sec=)", "unknown flavor"),
    ("{D} 10.0.0.1(rw,sec=SYS)", "unknown flavor SYS"),
    (
        "{D} 10.0.0.1(rw,squash_uids=-1)",
        "uid/gid -1 not permitted",
    ),
    ("{D} 10.0.0.1(rw,squash_uids=a)", "bad uid/gid list"),
    ("{D} 10.0.0.1/33(rw)", "Invalid prefix `33'"),
    ("{D} 10.0.0.1/abc(rw)", "Invalid prefix"),
    ("{D} 10.0.0.1/-1(rw)", "Invalid prefix"),
    ("{D} fe80::/129(rw)", "Invalid prefix"),
    ("{D} 10.0.0/8(rw)", "Invalid IP address"),
    ("{D} 010.0.0.1/8(rw)", "Invalid IP address"),
    ("{D} host/8(rw)", "Invalid IP address"),
    ("{D} 10.0.0.1/1.2.3(rw)", "Invalid netmask"),
    ("{D} 10.0.0.1/300.0.0.0(rw)", "Invalid netmask"),
    ("{D} -bogus 10.0.0.1(rw)", "unknown keyword \"bogus\""),
    (
        "{D} -alldirs -mapall=501:20 10.0.0.1",
        "unknown keyword \"alldirs\"",
    ),
    ("{D} 10.0.0.1(rw) 10.0.0.1(ro)", "duplicated export entries"),
    (
        "{D} 10.0.0.1(rw)\n{D}/ 10.0.0.1(rw)",
        "duplicated export entries",
    ),
    (
        "{D} \"10.0.0.2(rw,anonuid=1 )\"",
        "bad anonuid \"anonuid=1 \"",
    ),
    ("{D} {LONG}(rw)", "longer than 511 bytes"),
    (
        "{D} \\\n# a comment ends the entry\n10.0.0.1(rw)",
        "is not absolute",
    ),
    ("{D} \\\r\n  10.0.0.1(rw)\r", "before a CRLF line ending"),
];

/// Lines exportfs accepts; the parser must find nothing wrong with them either.
const GOOD: &[&str] = &[
    "{D} 10.0.0.1(rw,sync,no_subtree_check)",
    "\"{D}\" 192.168.1.0/24(rw,async,no_subtree_check,all_squash,anonuid=501,anongid=20)",
    "{D} *(ro,no_subtree_check)",
    "{D} (rw,no_subtree_check)",
    "{D}",
    "{D} -rw,no_subtree_check 10.0.0.1",
    "{D} - 10.0.0.1(rw)",
    "{D} 10.0.0.1(rw,)",
    "{D} 10.0.0.1()",
    "{D} 10.0.0.1(rw,anonuid=-1,anongid=+5)",
    "{D} 10.0.0.1(rw,fsid=0x1f)",
    "{D} 10.0.0.1(rw,fsid=root)",
    "{D} 10.0.0.1(rw,fsid=12345678-1234-1234-1234-123456789abc)",
    "{D} 10.0.0.1(rw,sec=krb5p:krb5i:krb5:sys:null:none:unix)",
    "{D} 10.0.0.1(rw,squash_uids=0-10,squash_gids=5)",
    "{D} 10.0.0.1(ro,secure,insecure,nordirplus,security_label,nohide,hide,crossmnt,nocrossmnt,wdelay,no_wdelay,root_squash,no_root_squash,all_squash,no_all_squash,subtree_check,no_subtree_check,auth_nlm,no_auth_nlm,secure_locks,insecure_locks,acl,no_acl,pnfs,no_pnfs)",
    "{D} 10.0.0.1(rw,mp,mountpoint=/x,refer=/a@h,replicas=/b@i)",
    "{D} @netgroup(rw)",
    "{D} *.example.com(rw)",
    "{D} gss/krb5(rw)",
    "{D} 10.0.0.0/255.0.0.0(rw)",
    "{D} 10.0.0.1/(rw) 10.0.0.2/+8(rw)",
    "{D} ::1(rw) fe80::/10(ro) fe80::/ffc0::(ro)",
    "{D} 10.0.0.1(rw) # a trailing comment",
    "{D} \\\n   10.0.0.1(rw) \\\n\t10.0.0.2(ro)",
    "\"{D}/with space\" 10.0.0.1(rw)",
    "{D}/with\\040space 10.0.0.1(rw)",
    "{D}/\"with space\" 10.0.0.1(rw)",
    "{D}/hash#tag 10.0.0.1(rw)",
    "{D} 10.0.0.1(rw)\r\n# a CRLF comment\r\n{D}/with\\040space 10.0.0.2(rw)\r",
    "{D} 10.0.0.1(rw)\r\n\r",
];

#[test]
fn exportfs_and_the_parser_reject_every_bad_line_of_the_corpus() {
    let Some(exportfs) = exportfs() else { return };
    let corpus = Corpus::new();
    for (case, expected) in BAD {
        let text = corpus.file(case);
        let problems = ExportsFile::parse(&text, ExportsDialect::Linux)
            .unwrap()
            .check();
        let verdict = exportfs.judge(text.as_bytes(), &[], &[]);
        assert!(
            !verdict.accepted,
            "{case:?}: exportfs accepted it:\n{}",
            verdict.stderr
        );
        assert!(
            problems.iter().any(|p| p.message.contains(expected)),
            "{case:?}: the parser should say {expected:?}, it says {problems:?}\nexportfs says: {}",
            verdict.stderr
        );
        if !case.contains('\n') {
            assert!(
                problems.iter().any(|p| p.line == 2),
                "{case:?}: the parser names the line of the file: {problems:?}"
            );
        }
    }
}

#[test]
fn exportfs_and_the_parser_accept_every_good_line_of_the_corpus() {
    let Some(exportfs) = exportfs() else { return };
    let corpus = Corpus::new();
    for case in GOOD {
        let text = corpus.file(case);
        let file = ExportsFile::parse(&text, ExportsDialect::Linux).unwrap();
        let verdict = exportfs.judge(text.as_bytes(), &[], &[]);
        assert!(
            verdict.accepted,
            "{case:?}: exportfs refused it:\n{}",
            verdict.stderr
        );
        assert_eq!(file.check(), vec![], "{case:?}");
        for entry in file.entries() {
            assert!(
                verdict.exports(&entry.path),
                "{case:?}: the parser lists {}, exportfs does not export it:\n{}",
                entry.path.display(),
                String::from_utf8_lossy(&verdict.exported)
            );
        }
    }
}

#[test]
fn the_parser_reports_where_exportfs_silently_stops_reading() {
    let Some(exportfs) = exportfs() else { return };
    let corpus = Corpus::new();
    let long = format!("/{}", "a".repeat(1100));
    for (case, line) in [
        ("{D} 10.0.0.1(rw)\r\n\r\n{D}/hash#tag 10.0.0.2(rw)\r", 3),
        (
            &*format!("{long} 10.0.0.1(rw)\n{{D}}/hash#tag 10.0.0.2(rw)"),
            2,
        ),
    ] {
        let text = corpus.file(case);
        let verdict = exportfs.judge(text.as_bytes(), &[], &[]);
        let later = Path::new(&corpus.root).join("hash#tag");
        assert!(
            verdict.accepted,
            "{case:?}: exportfs says nothing:\n{}",
            verdict.stderr
        );
        assert!(
            !verdict.exports(&later),
            "{case:?}: exportfs should have stopped before {}",
            later.display()
        );
        let problems = ExportsFile::parse(&text, ExportsDialect::Linux)
            .unwrap()
            .check();
        assert_eq!(problems.len(), 1, "{case:?}: {problems:?}");
        assert_eq!(problems[0].line, line, "{case:?}: {problems:?}");
        assert!(
            problems[0].message.contains("stops reading"),
            "{problems:?}"
        );
    }
}

#[test]
fn devenv_lines_are_held_to_a_narrower_scope_than_exportfs_accepts() {
    let Some(exportfs) = exportfs() else { return };
    let corpus = Corpus::new();
    for client in [
        "*(rw)",
        "(rw)",
        "",
        "*.example.com(rw)",
        "8.8.8.0/24(rw)",
        "10.0.0.0/7(rw)",
        "192.168.1.0/0(rw)",
    ] {
        let case =
            format!("# BEGIN devenv shop uid=501\n{{D}} {client}\n# END devenv shop uid=501");
        let text = corpus.file(&case);
        let verdict = exportfs.judge(text.as_bytes(), &[], &[]);
        assert!(verdict.accepted, "{client:?}: {}", verdict.stderr);
        let problems = ExportsFile::parse(&text, ExportsDialect::Linux)
            .unwrap()
            .check();
        assert_eq!(problems.len(), 1, "{client:?}: {problems:?}");
        assert!(problems[0].in_devenv_block("shop", 501));
        let foreign = corpus.file(&format!("{{D}} {client}"));
        assert_eq!(
            ExportsFile::parse(&foreign, ExportsDialect::Linux)
                .unwrap()
                .check(),
            vec![],
            "{client:?}: the same line outside devenv's block is its owner's choice"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Random foreign content and random edits.

fn foreign_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("# a comment".to_string()),
        Just("   ".to_string()),
        Just("\t# indented comment".to_string()),
        Just("/srv/a 10.0.0.1(rw) \\".to_string()),
        Just("    10.0.0.2(ro)".to_string()),
        Just("\"/Users/ann/x\" 192.168.56.10 -alldirs -mapall=501:20".to_string()),
        Just("# VAGRANT-BEGIN: 501 3b1e0f8a".to_string()),
        Just("# VAGRANT-END: 501 3b1e0f8a".to_string()),
        Just("# docker-machine-nfs-begin dev #".to_string()),
        Just("# docker-machine-nfs-end dev #".to_string()),
        Just("# BEGIN: minikube-hyperkit 192.168.64.5".to_string()),
        Just("# END: minikube-hyperkit 192.168.64.5".to_string()),
        Just("# BEGIN devenv shop".to_string()),
        Just("# END devenv shop uid=abc".to_string()),
        Just("#BEGIN devenv shop uid=501".to_string()),
        Just("caf\u{e9} \u{fc}".to_string()),
        Just("ends with a backslash \\".to_string()),
        "[a-z/ \"\\\\#()=,.0-9*\t-]{0,30}",
        (
            "/[a-z]{1,8}( [a-z]{1,4})?",
            "(\\*|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3})",
            "(rw|ro|rw,sync|ro,all_squash,anonuid=1)"
        )
            .prop_map(|(p, c, o)| format!("\"{p}\" {c}({o})")),
    ]
}

/// Foreign text: lines with LF or CRLF endings, and maybe no final line ending (or a stray CR).
fn foreign_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((foreign_line(), any::<bool>()), 0..12),
        prop_oneof![Just(""), Just("\n"), Just("\r\n"), Just("\r")],
        "[a-z ]{0,6}",
    )
        .prop_map(|(lines, end, last)| {
            let mut text = String::new();
            for (line, crlf) in lines {
                text.push_str(&line);
                text.push_str(if crlf { "\r\n" } else { "\n" });
            }
            text.push_str(&last);
            if !last.is_empty() {
                text.push_str(end);
            }
            text
        })
}

#[derive(Debug, Clone)]
enum Op {
    Set {
        project: usize,
        uid: usize,
        lines: usize,
    },
    Remove {
        project: usize,
        uid: usize,
    },
}

const PROJECTS: [&str; 3] = ["shop", "blog", "api"];
const UIDS: [u32; 2] = [501, 1000];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..2usize, 0..3usize).prop_map(|(project, uid, lines)| Op::Set { project, uid, lines }),
        2 => (0..3usize, 0..2usize).prop_map(|(project, uid)| Op::Remove { project, uid }),
    ]
}

fn lines_for(dialect: ExportsDialect, project: &str, variant: usize) -> Vec<String> {
    let path = PathBuf::from(format!("/srv/{project}"));
    let vm = ExportClient::Address(Ipv4Addr::new(192, 168, 39, 12));
    let subnet = ExportClient::Subnet {
        network: Ipv4Addr::new(192, 168, 39, 0),
        prefix: 24,
    };
    match variant {
        0 => vec![],
        1 => vec![export_line(dialect, &path, vm, OWNER)],
        _ => vec![
            export_line(dialect, &path, subnet, OWNER),
            export_line(dialect, &path.join("a b#c"), subnet, OWNER),
        ],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_edits_keep_foreign_bytes_and_one_block_per_project_and_user(
        original in foreign_text(),
        macos in any::<bool>(),
        ops in prop::collection::vec(op(), 1..10),
    ) {
        let dialect = if macos { ExportsDialect::MacOs } else { ExportsDialect::Linux };
        let file = ExportsFile::parse(&original, dialect).expect("foreign content never errors");
        prop_assert_eq!(file.render(), original.clone());
        let mut current = original.clone();
        let mut model: BTreeMap<BlockKey, Vec<String>> = BTreeMap::new();
        for op in ops {
            let mut file = ExportsFile::parse(&current, dialect).expect("devenv's own output parses");
            match op {
                Op::Set { project, uid, lines } => {
                    let key = BlockKey::new(PROJECTS[project], UIDS[uid]);
                    let lines = lines_for(dialect, &key.project, lines);
                    let changed = file.set_block(&key.project, key.uid, &lines);
                    prop_assert_eq!(changed, model.get(&key) != Some(&lines));
                    let once = file.render();
                    prop_assert!(!file.set_block(&key.project, key.uid, &lines));
                    prop_assert_eq!(file.render(), once);
                    model.insert(key, lines);
                }
                Op::Remove { project, uid } => {
                    let key = BlockKey::new(PROJECTS[project], UIDS[uid]);
                    prop_assert_eq!(file.remove_block(&key.project, key.uid), model.remove(&key).is_some());
                }
            }
            current = file.render();
            let reread = ExportsFile::parse(&current, dialect).expect("devenv's own output parses");
            let blocks: BTreeSet<BlockKey> = reread.blocks().into_iter().collect();
            prop_assert_eq!(blocks.len(), reread.blocks().len(), "a block appears twice");
            prop_assert_eq!(&blocks, &model.keys().cloned().collect::<BTreeSet<_>>());
            for (key, lines) in &model {
                prop_assert_eq!(reread.block_lines(&key.project, key.uid), Some(lines.clone()));
            }
            let _ = (reread.entries(), reread.check());
            let mut stripped = reread.clone();
            for key in reread.blocks() {
                stripped.remove_block(&key.project, key.uid);
            }
            prop_assert_eq!(stripped.render(), original.clone(), "foreign bytes changed");
        }
        let mut last = ExportsFile::parse(&current, dialect).unwrap();
        for key in model.keys().rev() {
            prop_assert!(last.remove_block(&key.project, key.uid));
        }
        prop_assert_eq!(last.render(), original);
    }
}
