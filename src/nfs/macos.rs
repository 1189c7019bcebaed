//! What only macOS's NFS server needs: export paths written on the data volume, and one line per
//! filesystem and client.
//!
//! Since Catalina the system volume is read-only and user data lives on a second APFS volume
//! mounted at `/System/Volumes/Data`; `/usr/share/firmlinks` makes directories such as `/Users`
//! appear at their familiar place. nfsd resolves an export to the real volume and refuses a path
//! seen through a firmlink ("exported dir/fs mismatch"), so devenv writes the data-volume path.
//! nfsd also wants every directory of one filesystem that goes to one client with the same
//! options on a single line; [`merge_lines`] folds devenv's own lines that way.
//!
//! Everything here is pure: the firmlinks text and the filesystem of a path are passed in, so
//! tests run on any OS. Word splitting follows BSD mountd (blanks separate words, a trailing
//! backslash continues a line) plus the double quotes and `\ooo` escapes that
//! [`escape_path`](super::escape_path) writes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::Hash;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where macOS lists its firmlinks.
pub const FIRMLINKS_FILE: &str = "/usr/share/firmlinks";

/// The mount point of the writable data volume that firmlinks point into.
pub const DATA_VOLUME: &str = "/System/Volumes/Data";

/// One firmlink: `source` on the system volume is the directory `target` (relative) of the data
/// volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmlink {
    pub source: PathBuf,
    pub target: PathBuf,
}

/// Reads the text of `/usr/share/firmlinks`: one `<absolute source>\t<relative target>` per line.
/// Lines that do not have that shape are skipped rather than trusted.
pub fn parse_firmlinks(text: &str) -> Vec<Firmlink> {
    text.lines()
        .filter_map(|line| {
            let (source, target) = line.split_once('\t')?;
            let (source, target) = (source.trim(), target.trim());
            let source = Path::new(source);
            let target = Path::new(target.trim_start_matches('/'));
            (source.is_absolute() && source.parent().is_some() && !target.as_os_str().is_empty())
                .then(|| Firmlink {
                    source: source.to_path_buf(),
                    target: target.to_path_buf(),
                })
        })
        .collect()
}

/// The path nfsd accepts for `path`: when `path` lies under a firmlink (compared by components,
/// so `/Usersfoo` is not under `/Users`), the same directory on the data volume; otherwise
/// `path` unchanged. The longest matching firmlink wins. `firmlinks` is the text of
/// [`FIRMLINKS_FILE`].
pub fn resolve_firmlinks(path: &Path, firmlinks: &str) -> PathBuf {
    if path.starts_with(DATA_VOLUME) {
        return path.to_path_buf();
    }
    parse_firmlinks(firmlinks)
        .into_iter()
        .filter(|link| path.starts_with(&link.source))
        .max_by_key(|link| link.source.components().count())
        .map(|link| {
            let rest = path
                .strip_prefix(&link.source)
                .expect("starts_with was checked");
            let mut out = Path::new(DATA_VOLUME).join(&link.target);
            if !rest.as_os_str().is_empty() {
                out.push(rest);
            }
            out
        })
        .unwrap_or_else(|| path.to_path_buf())
}

/// `path` as seen from the system volume (`/System/Volumes/Data/Users/ann` → `/Users/ann`), so
/// that two spellings of one directory compare equal when looking for overlapping exports.
pub fn strip_data_volume(path: &Path) -> PathBuf {
    match path.strip_prefix(DATA_VOLUME) {
        Ok(rest) => Path::new("/").join(rest),
        Err(_) => path.to_path_buf(),
    }
}

/// Folds devenv's export lines so that the directories of one filesystem that go to the same
/// client with the same options share one line: `"/p1" "/p2" -alldirs -mapall=501:20 <client>`.
///
/// `filesystem_of` names the filesystem of a path (on the host: the `st_dev` of its metadata);
/// only lines whose first paths are on the same filesystem are merged, since nfsd rejects a line
/// that spans filesystems. Merged lines take the place of the first line of their group; paths
/// keep their order and appear once. Lines that cannot be read as an export (no absolute first
/// path, an open quote) are kept verbatim. Two groups of one filesystem and client with
/// *different* options still conflict in nfsd; that is for the caller to avoid.
pub fn merge_lines<K, F>(lines: &[String], mut filesystem_of: F) -> Vec<String>
where
    K: Eq + Hash,
    F: FnMut(&Path) -> K,
{
    enum Slot {
        Verbatim(String),
        Group(usize),
    }
    struct Group {
        paths: Vec<(Vec<u8>, String)>,
        rest: String,
    }

    let mut slots = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(K, String), usize> = HashMap::new();
    for line in lines {
        let words = split_words(line.as_bytes());
        let path_count = words
            .words
            .iter()
            .take_while(|w| w.text.first() == Some(&b'/'))
            .count();
        if words.unterminated_quote || path_count == 0 {
            slots.push(Slot::Verbatim(line.clone()));
            continue;
        }
        let rest = words.words[path_count..]
            .iter()
            .map(|w| String::from_utf8_lossy(&w.raw).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let fs = filesystem_of(path_of(&words.words[0].text));
        let id = *index.entry((fs, rest.clone())).or_insert_with(|| {
            groups.push(Group {
                paths: Vec::new(),
                rest,
            });
            slots.push(Slot::Group(groups.len() - 1));
            groups.len() - 1
        });
        for w in &words.words[..path_count] {
            let group = &mut groups[id];
            if !group.paths.iter().any(|(text, _)| *text == w.text) {
                let raw = String::from_utf8_lossy(&w.raw).into_owned();
                group.paths.push((w.text.clone(), raw));
            }
        }
    }
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Verbatim(line) => line,
            Slot::Group(id) => {
                let group = &groups[id];
                let mut out = group
                    .paths
                    .iter()
                    .map(|(_, raw)| raw.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                if !group.rest.is_empty() {
                    out.push(' ');
                    out.push_str(&group.rest);
                }
                out
            }
        })
        .collect()
}

fn path_of(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// One word of a macOS export line: as written, and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) raw: Vec<u8>,
    pub(crate) text: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Words {
    pub(crate) words: Vec<Word>,
    pub(crate) unterminated_quote: bool,
}

/// Splits one logical line into words: blanks (space, tab) separate words outside double quotes;
/// `\ooo` is the byte with that octal value and a backslash before any other byte keeps that byte.
pub(crate) fn split_words(line: &[u8]) -> Words {
    let mut words = Vec::new();
    let mut i = 0;
    let mut quoted = false;
    while i < line.len() {
        while i < line.len() && matches!(line[i], b' ' | b'\t') {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let start = i;
        let mut text = Vec::new();
        while i < line.len() && (quoted || !matches!(line[i], b' ' | b'\t')) {
            match line[i] {
                b'"' => {
                    quoted = !quoted;
                    i += 1;
                }
                b'\\' => {
                    let digits = &line[i + 1..line.len().min(i + 4)];
                    if digits.len() == 3 && digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                        let value = digits
                            .iter()
                            .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                        // `\400` and above do not fit a byte: keep the text as written.
                        if let Ok(byte) = u8::try_from(value) {
                            text.push(byte);
                        } else {
                            text.extend_from_slice(&line[i..i + 4]);
                        }
                        i += 4;
                    } else if i + 1 < line.len() {
                        text.push(line[i + 1]);
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                b => {
                    text.push(b);
                    i += 1;
                }
            }
        }
        words.push(Word {
            raw: line[start..i].to_vec(),
            text,
        });
    }
    Words {
        words,
        unterminated_quote: quoted,
    }
}

/// A line as nfsd reads it after joining continuations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logical {
    /// Indices of the physical lines it is made of, first to last.
    pub(crate) lines: Vec<usize>,
    pub(crate) text: Vec<u8>,
}

impl Logical {
    pub(crate) fn is_comment(&self) -> bool {
        self.text.first() == Some(&b'#')
    }
}

/// Joins physical lines (without their `\n`) the way BSD mountd's `get_line` does: trailing
/// blanks and backslashes are cut, a cut backslash continues the line with the next physical line
/// (whatever it holds, even a comment), blank lines between logical lines are skipped, and a
/// blank line ends a continuation. Leading blanks are dropped. A carriage return before the `\n`
/// is treated as part of the line ending.
pub(crate) fn logical_lines(lines: &[&[u8]]) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let mut text = Vec::new();
        let mut members = Vec::new();
        loop {
            let line = lines[i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let mut end = line.len();
            let mut continued = false;
            while end > 0 && matches!(line[end - 1], b' ' | b'\t' | b'\\') {
                continued |= line[end - 1] == b'\\';
                end -= 1;
            }
            if end > 0 || continued {
                members.push(i);
            }
            text.extend_from_slice(&line[..end]);
            i += 1;
            if continued && !text.is_empty() {
                text.push(b' ');
            }
            let accumulated = text.iter().any(|b| !matches!(b, b' ' | b'\t'));
            if i == lines.len() || (accumulated && !continued) {
                break;
            }
        }
        let start = text
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(text.len());
        let end = text
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t'))
            .map_or(start, |last| last + 1);
        let text = text[start..end.max(start)].to_vec();
        if !text.is_empty() {
            out.push(Logical {
                lines: members,
                text,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs::escape_path;

    const FIRMLINKS: &str = "/AppleInternal\tAppleInternal\n\
        /Applications\tApplications\n\
        /Library\tLibrary\n\
        /System/Library/Caches\tSystem/Library/Caches\n\
        /Users\tUsers\n\
        /Volumes\tVolumes\n\
        /opt\topt\n\
        /private\tprivate\n\
        /usr/local\tusr/local\n";

    #[test]
    fn a_path_under_a_firmlink_is_rewritten_to_the_data_volume() {
        assert_eq!(
            resolve_firmlinks(Path::new("/Users/ann/src/shop"), FIRMLINKS),
            Path::new("/System/Volumes/Data/Users/ann/src/shop")
        );
        assert_eq!(
            resolve_firmlinks(Path::new("/usr/local/src"), FIRMLINKS),
            Path::new("/System/Volumes/Data/usr/local/src")
        );
    }

    #[test]
    fn the_firmlink_itself_is_rewritten() {
        assert_eq!(
            resolve_firmlinks(Path::new("/Users"), FIRMLINKS),
            Path::new("/System/Volumes/Data/Users")
        );
    }

    #[test]
    fn the_longest_firmlink_wins() {
        let links = "/System\tSystem\n/System/Library/Caches\tCaches-elsewhere\n";
        assert_eq!(
            resolve_firmlinks(Path::new("/System/Library/Caches/x"), links),
            Path::new("/System/Volumes/Data/Caches-elsewhere/x")
        );
    }

    #[test]
    fn firmlinks_match_whole_components_only() {
        assert_eq!(
            resolve_firmlinks(Path::new("/Usersfoo/ann"), FIRMLINKS),
            Path::new("/Usersfoo/ann")
        );
        assert_eq!(
            resolve_firmlinks(Path::new("/usr/localx"), FIRMLINKS),
            Path::new("/usr/localx")
        );
    }

    #[test]
    fn paths_outside_firmlinks_and_on_the_data_volume_stay_as_they_are() {
        assert_eq!(
            resolve_firmlinks(Path::new("/tmp/x"), FIRMLINKS),
            Path::new("/tmp/x")
        );
        assert_eq!(
            resolve_firmlinks(Path::new("/System/Volumes/Data/Users/ann"), FIRMLINKS),
            Path::new("/System/Volumes/Data/Users/ann")
        );
    }

    #[test]
    fn malformed_firmlink_lines_are_ignored() {
        let links = "garbage\n\n/Users Users\nrelative\tx\n/\troot\n/Users\tUsers\n";
        assert_eq!(
            parse_firmlinks(links),
            vec![Firmlink {
                source: "/Users".into(),
                target: "Users".into()
            }]
        );
    }

    #[test]
    fn an_empty_firmlinks_file_rewrites_nothing() {
        assert_eq!(
            resolve_firmlinks(Path::new("/Users/ann"), ""),
            Path::new("/Users/ann")
        );
    }

    #[test]
    fn stripping_the_data_volume_gives_the_system_volume_spelling() {
        assert_eq!(
            strip_data_volume(Path::new("/System/Volumes/Data/Users/ann")),
            Path::new("/Users/ann")
        );
        assert_eq!(
            strip_data_volume(Path::new("/Users/ann")),
            Path::new("/Users/ann")
        );
    }

    fn line(path: &str, client: &str) -> String {
        format!("{} -alldirs -mapall=501:20 {client}", escape_path(path))
    }

    #[test]
    fn lines_of_one_filesystem_and_client_become_one_line() {
        let lines = [
            line("/System/Volumes/Data/Users/ann/shop", "192.168.64.2"),
            line("/System/Volumes/Data/Users/ann/lib", "192.168.64.2"),
        ];
        assert_eq!(
            merge_lines(&lines, |_| 1),
            vec![
                "\"/System/Volumes/Data/Users/ann/shop\" \"/System/Volumes/Data/Users/ann/lib\" \
                 -alldirs -mapall=501:20 192.168.64.2"
                    .to_string()
            ]
        );
    }

    #[test]
    fn lines_for_different_clients_or_options_stay_apart() {
        let lines = [
            line("/a", "192.168.64.2"),
            line("/b", "192.168.64.3"),
            "\"/c\" -ro 192.168.64.2".to_string(),
        ];
        assert_eq!(merge_lines(&lines, |_| 1), lines.to_vec());
    }

    #[test]
    fn lines_on_different_filesystems_stay_apart() {
        let lines = [line("/a/x", "192.168.64.2"), line("/b/y", "192.168.64.2")];
        let merged = merge_lines(&lines, |p: &Path| p.starts_with("/a"));
        assert_eq!(merged, lines.to_vec());
    }

    #[test]
    fn a_merged_line_takes_the_place_of_its_first_member_and_lists_each_path_once() {
        let lines = [
            line("/a", "192.168.64.2"),
            line("/other", "192.168.64.9"),
            line("/b", "192.168.64.2"),
            line("/a", "192.168.64.2"),
        ];
        assert_eq!(
            merge_lines(&lines, |_| ()),
            vec![
                "\"/a\" \"/b\" -alldirs -mapall=501:20 192.168.64.2".to_string(),
                line("/other", "192.168.64.9"),
            ]
        );
    }

    #[test]
    fn merging_keeps_subnet_clients_and_escaped_paths_as_written() {
        let client = "-network 192.168.64.0 -mask 255.255.255.0";
        let lines = [line("/a b", client), line("/c#d", client)];
        assert_eq!(
            merge_lines(&lines, |_| 0),
            vec![format!(
                "\"/a b\" \"/c\\043d\" -alldirs -mapall=501:20 {client}"
            )]
        );
    }

    #[test]
    fn lines_that_are_not_exports_are_kept_verbatim() {
        let lines = [
            "relative -alldirs 192.168.64.2".to_string(),
            "\"/open quote -alldirs".to_string(),
            String::new(),
        ];
        assert_eq!(merge_lines(&lines, |_| 0), lines.to_vec());
    }

    #[test]
    fn words_are_split_on_blanks_outside_quotes_and_escapes_are_decoded() {
        let w = split_words(b"  \"/a b\"\t/c\\ d /e\\043f \"/g\\134\" -x");
        let texts: Vec<&[u8]> = w.words.iter().map(|w| w.text.as_slice()).collect();
        assert_eq!(
            texts,
            vec![b"/a b".as_slice(), b"/c d", b"/e#f", b"/g\\", b"-x"]
        );
        assert!(!w.unterminated_quote);
        assert!(split_words(b"\"/a b").unterminated_quote);
    }

    #[test]
    fn escape_path_output_reads_back_as_the_same_path() {
        for path in [
            "/plain",
            "/with space",
            "/q\"uote",
            "/back\\slash",
            "/hash#",
            "/é",
        ] {
            let w = split_words(escape_path(path).as_bytes());
            assert_eq!(w.words.len(), 1);
            assert_eq!(w.words[0].text, path.as_bytes());
        }
    }

    fn logical(text: &str) -> Vec<(Vec<usize>, String)> {
        let lines: Vec<&[u8]> = text.split('\n').map(str::as_bytes).collect();
        logical_lines(&lines)
            .into_iter()
            .map(|l| (l.lines, String::from_utf8(l.text).unwrap()))
            .collect()
    }

    #[test]
    fn a_trailing_backslash_joins_the_next_line() {
        assert_eq!(
            logical("/a \\\n  -alldirs \\\n 10.0.0.1\n/b 10.0.0.2"),
            vec![
                (vec![0, 1, 2], "/a   -alldirs  10.0.0.1".to_string()),
                (vec![3], "/b 10.0.0.2".to_string())
            ]
        );
    }

    #[test]
    fn a_continuation_swallows_a_following_comment_line_like_mountd_does() {
        assert_eq!(
            logical("/a \\\n# note\n/b h"),
            vec![
                (vec![0, 1], "/a # note".to_string()),
                (vec![2], "/b h".to_string())
            ]
        );
    }

    #[test]
    fn blank_lines_are_skipped_and_end_a_continuation() {
        assert_eq!(
            logical("\n\n/a \\\n\n/b h\r\n"),
            vec![(vec![2], "/a".to_string()), (vec![4], "/b h".to_string())]
        );
    }
}
