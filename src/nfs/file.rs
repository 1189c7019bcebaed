//! `/etc/exports` as a file devenv shares with people and other tools (Vagrant, docker-machine-nfs,
//! older minikube, hand edits): [`ExportsFile`] reads the whole text, edits only devenv's own
//! blocks and writes every other byte back exactly as it was — comments, blank lines, continuation
//! lines, other tools' blocks, CRLF line endings, a missing final newline, bytes that are not
//! UTF-8. Removing a block devenv added gives back the file it was added to, byte for byte.
//!
//! The file also answers the questions devenv asks before writing: which directories are exported
//! and by whom ([`ExportsFile::entries`]), which foreign exports overlap the project's
//! ([`ExportsFile::conflicts`]), and whether the server will accept the file
//! ([`ExportsFile::check`]). For Linux the reading copies nfs-utils 2.6's `exportfs` (tokens,
//! quotes, `\ooo` escapes, `#` comments, `\` continuations, option keywords and client syntax),
//! checked against the real `exportfs` by the integration tests; for macOS it follows BSD mountd.
//! Nothing here touches the disk: the caller reads and writes the file.
//!
//! This file is the document (lines, devenv's blocks, edits); what it reports (errors, entries,
//! conflicts, line problems) is in `file/problems.rs`; each dialect's
//! reading and checks are in `file/linux.rs` (nfs-utils) and `file/mountd.rs` (macOS), the
//! client-scope rule in [`super::scope`], the specifications in `file/tests.rs`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use devenv_drivers::ExportsDialect;

use super::scope::check_client_scope;
use super::{begin_marker, end_marker, macos};

/// Which devenv block: one per project and user, so two developers sharing a machine (or one
/// developer with several projects) never edit each other's lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    pub project: String,
    pub uid: u32,
}

impl BlockKey {
    pub fn new(project: impl Into<String>, uid: u32) -> BlockKey {
        BlockKey {
            project: project.into(),
            uid,
        }
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "project {} (uid {})", self.project, self.uid)
    }
}

/// One physical line: its bytes without the `\n` (a CRLF line keeps its `\r` here) and whether
/// a `\n` follows. Keeping the `\r` in the text is what makes CRLF files round-trip exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    text: Vec<u8>,
    newline: bool,
}

impl Line {
    fn new(text: &str, crlf: bool) -> Line {
        let mut text = text.as_bytes().to_vec();
        if crlf {
            text.push(b'\r');
        }
        Line {
            text,
            newline: true,
        }
    }

    fn crlf(&self) -> bool {
        self.text.last() == Some(&b'\r')
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.text);
        if self.newline {
            out.push(b'\n');
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    key: BlockKey,
    begin: Line,
    body: Vec<Line>,
    end: Line,
}

impl Block {
    fn lines(&self) -> impl Iterator<Item = &Line> {
        std::iter::once(&self.begin)
            .chain(&self.body)
            .chain(std::iter::once(&self.end))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Foreign(Line),
    Block(Block),
}

enum Marker {
    Begin(BlockKey),
    End(BlockKey),
}

/// Reads a devenv marker. Only the exact text [`begin_marker`]/[`end_marker`] write counts
/// (trailing blanks and a CR aside): anything resembling it is someone's comment.
fn marker(text: &[u8]) -> Option<Marker> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.trim_end_matches([' ', '\t', '\r']);
    let (begin, rest) = if let Some(rest) = text.strip_prefix("# BEGIN devenv ") {
        (true, rest)
    } else {
        (false, text.strip_prefix("# END devenv ")?)
    };
    let (project, uid) = rest.rsplit_once(" uid=")?;
    let uid: u32 = uid.parse().ok()?;
    if !valid_project(project) {
        return None;
    }
    let canonical = if begin {
        begin_marker(project, uid)
    } else {
        end_marker(project, uid)
    };
    if canonical != text {
        return None;
    }
    let key = BlockKey::new(project, uid);
    Some(if begin {
        Marker::Begin(key)
    } else {
        Marker::End(key)
    })
}

fn valid_project(project: &str) -> bool {
    !project.is_empty() && !project.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An exports file: foreign lines kept verbatim and devenv's blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportsFile {
    dialect: ExportsDialect,
    items: Vec<Item>,
}

impl ExportsFile {
    /// Reads the whole text of an exports file.
    pub fn parse(text: &str, dialect: ExportsDialect) -> Result<ExportsFile, FileError> {
        ExportsFile::parse_bytes(text.as_bytes(), dialect)
    }

    /// Reads the whole file, whatever its encoding: foreign lines are kept as raw bytes.
    pub fn parse_bytes(bytes: &[u8], dialect: ExportsDialect) -> Result<ExportsFile, FileError> {
        let mut items = Vec::new();
        let mut open: Option<(BlockKey, usize, Line, Vec<Line>)> = None;
        let mut seen: HashMap<BlockKey, usize> = HashMap::new();
        for (index, line) in split_lines(bytes).into_iter().enumerate() {
            let no = index + 1;
            match (marker(&line.text), &mut open) {
                (Some(Marker::Begin(key)), Some((outer, outer_line, ..))) => {
                    return Err(FileError::Nested {
                        line: no,
                        key,
                        outer: outer.clone(),
                        outer_line: *outer_line,
                    });
                }
                (Some(Marker::Begin(key)), None) => {
                    if let Some(&first_line) = seen.get(&key) {
                        return Err(FileError::Duplicate {
                            line: no,
                            key,
                            first_line,
                        });
                    }
                    seen.insert(key.clone(), no);
                    open = Some((key, no, line, Vec::new()));
                }
                (Some(Marker::End(key)), None) => {
                    return Err(FileError::StrayEnd { line: no, key });
                }
                (Some(Marker::End(key)), Some((open_key, open_line, ..))) if key != *open_key => {
                    return Err(FileError::MismatchedEnd {
                        line: no,
                        key,
                        open: open_key.clone(),
                        open_line: *open_line,
                    });
                }
                (Some(Marker::End(_)), Some(_)) => {
                    let (key, _, begin, body) = open.take().expect("matched Some");
                    items.push(Item::Block(Block {
                        key,
                        begin,
                        body,
                        end: line,
                    }));
                }
                (None, Some((.., body))) => body.push(line),
                (None, None) => items.push(Item::Foreign(line)),
            }
        }
        if let Some((key, line, ..)) = open {
            return Err(FileError::Unterminated { line, key });
        }
        Ok(ExportsFile { dialect, items })
    }

    pub fn dialect(&self) -> ExportsDialect {
        self.dialect
    }

    /// devenv's blocks, in file order.
    pub fn blocks(&self) -> Vec<BlockKey> {
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Block(block) => Some(block.key.clone()),
                Item::Foreign(_) => None,
            })
            .collect()
    }

    /// The lines between the markers of a block, without line endings.
    pub fn block_lines(&self, project: &str, uid: u32) -> Option<Vec<String>> {
        let block = self.block(&BlockKey::new(project, uid))?;
        Some(
            block
                .body
                .iter()
                .map(|line| {
                    let text = line.text.strip_suffix(b"\r").unwrap_or(&line.text);
                    String::from_utf8_lossy(text).into_owned()
                })
                .collect(),
        )
    }

    /// Makes the block of `project` and `uid` hold exactly `lines`; returns whether the text
    /// changed. An existing block is updated where it is, with its own line ending. A new one is
    /// appended at the end with the file's line ending; when the file does not end with a line
    /// break, the break the block needs before it is added and the block gets none after it, so
    /// that [`remove_block`](Self::remove_block) can give back the original bytes.
    ///
    /// # Panics
    /// When [`try_set_block`](Self::try_set_block) would refuse: a project name with blanks or
    /// control characters (devenv.toml only allows DNS labels) or a line holding a line break
    /// or a devenv marker (lines from [`export_line`](super::export_line) never do).
    pub fn set_block(&mut self, project: &str, uid: u32, lines: &[String]) -> bool {
        match self.try_set_block(project, uid, lines) {
            Ok(changed) => changed,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`set_block`](Self::set_block) for a project name or lines that may not be writable.
    pub fn try_set_block(
        &mut self,
        project: &str,
        uid: u32,
        lines: &[String],
    ) -> Result<bool, FileError> {
        if !valid_project(project) {
            return Err(FileError::InvalidProject {
                project: project.to_string(),
            });
        }
        if let Some(bad) = lines
            .iter()
            .find(|l| l.contains(['\n', '\r']) || marker(l.as_bytes()).is_some())
        {
            return Err(FileError::InvalidLine { line: bad.clone() });
        }
        let key = BlockKey::new(project, uid);
        let dialect = self.dialect;
        if let Some(index) = self.block_index(&key) {
            let Item::Block(block) = &mut self.items[index] else {
                unreachable!("block_index finds blocks");
            };
            let crlf = block.begin.crlf();
            let body: Vec<Line> = lines.iter().map(|l| Line::new(l, crlf)).collect();
            if block.body == body {
                return Ok(false);
            }
            // What someone added inside the block is theirs: it goes on right after the block,
            // in its order, instead of being replaced with devenv's lines.
            let foreign: Vec<Line> = std::mem::take(&mut block.body)
                .into_iter()
                .filter(|line| !written_by_devenv(dialect, &line.text))
                .collect();
            block.body = body;
            let after = index + 1;
            self.items
                .splice(after..after, foreign.into_iter().map(Item::Foreign));
            return Ok(true);
        }
        // Blocks appended one after the other to a file without a final line break share the
        // first one's line ending: the break each adds before itself is then the one any of them
        // strips again, whichever is removed first.
        let crlf = match self.items.last() {
            Some(Item::Block(last)) if !last.end.newline => last.begin.crlf(),
            _ => self.uses_crlf(),
        };
        let mut block = Block {
            begin: Line::new(&begin_marker(project, uid), crlf),
            body: lines.iter().map(|l| Line::new(l, crlf)).collect(),
            end: Line::new(&end_marker(project, uid), crlf),
            key,
        };
        if let Some(last) = self.last_line_mut().filter(|last| !last.newline) {
            last.newline = true;
            if crlf {
                last.text.push(b'\r');
                block.end.text.pop();
            }
            block.end.newline = false;
        }
        self.items.push(Item::Block(block));
        Ok(true)
    }

    /// Removes the block of `project` and `uid`; returns whether there was one. A block that
    /// ends the file without a final line break takes the line break before it along, which is
    /// the one [`set_block`](Self::set_block) added.
    pub fn remove_block(&mut self, project: &str, uid: u32) -> bool {
        let Some(index) = self.block_index(&BlockKey::new(project, uid)) else {
            return false;
        };
        let Item::Block(block) = self.items.remove(index) else {
            unreachable!("position matched a block");
        };
        let mut foreign: Vec<Line> = block
            .body
            .iter()
            .filter(|line| !written_by_devenv(self.dialect, &line.text))
            .cloned()
            .collect();
        if let Some(last) = foreign.last_mut() {
            // Someone's lines stay where the block was; the file ends as the block ended.
            last.newline = block.end.newline;
            self.items
                .splice(index..index, foreign.into_iter().map(Item::Foreign));
            return true;
        }
        if !block.end.newline
            && let Some(last) = self.last_line_mut()
        {
            last.newline = false;
            if block.begin.crlf() && last.crlf() {
                last.text.pop();
            }
        }
        true
    }

    /// The file as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (line, _) in self.lines() {
            line.write_to(&mut out);
        }
        out
    }

    /// The file as text; exact for every file read with [`parse`](Self::parse) (bytes that are
    /// not UTF-8 become U+FFFD here: use [`to_bytes`](Self::to_bytes) to keep them).
    pub fn render(&self) -> String {
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }

    /// Every exported directory, foreign or devenv's, in file order, as the server reads the
    /// file (continuations joined, quotes and escapes decoded). Exports after a spot where
    /// exportfs stops reading are still listed: [`check`](Self::check) reports that spot.
    pub fn entries(&self) -> Vec<Entry> {
        let owners = self.owners();
        let owner = |line: usize| owners.get(line - 1).cloned().flatten();
        match self.dialect {
            ExportsDialect::Linux => linux::scan(&self.to_bytes())
                .into_iter()
                .filter_map(|event| match event {
                    linux::Event::Export(export) => Some(Entry {
                        line: export.path.line,
                        path: path_from(&export.path.bytes),
                        rest: export.words.iter().map(|w| lossy(&w.bytes)).collect(),
                        block: owner(export.path.line),
                    }),
                    linux::Event::Stop { .. } => None,
                })
                .collect(),
            ExportsDialect::MacOs => self
                .mac_exports()
                .into_iter()
                .flat_map(|export| {
                    let line = export.line;
                    let block = owner(line);
                    let rest: Vec<String> = export.rest.iter().map(|w| lossy(w)).collect();
                    export.paths.into_iter().map(move |path| Entry {
                        line,
                        path: path_from(&path),
                        rest: rest.clone(),
                        block: block.clone(),
                    })
                })
                .collect(),
        }
    }

    /// Exports outside the block of `project`/`uid` whose directory is `path`, contains it or
    /// lies inside it (compared by whole components: `/a/b` and `/a/bc` do not overlap). On
    /// macOS a path and its `/System/Volumes/Data` spelling are the same directory. Other
    /// devenv projects' blocks count as foreign.
    pub fn conflicts(&self, path: &Path, project: &str, uid: u32) -> Vec<Conflict> {
        let key = BlockKey::new(project, uid);
        let ours = self.comparable(path);
        self.entries()
            .into_iter()
            .filter(|entry| entry.block.as_ref() != Some(&key) && entry.path.is_absolute())
            .filter_map(|entry| {
                let theirs = self.comparable(&entry.path);
                let overlap = if theirs == ours {
                    Overlap::Same
                } else if ours.starts_with(&theirs) {
                    Overlap::Contains
                } else if theirs.starts_with(&ours) {
                    Overlap::Inside
                } else {
                    return None;
                };
                Some(conflict(entry, overlap, path))
            })
            .collect()
    }

    /// What the NFS server would reject in this file, or silently ignore, plus devenv's own
    /// lines that export beyond [`check_client_scope`]. Empty when the file is fine. Line
    /// numbers are the file's own (exportfs's messages count fewer lines after blank or comment
    /// lines). Relative paths are reported even where exportfs would find them relative to its
    /// working directory.
    pub fn check(&self) -> Vec<LineProblem> {
        match self.dialect {
            ExportsDialect::Linux => self.check_linux(),
            ExportsDialect::MacOs => self.check_macos(),
        }
    }

    /// The lines inside the block of `project` and `uid` that devenv did not write (a comment,
    /// an export someone added by hand), with their line numbers: [`set_block`](Self::set_block)
    /// and [`remove_block`](Self::remove_block) keep them, outside the block.
    pub fn foreign_in_block(&self, project: &str, uid: u32) -> Vec<(usize, String)> {
        let key = BlockKey::new(project, uid);
        self.lines()
            .enumerate()
            .filter(|(_, (line, owner))| {
                owner.is_some_and(|k| *k == key)
                    && marker(&line.text).is_none()
                    && !written_by_devenv(self.dialect, &line.text)
            })
            .map(|(index, (line, _))| {
                let text = line.text.strip_suffix(b"\r").unwrap_or(&line.text);
                (index + 1, lossy(text))
            })
            .collect()
    }

    fn block_index(&self, key: &BlockKey) -> Option<usize> {
        self.items
            .iter()
            .position(|item| matches!(item, Item::Block(b) if b.key == *key))
    }

    fn block(&self, key: &BlockKey) -> Option<&Block> {
        self.items.iter().find_map(|item| match item {
            Item::Block(block) if block.key == *key => Some(block),
            _ => None,
        })
    }

    /// The file's line ending is that of its first complete line.
    fn uses_crlf(&self) -> bool {
        self.lines()
            .find(|(line, _)| line.newline)
            .is_some_and(|(line, _)| line.crlf())
    }

    fn last_line_mut(&mut self) -> Option<&mut Line> {
        match self.items.last_mut()? {
            Item::Foreign(line) => Some(line),
            Item::Block(block) => Some(&mut block.end),
        }
    }

    /// Every physical line with the block it belongs to (markers included).
    fn lines(&self) -> impl Iterator<Item = (&Line, Option<&BlockKey>)> {
        self.items
            .iter()
            .flat_map(|item| -> Box<dyn Iterator<Item = _>> {
                match item {
                    Item::Foreign(line) => Box::new(std::iter::once((line, None))),
                    Item::Block(block) => {
                        Box::new(block.lines().map(move |l| (l, Some(&block.key))))
                    }
                }
            })
    }

    fn owners(&self) -> Vec<Option<BlockKey>> {
        self.lines().map(|(_, key)| key.cloned()).collect()
    }

    fn comparable(&self, path: &Path) -> PathBuf {
        match self.dialect {
            ExportsDialect::Linux => path.components().collect(),
            ExportsDialect::MacOs => {
                macos::strip_data_volume(&path.components().collect::<PathBuf>())
            }
        }
    }
}

fn conflict(entry: Entry, overlap: Overlap, ours: &Path) -> Conflict {
    let theirs = entry.path.display();
    let whose = match &entry.block {
        None => String::new(),
        Some(key) => format!(
            " in devenv's block for project {} (uid {})",
            key.project, key.uid
        ),
    };
    let line = entry.line;
    let ours = ours.display();
    let what = match overlap {
        Overlap::Same => format!("line {line} already exports {theirs}{whose}"),
        Overlap::Contains => format!("line {line} exports {theirs}{whose}, which contains {ours}"),
        Overlap::Inside => format!("line {line} exports {theirs}{whose}, which is inside {ours}"),
    };
    let fix = match &entry.block {
        None => "remove that line or export a different directory",
        Some(_) => "run `devenv down --purge` in that project or export a different directory",
    };
    Conflict {
        line,
        path: entry.path.clone(),
        overlap,
        message: format!("{what}: {fix}"),
        block: entry.block,
    }
}

/// Whether a line has the shape of the lines devenv writes into its blocks
/// ([`export_line_with`](super::export_line_with)): a quoted path, then on Linux one client with
/// exactly devenv's options, on macOS `-alldirs`, an optional `-ro`, `-mapall=uid:gid` and one
/// host or network. Anything else inside a block (a comment, a blank line, an export with other
/// options) was put there by someone else.
fn written_by_devenv(dialect: ExportsDialect, line: &[u8]) -> bool {
    let Ok(line) = std::str::from_utf8(line.strip_suffix(b"\r").unwrap_or(line)) else {
        return false;
    };
    // escape_path writes `"` inside a path as `\042`, so the first `"` after the opening one
    // closes the path.
    let Some(rest) = line.strip_prefix('"').and_then(|r| r.split_once('"')) else {
        return false;
    };
    let (path, rest) = rest;
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if path.is_empty() {
        return false;
    }
    match dialect {
        ExportsDialect::Linux => {
            let Some((client, options)) = rest
                .strip_prefix(' ')
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| r.split_once('('))
            else {
                return false;
            };
            let Some(ids) = options
                .strip_prefix("rw,")
                .or_else(|| options.strip_prefix("ro,"))
                .and_then(|o| o.strip_prefix("async,no_subtree_check,all_squash,anonuid="))
            else {
                return false;
            };
            plain(client)
                && ids
                    .split_once(",anongid=")
                    .is_some_and(|(uid, gid)| number(uid) && number(gid))
        }
        ExportsDialect::MacOs => {
            // Directories of one file system may share a line (`macos::merge_lines`).
            let mut rest = rest;
            while let Some((more, after)) = rest.strip_prefix(" \"").and_then(|r| r.split_once('"'))
            {
                if more.is_empty() {
                    return false;
                }
                rest = after;
            }
            let Some(rest) = rest.strip_prefix(" -alldirs") else {
                return false;
            };
            let rest = rest.strip_prefix(" -ro").unwrap_or(rest);
            let Some((ids, who)) = rest
                .strip_prefix(" -mapall=")
                .and_then(|r| r.split_once(' '))
            else {
                return false;
            };
            let host = who.split_once(" -mask ").map_or_else(
                || plain(who),
                |(net, mask)| net.strip_prefix("-network ").is_some_and(plain) && plain(mask),
            );
            host && ids
                .split_once(':')
                .is_some_and(|(uid, gid)| number(uid) && number(gid))
        }
    }
}

fn split_lines(bytes: &[u8]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            lines.push(Line {
                text: bytes[start..i].to_vec(),
                newline: true,
            });
            start = i + 1;
        }
    }
    if start < bytes.len() {
        lines.push(Line {
            text: bytes[start..].to_vec(),
            newline: false,
        });
    }
    lines
}

fn trim_blanks(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn path_from(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

mod linux;
mod mountd;
mod problems;

pub use problems::{Conflict, Entry, FileError, LineProblem, Overlap};

#[cfg(test)]
mod tests;
