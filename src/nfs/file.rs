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

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use devenv_drivers::ExportsDialect;

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

/// Why devenv will not edit a file. Only devenv's own markers can cause these: whatever else
/// the file holds is someone else's and is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// A begin marker with no end marker after it: devenv cannot tell where its lines stop.
    #[error("line {line}: devenv's block for {key} has no end marker `{}`", end_marker(&.key.project, .key.uid))]
    Unterminated { line: usize, key: BlockKey },
    /// An end marker that closes nothing.
    #[error("line {line}: end marker of devenv's block for {key} without a begin marker before it")]
    StrayEnd { line: usize, key: BlockKey },
    /// A block that begins inside another one.
    #[error(
        "line {line}: devenv's block for {key} begins inside the block for {outer} opened on line {outer_line}"
    )]
    Nested {
        line: usize,
        key: BlockKey,
        outer: BlockKey,
        outer_line: usize,
    },
    /// An end marker for another block than the open one.
    #[error(
        "line {line}: end marker for {key} inside the block for {open} opened on line {open_line}"
    )]
    MismatchedEnd {
        line: usize,
        key: BlockKey,
        open: BlockKey,
        open_line: usize,
    },
    /// Two blocks for one project and user: devenv would not know which one to update.
    #[error("line {line}: second devenv block for {key} (the first begins on line {first_line})")]
    Duplicate {
        line: usize,
        key: BlockKey,
        first_line: usize,
    },
    /// A project name a marker cannot carry: it would not be read back as the same marker.
    #[error(
        "project name {project:?} cannot be written in an exports marker: it must be non-empty, without blanks or control characters"
    )]
    InvalidProject { project: String },
    /// A line for the block that would change the block's structure when read back.
    #[error("export line {line:?} holds a line break or a devenv marker")]
    InvalidLine { line: String },
}

impl FileError {
    /// The 1-based line of the file the error is about, when it is about the file.
    pub fn line(&self) -> Option<usize> {
        match self {
            FileError::Unterminated { line, .. }
            | FileError::StrayEnd { line, .. }
            | FileError::Nested { line, .. }
            | FileError::MismatchedEnd { line, .. }
            | FileError::Duplicate { line, .. } => Some(*line),
            FileError::InvalidProject { .. } | FileError::InvalidLine { .. } => None,
        }
    }
}

/// One exported directory as the NFS server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line where the path is written (continuations make an entry span several lines).
    pub line: usize,
    /// The directory, with quotes removed and `\ooo` escapes decoded.
    pub path: PathBuf,
    /// The words after the path(s), decoded: Linux `client(options)` and `-defaults`; macOS
    /// options and hosts.
    pub rest: Vec<String>,
    /// The devenv block the entry is written in, if any.
    pub block: Option<BlockKey>,
}

/// How a foreign export overlaps the directory devenv wants to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The same directory.
    Same,
    /// A parent directory of devenv's.
    Contains,
    /// A directory below devenv's.
    Inside,
}

/// A foreign export that overlaps devenv's. devenv reports it and never changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub line: usize,
    pub path: PathBuf,
    pub overlap: Overlap,
    /// Set when the export belongs to another devenv project or user.
    pub block: Option<BlockKey>,
    /// What the line does and what to do about it.
    pub message: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Something the NFS server would reject or silently ignore, or one of devenv's lines that
/// exports further than devenv allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub line: usize,
    /// Set when the line is in a devenv block: problems outside devenv's blocks are the file
    /// owner's to fix, but still make the server reject the file.
    pub block: Option<BlockKey>,
    pub message: String,
    /// devenv blocks whose exports the server never reads because of this problem, wherever
    /// it is: exportfs stops reading the file at it (a blank CRLF line is enough), a quote left
    /// open runs into the block, or nfsd joins the line with one of the block's.
    pub hides: Vec<BlockKey>,
}

impl LineProblem {
    /// Whether the problem is on a line of the block of `project` and `uid`.
    pub fn in_devenv_block(&self, project: &str, uid: u32) -> bool {
        self.block
            .as_ref()
            .is_some_and(|key| key.project == project && key.uid == uid)
    }

    /// Whether the problem breaks the exports of the block of `project` and `uid`: it is on
    /// one of the block's lines or keeps the server from reading them.
    pub fn affects(&self, project: &str, uid: u32) -> bool {
        self.in_devenv_block(project, uid)
            || self
                .hides
                .iter()
                .any(|key| key.project == project && key.uid == uid)
    }
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why a client is outside what devenv may export to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("{client:?} exports to every host: use the VM's address or its host-only subnet")]
    Everyone { client: String },
    #[error(
        "{client:?} is not an IPv4 address or subnet: devenv exports only to the VM's address or its host-only subnet"
    )]
    NotIpv4 { client: String },
    #[error("{client} is not the address of a single host")]
    NotAHost { client: String },
    #[error(
        "{client} is not inside the private ranges 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16: devenv never exports to a public network"
    )]
    Public { client: String },
}

/// The scope rule for devenv's own exports (and for a client override in devenv.toml): a single
/// IPv4 host address (`192.168.39.12`) or a subnet inside a private range (`192.168.64.0/24`,
/// `10.0.0.0/255.0.0.0`) — never `*`, a host name, a netgroup or a public network.
pub fn check_client_scope(client: &str) -> Result<(), ScopeError> {
    let everyone = || ScopeError::Everyone {
        client: client.to_string(),
    };
    let not_ipv4 = || ScopeError::NotIpv4 {
        client: client.to_string(),
    };
    if client.is_empty() || client == "*" {
        return Err(everyone());
    }
    let (address, prefix) = match client.split_once('/') {
        None => (client.parse::<Ipv4Addr>().map_err(|_| not_ipv4())?, 32),
        Some((address, mask)) => {
            let address = address.parse::<Ipv4Addr>().map_err(|_| not_ipv4())?;
            let prefix = if mask.contains('.') {
                let mask = u32::from(mask.parse::<Ipv4Addr>().map_err(|_| not_ipv4())?);
                if mask.leading_ones() + mask.trailing_zeros() != 32 {
                    return Err(not_ipv4());
                }
                mask.leading_ones()
            } else if !mask.is_empty()
                && mask.len() <= 2
                && mask.bytes().all(|b| b.is_ascii_digit())
            {
                mask.parse::<u32>().map_err(|_| not_ipv4())?
            } else {
                return Err(not_ipv4());
            };
            if prefix > 32 {
                return Err(not_ipv4());
            }
            (address, prefix)
        }
    };
    if prefix == 0 {
        return Err(everyone());
    }
    if prefix == 32
        && (address.is_unspecified() || address.is_broadcast() || address.is_multicast())
    {
        return Err(ScopeError::NotAHost {
            client: client.to_string(),
        });
    }
    // A single host must be private too: a VM on a host-only network never has a public address.
    let network = u32::from(address) & (u32::MAX << (32 - prefix));
    let private = [
        (Ipv4Addr::new(10, 0, 0, 0), 8),
        (Ipv4Addr::new(172, 16, 0, 0), 12),
        (Ipv4Addr::new(192, 168, 0, 0), 16),
    ];
    let inside = private.iter().any(|&(range, bits)| {
        prefix >= bits && network & (u32::MAX << (32 - bits)) == u32::from(range)
    });
    if inside {
        Ok(())
    } else {
        Err(ScopeError::Public {
            client: client.to_string(),
        })
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

    fn check_linux(&self) -> Vec<LineProblem> {
        let owners = self.owners();
        let owner = |line: usize| owners.get(line - 1).cloned().flatten();
        let events = linux::scan(&self.to_bytes());
        let exports: Vec<(usize, Option<BlockKey>)> = events
            .iter()
            .filter_map(|e| match e {
                linux::Event::Export(export) => Some((export.path.line, owner(export.path.line))),
                linux::Event::Stop { .. } => None,
            })
            .collect();
        let hidden = |hides: Hides| -> Vec<BlockKey> {
            let mut keys: Vec<BlockKey> = match hides {
                Hides::Nothing => vec![],
                Hides::After(line) => exports
                    .iter()
                    .filter(|(l, _)| *l > line)
                    .filter_map(|(_, key)| key.clone())
                    .collect(),
                Hides::Lines(first, last) => (first..=last).filter_map(owner).collect(),
            };
            keys.dedup();
            keys
        };
        let mut problems = Vec::new();
        let mut exported: HashMap<(PathBuf, String), usize> = HashMap::new();
        for event in &events {
            match event {
                linux::Event::Stop { line, kind } => {
                    let later = exports.iter().map(|(l, _)| *l).find(|l| l > line);
                    let message = match (kind, later) {
                        (linux::StopKind::ClientTooLong, _)
                        | (linux::StopKind::PathTooLong, None) => kind.describe().to_string(),
                        (_, Some(later)) => format!(
                            "{}, so exportfs stops reading the file here and ignores the exports from line {later} on",
                            kind.describe()
                        ),
                        (_, None) => continue,
                    };
                    problems.push(LineProblem {
                        line: *line,
                        block: owner(*line),
                        message,
                        hides: hidden(Hides::After(*line)),
                    });
                }
                linux::Event::Export(export) => {
                    let block = owner(export.path.line);
                    for (line, message, hides) in
                        linux_export_problems(export, &block, &mut exported)
                    {
                        problems.push(LineProblem {
                            line,
                            block: block.clone(),
                            message,
                            hides: hidden(hides),
                        });
                    }
                }
            }
        }
        problems
    }

    /// The logical lines of a macOS file that export something.
    fn mac_exports(&self) -> Vec<MacExport> {
        let lines: Vec<&Line> = self.lines().map(|(line, _)| line).collect();
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.text.as_slice()).collect();
        macos::logical_lines(&texts)
            .into_iter()
            .filter(|logical| !logical.is_comment())
            .map(|logical| {
                let words = macos::split_words(&logical.text);
                let mut paths = Vec::new();
                let mut rest = Vec::new();
                for (i, word) in words.words.into_iter().enumerate() {
                    if rest.is_empty() && (i == 0 || word.text.first() == Some(&b'/')) {
                        paths.push(word.text);
                    } else {
                        rest.push(word.text);
                    }
                }
                MacExport {
                    line: logical.lines[0] + 1,
                    physical: logical.lines.iter().map(|i| i + 1).collect(),
                    comment_inside: logical
                        .lines
                        .iter()
                        .skip(1)
                        .map(|&i| i + 1)
                        .find(|&no| trim_blanks(texts[no - 1]).first() == Some(&b'#')),
                    paths,
                    rest,
                    unterminated_quote: words.unterminated_quote,
                }
            })
            .collect()
    }

    fn check_macos(&self) -> Vec<LineProblem> {
        let owners = self.owners();
        let owner = |line: usize| owners.get(line - 1).cloned().flatten();
        let mut problems = Vec::new();
        let lines: Vec<&Line> = self.lines().map(|(line, _)| line).collect();
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.text.as_slice()).collect();
        for logical in macos::logical_lines(&texts) {
            if logical.is_comment() && logical.lines.len() > 1 {
                let first = logical.lines[0] + 1;
                let mut hides: Vec<BlockKey> =
                    logical.lines.iter().filter_map(|&i| owner(i + 1)).collect();
                hides.dedup();
                problems.push(LineProblem {
                    line: first,
                    block: owner(first),
                    message: format!(
                        "this comment ends with a backslash, so nfsd also ignores line {}",
                        logical.lines[1] + 1
                    ),
                    hides,
                });
            }
        }
        for export in self.mac_exports() {
            let block = owner(export.line);
            let mut report = |message: String, hides: Vec<BlockKey>| {
                problems.push(LineProblem {
                    line: export.line,
                    block: block.clone(),
                    message,
                    hides,
                })
            };
            if let Some(comment) = export.comment_inside {
                report(
                    format!(
                        "the line before line {comment} ends with a backslash, so nfsd reads the comment on line {comment} as part of this export"
                    ),
                    vec![],
                );
            }
            let mut joined: Vec<BlockKey> = export
                .physical
                .iter()
                .map(|&no| owner(no))
                .filter(|key| *key != block)
                .flatten()
                .collect();
            joined.dedup();
            if export.physical.iter().any(|&no| owner(no) != block) {
                report(
                    "a trailing backslash joins this line with a line of another block".to_string(),
                    joined,
                );
            }
            if export.unterminated_quote {
                report("unterminated quote".to_string(), vec![]);
            }
            if let Some(first) = export.paths.first()
                && first.first() != Some(&b'/')
            {
                report(
                    format!("export path {} is not absolute", lossy(first)),
                    vec![],
                );
            }
            if block.is_some() {
                for message in mac_devenv_problems(&export.rest) {
                    report(message, vec![]);
                }
            }
        }
        problems.sort_by_key(|p| p.line);
        problems
    }
}

/// Which of devenv's exports a problem keeps the server from reading.
#[derive(Debug, Clone, Copy)]
enum Hides {
    Nothing,
    /// exportfs stops reading the file at this line.
    After(usize),
    /// These lines (inclusive) are swallowed by an open quote.
    Lines(usize, usize),
}

/// What exportfs rejects in one export (a path and its clients), plus, inside a devenv block,
/// clients beyond [`check_client_scope`]. `exported` remembers each path and client seen so far,
/// since exportfs refuses a directory exported twice to one client.
fn linux_export_problems(
    export: &linux::Export,
    block: &Option<BlockKey>,
    exported: &mut HashMap<(PathBuf, String), usize>,
) -> Vec<(usize, String, Hides)> {
    let mut problems = Vec::new();
    let path = &export.path;
    if path.open_quote {
        problems.push((
            path.line,
            "unterminated quote: exportfs reads on past the end of the line to the next quote"
                .to_string(),
            Hides::Lines(path.line + 1, path.last_line),
        ));
    }
    if path.bytes.first() != Some(&b'/') {
        problems.push((
            path.line,
            format!("export path {} is not absolute", lossy(&path.bytes)),
            Hides::Nothing,
        ));
    }
    for word in export.words.iter().filter(|w| w.open_quote) {
        problems.push((
            word.line,
            format!("unterminated quote in {}", lossy(&word.bytes)),
            Hides::Lines(word.line + 1, word.last_line),
        ));
    }
    let normalized: PathBuf = path_from(&path.bytes).components().collect();
    for client in linux::clients(path, &export.words) {
        let (line, host) = match client {
            linux::Client::Defaults(word) => {
                if let Err(message) = linux::check_options(&word.bytes[1..]) {
                    problems.push((word.line, message, Hides::After(word.line)));
                }
                continue;
            }
            linux::Client::Everyone { line } => (line, String::new()),
            linux::Client::Host {
                word,
                host,
                options,
            } => {
                if word.bytes == b"\\" {
                    problems.push((
                        word.line,
                        "a backslash before a CRLF line ending does not continue the line for exportfs: use LF line endings or join the lines".to_string(),
                        Hides::Nothing,
                    ));
                    continue;
                }
                // Option errors end exportfs's reading of the file; client errors do not.
                let options = match options {
                    Some(Err(message)) => Err(message),
                    Some(Ok(options)) => linux::check_options(&options),
                    None => Ok(()),
                };
                if let Err(message) = options {
                    problems.push((word.line, message, Hides::After(word.line)));
                    continue;
                }
                if let Err(message) = linux::check_host(&host) {
                    problems.push((word.line, message, Hides::Nothing));
                    continue;
                }
                (word.line, lossy(&host))
            }
        };
        let client = if host.is_empty() { "*" } else { host.as_str() };
        let key = (normalized.clone(), client.to_string());
        if let Some(first) = exported.get(&key) {
            problems.push((
                line,
                format!(
                    "{} is exported to {client} again (first on line {first}): exportfs rejects duplicated export entries",
                    normalized.display()
                ),
                Hides::Nothing,
            ));
        } else {
            exported.insert(key, line);
        }
        if block.is_some()
            && let Err(e) = check_client_scope(&host)
        {
            problems.push((line, e.to_string(), Hides::Nothing));
        }
    }
    problems
}

struct MacExport {
    line: usize,
    physical: Vec<usize>,
    comment_inside: Option<usize>,
    paths: Vec<Vec<u8>>,
    rest: Vec<Vec<u8>>,
    unterminated_quote: bool,
}

/// Options and clients of one of devenv's macOS lines: options nfsd knows (exports(5) of macOS),
/// and clients within [`check_client_scope`]. Foreign macOS lines are not checked this closely:
/// without nfsd here, an incomplete list of options must not make devenv refuse someone's file.
fn mac_devenv_problems(rest: &[Vec<u8>]) -> Vec<String> {
    const FLAGS: &[&str] = &[
        "-alldirs",
        "-ro",
        "-o",
        "-kerberos",
        "-32bitclients",
        "-manglednames",
        "-offline",
    ];
    const VALUED: &[&str] = &["-maproot=", "-mapall=", "-sec=", "-fspath=", "-fsuuid="];
    let mut problems = Vec::new();
    let mut network: Option<String> = None;
    let mut mask: Option<String> = None;
    let mut hosts = 0;
    let mut words = rest.iter().map(|w| lossy(w));
    while let Some(word) = words.next() {
        if FLAGS.contains(&word.as_str()) {
            continue;
        }
        if let Some(prefix) = VALUED.iter().find(|p| word.starts_with(**p)) {
            let value = &word[prefix.len()..];
            if value.is_empty() || value.split(':').any(str::is_empty) {
                problems.push(format!("option {word} needs a value"));
            }
            continue;
        }
        let mut valued = |name: &str, slot: &mut Option<String>| -> bool {
            let value = if word == name {
                words.next()
            } else if let Some(v) = word.strip_prefix(&format!("{name}=")) {
                Some(v.to_string())
            } else {
                return false;
            };
            match value {
                Some(v) => *slot = Some(v),
                None => problems.push(format!("option {name} needs a value")),
            }
            true
        };
        if valued("-network", &mut network) || valued("-mask", &mut mask) {
            continue;
        }
        if word.starts_with('-') {
            problems.push(format!("unknown option {word}"));
            continue;
        }
        hosts += 1;
        if let Err(e) = check_client_scope(&word) {
            problems.push(e.to_string());
        }
    }
    match (network, mask) {
        (Some(net), Some(mask)) => {
            if let Err(e) = check_client_scope(&format!("{net}/{mask}")) {
                problems.push(e.to_string());
            }
        }
        (Some(net), None) if net.contains('/') => {
            if let Err(e) = check_client_scope(&net) {
                problems.push(e.to_string());
            }
        }
        (Some(net), None) => problems.push(format!(
            "-network {net} needs -mask (or a /prefix) so that it does not take its class's mask"
        )),
        (None, Some(_)) => problems.push("-mask without -network".to_string()),
        (None, None) if hosts == 0 => problems
            .push("no host or -network: the directory would be exported to every host".to_string()),
        (None, None) => {}
    }
    problems
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

/// How nfs-utils 2.6 reads `/etc/exports` (`support/nfs/xio.c`, `support/nfs/exports.c`,
/// `support/export/client.c`), reproduced closely enough that devenv rejects what `exportfs`
/// rejects — including the spots where `exportfs` quietly stops reading, such as a blank line
/// with a CRLF ending.
mod linux {
    use super::*;

    /// `sizeof(e_path)`: a path token this long makes exportfs stop reading.
    const PATH_TOKEN: usize = 1025;
    /// `sizeof(exp)` in `getexportent`.
    const CLIENT_TOKEN: usize = 512;

    /// A token after quote removal and `\ooo` decoding.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Token {
        pub(super) bytes: Vec<u8>,
        pub(super) line: usize,
        /// The line of its last byte (later than `line` when a quote ran over a line end).
        pub(super) last_line: usize,
        /// A quote was open at a line end or at the end of the file.
        pub(super) open_quote: bool,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Export {
        pub(super) path: Token,
        /// Clients `host(options)` and default options `-options`, in order.
        pub(super) words: Vec<Token>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum StopKind {
        /// A CR, vertical tab, form feed or NUL where a path should begin.
        StrayByte(u8),
        /// `""` where a path should begin.
        EmptyQuotes,
        PathTooLong,
        ClientTooLong,
    }

    impl StopKind {
        pub(super) fn describe(self) -> &'static str {
            match self {
                StopKind::StrayByte(b'\r') => {
                    "this line starts with a carriage return (a blank line with a CRLF ending?)"
                }
                StopKind::StrayByte(_) => {
                    "this line starts with a control character that exportfs does not skip"
                }
                StopKind::EmptyQuotes => "an empty quoted path (\"\")",
                StopKind::PathTooLong => {
                    "a path longer than 1024 bytes, where exportfs stops reading the file"
                }
                StopKind::ClientTooLong => {
                    "a client longer than 511 bytes: exportfs reports a syntax error"
                }
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Event {
        Export(Export),
        /// Where exportfs stops reading; scanning goes on so every line can be reported.
        Stop {
            line: usize,
            kind: StopKind,
        },
    }

    enum Tok {
        /// Nothing before the end of the line (`stopper` None) or before `stopper`.
        Empty {
            stopper: Option<u8>,
            quotes: bool,
        },
        TooLong,
        Word(Token),
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        pos: usize,
        newlines: Vec<usize>,
    }

    impl<'a> Reader<'a> {
        fn new(bytes: &'a [u8]) -> Reader<'a> {
            let newlines = bytes
                .iter()
                .enumerate()
                .filter_map(|(i, &b)| (b == b'\n').then_some(i))
                .collect();
            Reader {
                bytes,
                pos: 0,
                newlines,
            }
        }

        fn line_of(&self, pos: usize) -> usize {
            self.newlines.partition_point(|&nl| nl < pos) + 1
        }

        fn raw(&mut self) -> Option<u8> {
            let c = *self.bytes.get(self.pos)?;
            self.pos += 1;
            Some(c)
        }

        /// `xgetc`: a backslash before a newline is a blank that also eats the next line's
        /// leading blanks.
        fn xgetc(&mut self) -> Option<u8> {
            let c = self.raw()?;
            if c == b'\\' && self.bytes.get(self.pos) == Some(&b'\n') {
                self.pos += 1;
                while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t')) {
                    self.pos += 1;
                }
                return Some(b' ');
            }
            Some(c)
        }

        fn skip_comment(&mut self) -> Option<u8> {
            loop {
                match self.raw()? {
                    b'\n' => return Some(b'\n'),
                    _ => continue,
                }
            }
        }

        /// `xskip`: skips bytes of `set`, and a comment where a token could start.
        fn xskip(&mut self, set: &[u8]) {
            loop {
                let mut c = self.xgetc();
                if c == Some(b'#') {
                    c = self.skip_comment();
                }
                match c {
                    None => return,
                    Some(c) if set.contains(&c) => continue,
                    Some(_) => {
                        self.pos -= 1;
                        return;
                    }
                }
            }
        }

        /// `xgettok`: a token ends at unquoted whitespace or NUL; quotes toggle and are dropped;
        /// `\ooo` below 256 is decoded as soon as its fourth byte is read.
        fn gettok(&mut self, max: usize) -> Tok {
            let line = self.line_of(self.pos);
            let mut tok = Vec::new();
            let mut quoted = false;
            let mut spanned = false;
            let mut quotes = false;
            let mut last = None;
            loop {
                if tok.len() >= max {
                    break;
                }
                let Some(c) = self.xgetc() else {
                    last = None;
                    break;
                };
                last = Some(c);
                if !quoted && (c == 0 || c.is_ascii_whitespace() || c == 0x0b) {
                    break;
                }
                if c == b'"' {
                    quoted = !quoted;
                    quotes = true;
                    continue;
                }
                if c == b'\n' {
                    spanned = true;
                }
                tok.push(c);
                let i = tok.len();
                if i >= 4
                    && tok[i - 4] == b'\\'
                    && tok[i - 3..].iter().all(|d| (b'0'..=b'7').contains(d))
                {
                    let value = tok[i - 3..]
                        .iter()
                        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                    if let Ok(byte) = u8::try_from(value) {
                        tok.truncate(i - 4);
                        tok.push(byte);
                    }
                }
            }
            if last == Some(b'\n') {
                self.pos -= 1;
            }
            if tok.is_empty() {
                return Tok::Empty {
                    stopper: last.filter(|&c| c != b'\n'),
                    quotes,
                };
            }
            if tok.len() >= max {
                return Tok::TooLong;
            }
            if let Some(nul) = tok.iter().position(|&b| b == 0) {
                tok.truncate(nul);
            }
            Tok::Word(Token {
                bytes: tok,
                line,
                last_line: self.line_of(self.pos.saturating_sub(1)),
                open_quote: quoted || spanned,
            })
        }

        fn skip_line(&mut self) {
            while let Some(c) = self.raw() {
                if c == b'\n' {
                    break;
                }
            }
        }
    }

    /// Splits the file into exports the way `getexportent` does: a path, then client words
    /// until a token comes back empty (end of line).
    pub(super) fn scan(bytes: &[u8]) -> Vec<Event> {
        let mut r = Reader::new(bytes);
        let mut events = Vec::new();
        'file: loop {
            r.xskip(b" \t\n");
            let line = r.line_of(r.pos);
            let path = match r.gettok(PATH_TOKEN) {
                Tok::Empty {
                    stopper: None,
                    quotes: false,
                } => break,
                Tok::Empty { stopper, quotes } => {
                    let kind = match stopper {
                        Some(byte) if !quotes => StopKind::StrayByte(byte),
                        _ => StopKind::EmptyQuotes,
                    };
                    events.push(Event::Stop { line, kind });
                    if stopper.is_none() {
                        break;
                    }
                    continue;
                }
                Tok::TooLong => {
                    events.push(Event::Stop {
                        line,
                        kind: StopKind::PathTooLong,
                    });
                    r.skip_line();
                    continue;
                }
                Tok::Word(token) => token,
            };
            let mut words = Vec::new();
            loop {
                r.xskip(b" \t");
                let line = r.line_of(r.pos);
                match r.gettok(CLIENT_TOKEN) {
                    Tok::Empty { .. } => break,
                    Tok::TooLong => {
                        events.push(Event::Export(Export { path, words }));
                        events.push(Event::Stop {
                            line,
                            kind: StopKind::ClientTooLong,
                        });
                        r.skip_line();
                        continue 'file;
                    }
                    Tok::Word(word) => words.push(word),
                }
            }
            events.push(Event::Export(Export { path, words }));
        }
        events
    }

    pub(super) enum Client<'a> {
        /// `-options`: defaults for the clients after it.
        Defaults(&'a Token),
        /// `host(options)`; `options` is `Err` for a malformed parenthesis.
        Host {
            word: &'a Token,
            host: Vec<u8>,
            options: Option<Result<Vec<u8>, String>>,
        },
        /// No client at all (a path alone, or `-options` last): exported to every host.
        Everyone { line: usize },
    }

    /// Pairs the words of an export the way successive `getexportent` calls do: a `-options`
    /// word is always followed by a client, even one that starts with `-`, or by the world.
    pub(super) fn clients<'a>(path: &Token, words: &'a [Token]) -> Vec<Client<'a>> {
        let mut out = Vec::new();
        let mut i = 0;
        if words.is_empty() {
            return vec![Client::Everyone { line: path.line }];
        }
        while i < words.len() {
            let word = &words[i];
            if word.bytes.first() == Some(&b'-') {
                out.push(Client::Defaults(word));
                i += 1;
                match words.get(i) {
                    Some(next) => out.push(host_client(next)),
                    None => out.push(Client::Everyone { line: word.line }),
                }
            } else {
                out.push(host_client(word));
            }
            i += 1;
        }
        out
    }

    /// `host(options)`: a `(` at the start means the host `*`; the options end at the first
    /// `)`, which must be the last byte.
    fn host_client(word: &Token) -> Client<'_> {
        let (host, options) = match word.bytes.iter().position(|&b| b == b'(') {
            None => (word.bytes.clone(), None),
            Some(open) => {
                let host = if open == 0 {
                    b"*".to_vec()
                } else {
                    word.bytes[..open].to_vec()
                };
                let inner = &word.bytes[open + 1..];
                let options = match inner.iter().position(|&b| b == b')') {
                    Some(close) if close == inner.len() - 1 => Ok(inner[..close].to_vec()),
                    _ => Err("syntax error: bad option list".to_string()),
                };
                (host, Some(options))
            }
        };
        Client::Host {
            word,
            host,
            options,
        }
    }

    const FLAGS: &[&[u8]] = &[
        b"ro",
        b"rw",
        b"secure",
        b"insecure",
        b"sync",
        b"async",
        b"nordirplus",
        b"security_label",
        b"nohide",
        b"hide",
        b"crossmnt",
        b"nocrossmnt",
        b"wdelay",
        b"no_wdelay",
        b"root_squash",
        b"no_root_squash",
        b"all_squash",
        b"no_all_squash",
        b"subtree_check",
        b"no_subtree_check",
        b"auth_nlm",
        b"no_auth_nlm",
        b"secure_locks",
        b"insecure_locks",
        b"acl",
        b"no_acl",
        b"pnfs",
        b"no_pnfs",
        b"mountpoint",
        b"mp",
    ];
    const FLAVORS: &[&[u8]] = &[
        b"krb5", b"krb5i", b"krb5p", b"unix", b"sys", b"null", b"none",
    ];

    /// `parseopts`: comma-separated keywords; blanks after a comma are skipped, an empty
    /// keyword (`,,` or a leading comma) is unknown, a trailing comma is fine.
    pub(super) fn check_options(options: &[u8]) -> Result<(), String> {
        let mut rest = skip_blanks(options);
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
            check_option(&rest[..end])?;
            rest = skip_blanks(rest.get(end + 1..).unwrap_or_default());
        }
        Ok(())
    }

    fn skip_blanks(bytes: &[u8]) -> &[u8] {
        let start = bytes
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(bytes.len());
        &bytes[start..]
    }

    fn check_option(opt: &[u8]) -> Result<(), String> {
        let text = lossy(opt);
        if FLAGS.contains(&opt) {
            return Ok(());
        }
        for (prefix, what) in [(&b"anonuid="[..], "anonuid"), (b"anongid=", "anongid")] {
            if let Some(value) = opt.strip_prefix(prefix) {
                return if strtol_whole(value) {
                    Ok(())
                } else {
                    Err(format!("bad {what} \"{text}\""))
                };
            }
        }
        if let Some(value) = opt
            .strip_prefix(b"squash_uids=")
            .or_else(|| opt.strip_prefix(b"squash_gids="))
        {
            return squash_range(value);
        }
        if let Some(value) = opt.strip_prefix(b"fsid=") {
            let uuid = value.iter().filter(|b| b.is_ascii_hexdigit()).count() == 32;
            return if value == b"root" || strtoul_whole(value) || uuid {
                Ok(())
            } else {
                Err(format!("bad fsid \"{text}\""))
            };
        }
        if opt.starts_with(b"mountpoint=")
            || opt.starts_with(b"mp=")
            || opt.starts_with(b"refer=")
            || opt.starts_with(b"replicas=")
        {
            return Ok(());
        }
        if let Some(flavors) = opt.strip_prefix(b"sec=") {
            for flavor in flavors.split(|&b| b == b':') {
                if !FLAVORS.contains(&flavor) {
                    return Err(format!("unknown flavor {}", lossy(flavor)));
                }
            }
            return Ok(());
        }
        Err(format!("unknown keyword \"{text}\""))
    }

    fn is_c_space(b: u8) -> bool {
        b.is_ascii_whitespace() || b == 0x0b
    }

    /// `strtol(value, &end, 10)` consuming all of a non-empty `value`.
    fn strtol_whole(value: &[u8]) -> bool {
        let mut i = value.iter().take_while(|&&b| is_c_space(b)).count();
        if matches!(value.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits = value[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        digits > 0 && i + digits == value.len()
    }

    /// `strtoul(value, &end, 0)` consuming all of a non-empty `value`: decimal, `0x` hex or
    /// `0` octal.
    fn strtoul_whole(value: &[u8]) -> bool {
        let mut i = value.iter().take_while(|&&b| is_c_space(b)).count();
        if matches!(value.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let rest = &value[i..];
        let used = if (rest.starts_with(b"0x") || rest.starts_with(b"0X"))
            && rest.get(2).is_some_and(u8::is_ascii_hexdigit)
        {
            2 + rest[2..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count()
        } else if rest.first() == Some(&b'0') {
            rest.iter()
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count()
        } else {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        };
        used > 0 && used == rest.len()
    }

    /// `parsenum`: an optional `-` and digits, read with `atoi` (so it wraps like a C int).
    fn parsenum(bytes: &[u8]) -> (i32, &[u8]) {
        let sign = usize::from(bytes.first() == Some(&b'-'));
        let digits = bytes[sign..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let mut value: i64 = 0;
        for &d in &bytes[sign..sign + digits] {
            value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        }
        if sign == 1 {
            value = -value;
        }
        (value as i32, &bytes[sign + digits..])
    }

    /// `parsesquash` as it behaves in practice: one id or range per option.
    fn squash_range(value: &[u8]) -> Result<(), String> {
        let (first, rest) = parsenum(value);
        let (last, rest) = match rest.strip_prefix(b"-") {
            Some(rest) => parsenum(rest),
            None => (first, rest),
        };
        if first == -1 || last == -1 {
            return Err("syntax error: uid/gid -1 not permitted".to_string());
        }
        if rest.is_empty() {
            Ok(())
        } else {
            Err("syntax error: bad uid/gid list".to_string())
        }
    }

    /// `client_gettype` and the subnet parsing of `client_init`: only a subnet can be
    /// malformed; host names that do not resolve only draw a warning.
    pub(super) fn check_host(host: &[u8]) -> Result<(), String> {
        if host.is_empty() || host == b"*" || host.starts_with(b"gss/") || host[0] == b'@' {
            return Ok(());
        }
        let mut i = 0;
        while i < host.len() {
            match host[i] {
                b'*' | b'?' | b'[' => return Ok(()),
                b'/' => return check_subnet(host),
                b'\\' if i + 1 < host.len() => i += 1,
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }

    fn check_subnet(host: &[u8]) -> Result<(), String> {
        let text = lossy(host);
        let (address, mask) = text.split_once('/').expect("caller saw a slash");
        let (max, mask_ok) = if address.parse::<Ipv4Addr>().is_ok() {
            (32, mask.parse::<Ipv4Addr>().is_ok())
        } else if address.contains(':') && address.parse::<Ipv6Addr>().is_ok() {
            (128, mask.parse::<Ipv6Addr>().is_ok())
        } else {
            return Err(format!("Invalid IP address {text}"));
        };
        if mask.contains(if max == 32 { '.' } else { ':' }) {
            return if mask_ok {
                Ok(())
            } else {
                Err(format!("Invalid netmask `{mask}' for {text}"))
            };
        }
        if prefix_ok(mask.as_bytes(), max) {
            Ok(())
        } else {
            Err(format!("Invalid prefix `{mask}' for {text}"))
        }
    }

    /// `strtoul(mask, &end, 10)` must use all of it (an empty mask reads as 0) and stay
    /// within `max`.
    fn prefix_ok(mask: &[u8], max: u64) -> bool {
        let mut i = mask.iter().take_while(|&&b| is_c_space(b)).count();
        let negative = mask.get(i) == Some(&b'-');
        if matches!(mask.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits = &mask[i..];
        if mask.is_empty() {
            return true;
        }
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let value = digits.iter().fold(0u64, |acc, d| {
            acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        (value == 0 || !negative) && value <= max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs::{Owner, escape_path, export_line};
    use devenv_drivers::ExportClient;

    const LINUX: ExportsDialect = ExportsDialect::Linux;
    const MACOS: ExportsDialect = ExportsDialect::MacOs;
    const ME: Owner = Owner { uid: 501, gid: 20 };

    fn linux_line(path: &str) -> String {
        export_line(
            LINUX,
            Path::new(path),
            ExportClient::Address(Ipv4Addr::new(192, 168, 39, 12)),
            ME,
        )
    }

    fn mac_line(path: &str) -> String {
        export_line(
            MACOS,
            Path::new(path),
            ExportClient::Address(Ipv4Addr::new(192, 168, 64, 2)),
            ME,
        )
    }

    fn parse(text: &str) -> ExportsFile {
        ExportsFile::parse(text, LINUX).expect("parses")
    }

    fn set(text: &str, project: &str, lines: &[String]) -> String {
        let mut file = parse(text);
        file.set_block(project, 501, lines);
        file.render()
    }

    fn problems(text: &str, dialect: ExportsDialect) -> Vec<String> {
        ExportsFile::parse(text, dialect)
            .unwrap()
            .check()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const FOREIGN: &[&str] = &[
        "",
        "\n",
        "# only a comment",
        "/srv/a 10.0.0.1(rw)\n",
        "/srv/a 10.0.0.1(rw)",
        "# c\r\n/srv/a 10.0.0.1(rw)\r\n",
        "# c\r\n/srv/a 10.0.0.1(rw)",
        "/srv/a \\\n  10.0.0.1(rw)\n\n\n",
        "# VAGRANT-BEGIN: 501 abc\n\"/Users/x\" 192.168.56.10(rw)\n# VAGRANT-END: 501 abc\n",
        "ends with cr\r",
        "mixed\r\nendings\nhere\r\n",
        "# BEGIN devenv shop\n# END devenv shop uid=x\n",
    ];

    #[test]
    fn foreign_content_is_rendered_back_byte_for_byte() {
        for text in FOREIGN {
            assert_eq!(parse(text).render(), *text);
            assert!(parse(text).blocks().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_survive_parse_and_edit() {
        let bytes = b"# caf\xe9\n/srv/\xff 10.0.0.1(rw)\n";
        let mut file = ExportsFile::parse_bytes(bytes, LINUX).unwrap();
        assert_eq!(file.to_bytes(), bytes);
        file.set_block("shop", 501, &[linux_line("/srv/shop")]);
        file.remove_block("shop", 501);
        assert_eq!(file.to_bytes(), bytes);
        assert_eq!(
            file.entries()[0].path,
            path_from(b"/srv/\xff"),
            "the undecodable path is kept as bytes"
        );
    }

    #[test]
    fn every_line_devenv_writes_is_recognised_as_its_own() {
        use crate::nfs::{Access, Owner, export_line_with};
        let owner = Owner { uid: 501, gid: 20 };
        let clients = [
            ExportClient::Address("192.168.49.2".parse().unwrap()),
            ExportClient::Subnet {
                network: "192.168.49.0".parse().unwrap(),
                prefix: 24,
            },
        ];
        for dialect in [LINUX, ExportsDialect::MacOs] {
            for path in ["/srv/shop", "/home/a b/\"q\" #1", "/Users/x/caf\u{e9}"] {
                for client in clients {
                    for access in [Access::ReadWrite, Access::ReadOnly] {
                        let line =
                            export_line_with(dialect, Path::new(path), client, owner, access);
                        assert!(written_by_devenv(dialect, line.as_bytes()), "{line}");
                    }
                }
            }
        }
        for foreign in [
            "",
            "# my note",
            "/srv/other 10.0.0.5(rw)",
            "\"/srv/shop\" 10.0.0.5(rw,no_root_squash)",
            "\"/srv/shop\" 10.0.0.5(rw,async,no_subtree_check,all_squash,anonuid=1,anongid=2) 10.0.0.6(rw)",
        ] {
            assert!(!written_by_devenv(LINUX, foreign.as_bytes()), "{foreign}");
        }
        assert!(!written_by_devenv(
            ExportsDialect::MacOs,
            b"\"/Users/x\" -alldirs -maproot=root 10.0.0.5"
        ));
        assert!(written_by_devenv(
            ExportsDialect::MacOs,
            b"\"/a\" \"/b\" -alldirs -mapall=501:20 192.168.64.2"
        ));
    }

    #[test]
    fn lines_someone_added_inside_a_block_are_kept_out_of_it() {
        let ours = linux_line("/srv/shop");
        let text = format!(
            "/a 10.0.0.1(ro)\n# BEGIN devenv shop uid=501\n{ours}\n# mine\n/srv/x 10.0.0.9(rw)\n# END devenv shop uid=501\n/b 10.0.0.2(ro)\n"
        );
        let file = parse(&text);
        assert_eq!(
            file.foreign_in_block("shop", 501),
            vec![
                (4, "# mine".to_string()),
                (5, "/srv/x 10.0.0.9(rw)".to_string())
            ]
        );

        let mut updated = file.clone();
        assert!(updated.set_block("shop", 501, &[linux_line("/srv/shop2")]));
        assert_eq!(
            updated.render(),
            format!(
                "/a 10.0.0.1(ro)\n# BEGIN devenv shop uid=501\n{}\n# END devenv shop uid=501\n# mine\n/srv/x 10.0.0.9(rw)\n/b 10.0.0.2(ro)\n",
                linux_line("/srv/shop2")
            )
        );
        assert!(updated.foreign_in_block("shop", 501).is_empty());

        let mut removed = file.clone();
        assert!(removed.remove_block("shop", 501));
        assert_eq!(
            removed.render(),
            "/a 10.0.0.1(ro)\n# mine\n/srv/x 10.0.0.9(rw)\n/b 10.0.0.2(ro)\n"
        );
    }

    #[test]
    fn adding_then_removing_a_block_gives_back_the_exact_foreign_text() {
        for text in FOREIGN {
            let mut file = parse(text);
            assert!(file.set_block("shop", 501, &[linux_line("/srv/shop")]));
            let added = file.render();
            let mut reread = parse(&added);
            assert!(reread.remove_block("shop", 501));
            assert_eq!(reread.render(), *text, "after adding: {added:?}");
        }
    }

    #[test]
    fn a_new_block_is_appended_with_a_trailing_newline() {
        assert_eq!(
            set("/srv/a 10.0.0.1(rw)\n", "shop", &["L".into()]),
            "/srv/a 10.0.0.1(rw)\n# BEGIN devenv shop uid=501\nL\n# END devenv shop uid=501\n"
        );
    }

    #[test]
    fn a_new_block_in_a_crlf_file_uses_crlf() {
        assert_eq!(
            set("# c\r\n", "shop", &["L".into()]),
            "# c\r\n# BEGIN devenv shop uid=501\r\nL\r\n# END devenv shop uid=501\r\n"
        );
    }

    #[test]
    fn without_a_final_newline_the_block_brings_the_newline_before_it_and_none_after() {
        assert_eq!(
            set("/srv/a 10.0.0.1(rw)", "shop", &["L".into()]),
            "/srv/a 10.0.0.1(rw)\n# BEGIN devenv shop uid=501\nL\n# END devenv shop uid=501"
        );
        assert_eq!(
            set("# c\r\n# d", "shop", &["L".into()]),
            "# c\r\n# d\r\n# BEGIN devenv shop uid=501\r\nL\r\n# END devenv shop uid=501"
        );
    }

    #[test]
    fn an_existing_block_is_updated_in_place() {
        let (old, new1, new2) = (linux_line("/old"), linux_line("/new1"), linux_line("/new2"));
        let text =
            format!("# a\n# BEGIN devenv shop uid=501\n{old}\n# END devenv shop uid=501\n# z\n");
        let mut file = parse(&text);
        assert!(file.set_block("shop", 501, &[new1.clone(), new2.clone()]));
        assert_eq!(
            file.render(),
            format!(
                "# a\n# BEGIN devenv shop uid=501\n{new1}\n{new2}\n# END devenv shop uid=501\n# z\n"
            )
        );
        assert_eq!(file.block_lines("shop", 501).unwrap(), vec![new1, new2]);
    }

    #[test]
    fn setting_the_same_lines_again_changes_nothing() {
        let mut file = parse("# a");
        assert!(file.set_block("shop", 501, &["L".into()]));
        let once = file.render();
        assert!(!file.set_block("shop", 501, &["L".into()]));
        assert_eq!(file.render(), once);
        let mut reread = parse(&once);
        assert!(!reread.set_block("shop", 501, &["L".into()]));
        assert_eq!(reread.render(), once);
    }

    #[test]
    fn an_updated_block_keeps_its_own_line_ending() {
        let (old, new) = (linux_line("/old"), linux_line("/new"));
        let text = format!(
            "# lf first\n# BEGIN devenv shop uid=501\r\n{old}\r\n# END devenv shop uid=501\r\n"
        );
        let mut file = parse(&text);
        file.set_block("shop", 501, std::slice::from_ref(&new));
        assert_eq!(
            file.render(),
            format!(
                "# lf first\n# BEGIN devenv shop uid=501\r\n{new}\r\n# END devenv shop uid=501\r\n"
            )
        );
    }

    #[test]
    fn blocks_of_other_projects_and_users_are_left_alone() {
        let mut file = parse("# x\n");
        file.set_block("shop", 501, &["a".into()]);
        file.set_block("shop", 502, &["b".into()]);
        file.set_block("blog", 501, &["c".into()]);
        assert_eq!(
            file.blocks(),
            vec![
                BlockKey::new("shop", 501),
                BlockKey::new("shop", 502),
                BlockKey::new("blog", 501)
            ]
        );
        assert!(file.remove_block("shop", 501));
        assert_eq!(file.block_lines("shop", 502).unwrap(), vec!["b"]);
        assert_eq!(file.block_lines("blog", 501).unwrap(), vec!["c"]);
        assert_eq!(file.block_lines("shop", 501), None);
    }

    #[test]
    fn removing_blocks_in_any_order_restores_a_file_without_final_newline() {
        for order in [["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"]] {
            let mut file = parse("# end\r\n# no newline");
            for project in ["a", "b", "c"] {
                file.set_block(project, 1, &[linux_line(&format!("/{project}"))]);
            }
            let mut file = parse(&file.render());
            for project in order {
                assert!(file.remove_block(project, 1));
                file = parse(&file.render());
            }
            assert_eq!(file.render(), "# end\r\n# no newline");
        }
    }

    #[test]
    fn blocks_chained_after_a_line_ending_in_a_lone_cr_give_that_cr_back() {
        let mut file = parse(" \r");
        file.set_block("shop", 1, &[]);
        let mut file = parse(&file.render());
        file.set_block("blog", 1, &[]);
        assert_eq!(
            file.render(),
            " \r\n# BEGIN devenv shop uid=1\n# END devenv shop uid=1\n# BEGIN devenv blog uid=1\n# END devenv blog uid=1"
        );
        let mut file = parse(&file.render());
        file.remove_block("shop", 1);
        file.remove_block("blog", 1);
        assert_eq!(file.render(), " \r");
    }

    #[test]
    fn removing_a_missing_block_changes_nothing() {
        let mut file = parse("# a\n");
        assert!(!file.remove_block("shop", 501));
        assert_eq!(file.render(), "# a\n");
    }

    #[test]
    fn block_lines_are_those_between_the_markers_without_line_endings() {
        let file =
            parse("# BEGIN devenv shop uid=7\r\n\"/a\" h(rw)\r\n# END devenv shop uid=7\r\n");
        assert_eq!(file.block_lines("shop", 7).unwrap(), vec!["\"/a\" h(rw)"]);
        assert_eq!(file.block_lines("shop", 8), None);
    }

    #[test]
    fn a_begin_without_end_is_an_error_naming_its_line() {
        let err = ExportsFile::parse("# a\n# BEGIN devenv shop uid=501\nx\n", LINUX).unwrap_err();
        assert_eq!(
            err,
            FileError::Unterminated {
                line: 2,
                key: BlockKey::new("shop", 501)
            }
        );
        assert_eq!(err.line(), Some(2));
        assert_eq!(
            err.to_string(),
            "line 2: devenv's block for project shop (uid 501) has no end marker `# END devenv shop uid=501`"
        );
    }

    #[test]
    fn an_end_without_begin_is_an_error() {
        let err = ExportsFile::parse("# END devenv shop uid=501\n", LINUX).unwrap_err();
        assert_eq!(err.line(), Some(1));
        assert!(matches!(err, FileError::StrayEnd { .. }));
    }

    #[test]
    fn a_block_inside_another_is_an_error() {
        let text = "# BEGIN devenv shop uid=1\n# BEGIN devenv blog uid=1\n# END devenv blog uid=1\n# END devenv shop uid=1\n";
        let err = ExportsFile::parse(text, LINUX).unwrap_err();
        assert_eq!(
            err,
            FileError::Nested {
                line: 2,
                key: BlockKey::new("blog", 1),
                outer: BlockKey::new("shop", 1),
                outer_line: 1
            }
        );
    }

    #[test]
    fn an_end_marker_of_another_block_is_an_error() {
        let text = "# BEGIN devenv shop uid=1\n# END devenv blog uid=1\n";
        assert!(matches!(
            ExportsFile::parse(text, LINUX).unwrap_err(),
            FileError::MismatchedEnd { line: 2, .. }
        ));
    }

    #[test]
    fn two_blocks_for_the_same_project_and_user_are_an_error() {
        let text = "# BEGIN devenv shop uid=1\n# END devenv shop uid=1\n# x\n# BEGIN devenv shop uid=1\n# END devenv shop uid=1\n";
        assert_eq!(
            ExportsFile::parse(text, LINUX).unwrap_err(),
            FileError::Duplicate {
                line: 4,
                key: BlockKey::new("shop", 1),
                first_line: 1
            }
        );
    }

    #[test]
    fn marker_lookalikes_are_foreign_comments() {
        for text in [
            "# BEGIN devenv shop\n",
            "# BEGIN devenv shop uid=x\n",
            "# BEGIN devenv shop uid=+1\n",
            "# BEGIN devenv shop uid=01\n",
            "#BEGIN devenv shop uid=1\n",
            " # BEGIN devenv shop uid=1\n",
            "# BEGIN devenv  shop uid=1\n",
            "# END devenv a b uid=1\n",
            "# BEGIN: minikube-hyperkit\n",
        ] {
            let file = parse(text);
            assert!(file.blocks().is_empty(), "{text:?}");
            assert_eq!(file.render(), text);
        }
    }

    #[test]
    fn markers_with_trailing_blanks_or_cr_still_count() {
        let file = parse("# BEGIN devenv shop uid=1  \n# END devenv shop uid=1\t\r\n");
        assert_eq!(file.blocks(), vec![BlockKey::new("shop", 1)]);
    }

    #[test]
    fn set_block_refuses_names_and_lines_that_would_not_read_back() {
        let mut file = parse("");
        for project in ["", "my shop", "a\tb", "x\ny"] {
            assert!(matches!(
                file.try_set_block(project, 1, &[]),
                Err(FileError::InvalidProject { .. })
            ));
        }
        for line in [
            "a\nb",
            "a\r",
            "# END devenv shop uid=1",
            "# BEGIN devenv x uid=2",
        ] {
            assert!(matches!(
                file.try_set_block("shop", 1, &[line.to_string()]),
                Err(FileError::InvalidLine { .. })
            ));
        }
        assert_eq!(file.render(), "");
    }

    #[test]
    fn entries_list_every_export_with_line_path_rest_and_block() {
        let text = "# c\n/srv/a 10.0.0.1(rw) 10.0.0.2(ro)\n\n\"/srv/b c\" \\\n   *(ro)\n# BEGIN devenv shop uid=501\n\"/srv/shop\" 192.168.39.12(rw)\n# END devenv shop uid=501\n";
        let entries = parse(text).entries();
        assert_eq!(
            entries,
            vec![
                Entry {
                    line: 2,
                    path: "/srv/a".into(),
                    rest: vec!["10.0.0.1(rw)".into(), "10.0.0.2(ro)".into()],
                    block: None
                },
                Entry {
                    line: 4,
                    path: "/srv/b c".into(),
                    rest: vec!["*(ro)".into()],
                    block: None
                },
                Entry {
                    line: 7,
                    path: "/srv/shop".into(),
                    rest: vec!["192.168.39.12(rw)".into()],
                    block: Some(BlockKey::new("shop", 501))
                },
            ]
        );
    }

    #[test]
    fn entries_decode_the_escapes_escape_path_writes() {
        for path in [
            "/a b",
            "/q\"uote",
            "/back\\slash",
            "/hash#tag",
            "/é",
            "/tab\there",
        ] {
            let text = format!("{}\n", linux_line(path));
            let entries = parse(&text).entries();
            assert_eq!(entries.len(), 1, "{text:?}");
            assert_eq!(entries[0].path, Path::new(path));
            let mac = format!("{}\n", mac_line(path));
            let entries = ExportsFile::parse(&mac, MACOS).unwrap().entries();
            assert_eq!(entries[0].path, Path::new(path));
        }
    }

    #[test]
    fn linux_entries_follow_exportfs_comment_rules() {
        let text =
            "/srv/a#b h(rw) # trailing comment\n/srv/c \\\n# comment ends the entry\nh2(rw)\n";
        let entries = parse(text).entries();
        let got: Vec<(usize, &Path, Vec<String>)> = entries
            .iter()
            .map(|e| (e.line, e.path.as_path(), e.rest.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Path::new("/srv/a#b"), vec!["h(rw)".to_string()]),
                (2, Path::new("/srv/c"), vec![]),
                (4, Path::new("h2(rw)"), vec![]),
            ]
        );
    }

    #[test]
    fn macos_entries_list_every_path_of_a_line() {
        let text = "\"/Users/a\" /Users/b -alldirs -mapall=501:20 192.168.64.2\n";
        let entries = ExportsFile::parse(text, MACOS).unwrap().entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].path, Path::new("/Users/b"));
        assert_eq!(entries[1].line, 1);
        assert_eq!(
            entries[1].rest,
            vec!["-alldirs", "-mapall=501:20", "192.168.64.2"]
        );
    }

    fn conflict_lines(text: &str, dialect: ExportsDialect, path: &str) -> Vec<(usize, Overlap)> {
        ExportsFile::parse(text, dialect)
            .unwrap()
            .conflicts(Path::new(path), "shop", 501)
            .into_iter()
            .map(|c| (c.line, c.overlap))
            .collect()
    }

    #[test]
    fn a_foreign_export_of_the_same_parent_or_child_directory_conflicts() {
        let text = "/home/ann/src/shop/ h(rw)\n/home/ann/src h(rw)\n/home/ann/src/shop/web h(rw)\n/home/ann/src/shopping h(rw)\n/home/ann/src/sho h(rw)\n";
        assert_eq!(
            conflict_lines(text, LINUX, "/home/ann/src/shop"),
            vec![
                (1, Overlap::Same),
                (2, Overlap::Contains),
                (3, Overlap::Inside)
            ]
        );
    }

    #[test]
    fn conflict_messages_say_what_the_line_does_and_what_to_do() {
        let file = parse("# x\n# y\n/home/ann/src h(rw)\n");
        let conflicts = file.conflicts(Path::new("/home/ann/src/shop"), "shop", 501);
        assert_eq!(
            conflicts[0].to_string(),
            "line 3 exports /home/ann/src, which contains /home/ann/src/shop: remove that line or export a different directory"
        );
    }

    #[test]
    fn the_projects_own_block_is_no_conflict_but_other_devenv_blocks_are() {
        let text = "# BEGIN devenv shop uid=501\n/srv/shop h(rw)\n# END devenv shop uid=501\n# BEGIN devenv shop uid=502\n/srv/shop h(rw)\n# END devenv shop uid=502\n";
        let conflicts = parse(text).conflicts(Path::new("/srv/shop"), "shop", 501);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].line, 5);
        assert_eq!(conflicts[0].block, Some(BlockKey::new("shop", 502)));
        assert!(
            conflicts[0].message.contains("devenv down --purge"),
            "{}",
            conflicts[0]
        );
    }

    #[test]
    fn on_macos_the_data_volume_spelling_is_the_same_directory() {
        let text = "/Users/ann -alldirs 192.168.64.2\n";
        assert_eq!(
            conflict_lines(text, MACOS, "/System/Volumes/Data/Users/ann/shop"),
            vec![(1, Overlap::Contains)]
        );
    }

    #[test]
    fn conflicts_never_change_the_file() {
        let text = "/srv h(rw)\n";
        let file = parse(text);
        assert_eq!(file.conflicts(Path::new("/srv/x"), "shop", 501).len(), 1);
        assert_eq!(file.render(), text);
    }

    #[test]
    fn lines_devenv_writes_pass_its_own_checks() {
        let mut file = parse("");
        file.set_block(
            "shop",
            501,
            &[
                linux_line("/home/ann/src/shop"),
                linux_line("/home/ann/my lib#2"),
                export_line(
                    LINUX,
                    Path::new("/srv/x"),
                    ExportClient::Subnet {
                        network: Ipv4Addr::new(192, 168, 39, 0),
                        prefix: 24,
                    },
                    ME,
                ),
            ],
        );
        assert_eq!(file.check(), vec![]);
        let mut mac = ExportsFile::parse("", MACOS).unwrap();
        mac.set_block(
            "shop",
            501,
            &[
                mac_line("/System/Volumes/Data/Users/ann/shop"),
                export_line(
                    MACOS,
                    Path::new("/System/Volumes/Data/Users/ann/lib"),
                    ExportClient::Subnet {
                        network: Ipv4Addr::new(192, 168, 64, 0),
                        prefix: 24,
                    },
                    ME,
                ),
            ],
        );
        assert_eq!(mac.check(), vec![]);
    }

    #[test]
    fn unknown_option_keywords_are_reported_like_exportfs() {
        assert_eq!(
            problems("# c\n/srv/a 10.0.0.1(rw,bogusopt)\n", LINUX),
            vec!["line 2: unknown keyword \"bogusopt\""]
        );
        assert_eq!(
            problems("/srv/a 10.0.0.1(rw,,async)\n", LINUX),
            vec!["line 1: unknown keyword \"\""]
        );
    }

    #[test]
    fn bad_option_values_are_reported() {
        for (options, message) in [
            ("anonuid=abc", "bad anonuid \"anonuid=abc\""),
            ("anongid=", "bad anongid \"anongid=\""),
            ("fsid=08", "bad fsid \"fsid=08\""),
            ("sec=sys:", "unknown flavor "),
            ("squash_uids=-1", "syntax error: uid/gid -1 not permitted"),
            ("squash_gids=1x", "syntax error: bad uid/gid list"),
        ] {
            assert_eq!(
                problems(&format!("/srv/a 10.0.0.1({options})\n"), LINUX),
                vec![format!("line 1: {message}")],
                "{options}"
            );
        }
    }

    #[test]
    fn option_values_exportfs_accepts_pass() {
        for options in [
            "rw,",
            "",
            "anonuid=-1,anongid=+5",
            "fsid=0x1f",
            "fsid=0777",
            "fsid=root",
            "fsid=12345678-1234-1234-1234-123456789abc",
            "sec=krb5p:sys,rw",
            "squash_uids=0-10",
            "squash_uids=",
            "mp,mountpoint=/x,refer=/a@b,replicas=/c@d",
        ] {
            assert_eq!(
                problems(&format!("/srv/a 10.0.0.1({options})\n"), LINUX),
                Vec::<String>::new(),
                "{options}"
            );
        }
    }

    #[test]
    fn broken_option_lists_and_subnets_are_reported() {
        for (client, message) in [
            ("10.0.0.1(rw", "syntax error: bad option list"),
            ("10.0.0.1(rw)x", "syntax error: bad option list"),
            ("10.0.0.1/33(rw)", "Invalid prefix `33' for 10.0.0.1/33"),
            ("10.0.0.1/-1(rw)", "Invalid prefix `-1' for 10.0.0.1/-1"),
            ("10.0.0/8(rw)", "Invalid IP address 10.0.0/8"),
            ("010.0.0.1/8(rw)", "Invalid IP address 010.0.0.1/8"),
            (
                "10.0.0.1/1.2.3(rw)",
                "Invalid netmask `1.2.3' for 10.0.0.1/1.2.3",
            ),
        ] {
            assert_eq!(
                problems(&format!("/srv/a {client}\n"), LINUX),
                vec![format!("line 1: {message}")],
                "{client}"
            );
        }
    }

    #[test]
    fn clients_exportfs_accepts_pass() {
        for client in [
            "*(ro)",
            "(rw)",
            "",
            "@netgroup(rw)",
            "*.example.com(rw)",
            "gss/krb5(rw)",
            "10.0.0.0/255.0.0.0(rw)",
            "10.0.0.1/(rw)",
            "10.0.0.1/+8(rw)",
            "fe80::/10(rw)",
            "fe80::/ffc0::(rw)",
            "-rw,no_subtree_check 10.0.0.1",
        ] {
            assert_eq!(
                problems(&format!("/srv/a {client}\n"), LINUX),
                Vec::<String>::new(),
                "{client}"
            );
        }
    }

    #[test]
    fn a_relative_path_and_an_unterminated_quote_are_reported() {
        assert_eq!(
            problems("srv/a 10.0.0.1(rw)\n", LINUX),
            vec!["line 1: export path srv/a is not absolute"]
        );
        let quote = problems("\"/srv/a 10.0.0.1(rw)\n", LINUX);
        assert!(
            quote[0].starts_with("line 1: unterminated quote"),
            "{quote:?}"
        );
    }

    #[test]
    fn macos_style_options_are_unknown_keywords_for_linux() {
        assert_eq!(
            problems("/srv/a -alldirs -mapall=501:20 10.0.0.1\n", LINUX),
            vec!["line 1: unknown keyword \"alldirs\""]
        );
    }

    #[test]
    fn the_same_directory_exported_twice_to_one_client_is_reported() {
        assert_eq!(
            problems("/srv/a 10.0.0.1(rw)\n/srv/a/ 10.0.0.1(ro)\n", LINUX),
            vec![
                "line 2: /srv/a is exported to 10.0.0.1 again (first on line 1): exportfs rejects duplicated export entries"
            ]
        );
    }

    #[test]
    fn a_crlf_blank_line_is_reported_because_exportfs_stops_reading_there() {
        let text = "/srv/a 10.0.0.1(rw)\r\n\r\n/srv/b 10.0.0.1(rw)\r\n";
        assert_eq!(
            problems(text, LINUX),
            vec![
                "line 2: this line starts with a carriage return (a blank line with a CRLF ending?), so exportfs stops reading the file here and ignores the exports from line 3 on"
            ]
        );
        assert_eq!(
            problems("/srv/a 10.0.0.1(rw)\r\n\r\n", LINUX),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_foreign_problem_that_keeps_exportfs_from_reading_devenvs_block_affects_the_block() {
        let mut file = parse("/srv/a 10.0.0.1(rw)\r\n\r\n# hand edit\r\n");
        file.set_block("shop", 501, &[linux_line("/srv/shop")]);
        let problems = file.check();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 2);
        assert!(!problems[0].in_devenv_block("shop", 501));
        assert!(problems[0].affects("shop", 501));
        assert!(!problems[0].affects("blog", 501));

        let mut file = parse("/srv/a 10.0.0.1(rw,bogus)\n");
        file.set_block("shop", 501, &[linux_line("/srv/shop")]);
        assert!(
            file.check()[0].affects("shop", 501),
            "exportfs stops at the bad option"
        );

        let mut file = parse("\"/srv/a 10.0.0.1(rw)\n");
        file.set_block("shop", 501, &[linux_line("/srv/shop")]);
        assert!(
            file.check()[0].affects("shop", 501),
            "the open quote runs into the block"
        );

        let mut file = parse("/srv/a 10.0.0.1/33(rw)\n");
        file.set_block("shop", 501, &[linux_line("/srv/shop")]);
        assert!(
            !file.check()[0].affects("shop", 501),
            "exportfs reads on after a bad client"
        );
    }

    #[test]
    fn a_continuation_before_crlf_is_no_continuation_for_exportfs() {
        let found = problems("/srv/a \\\r\n  10.0.0.1(rw)\r\n", LINUX);
        assert_eq!(
            found,
            vec![
                "line 1: a backslash before a CRLF line ending does not continue the line for exportfs: use LF line endings or join the lines",
                "line 2: export path 10.0.0.1(rw) is not absolute"
            ]
        );
    }

    #[test]
    fn devenv_lines_must_not_export_to_everyone_or_a_public_network() {
        let block = |line: &str| {
            format!("# BEGIN devenv shop uid=501\n{line}\n# END devenv shop uid=501\n")
        };
        for line in [
            "/srv/a *(rw)",
            "/srv/a (rw)",
            "/srv/a",
            "/srv/a -rw",
            "/srv/a 8.8.8.0/24(rw)",
            "/srv/a 10.0.0.0/7(rw)",
            "/srv/a example.com(rw)",
            "/srv/a 192.168.0.0/0.0.0.0(rw)",
        ] {
            let found = problems(&block(line), LINUX);
            assert_eq!(found.len(), 1, "{line}: {found:?}");
        }
        assert_eq!(
            problems("/srv/a *(rw)\n", LINUX),
            Vec::<String>::new(),
            "foreign lines keep their scope"
        );
    }

    #[test]
    fn devenv_macos_lines_are_checked_for_options_and_scope() {
        let block = |line: &str| {
            format!("# BEGIN devenv shop uid=501\n{line}\n# END devenv shop uid=501\n")
        };
        for (line, expected) in [
            ("/a -alldirs", "no host or -network"),
            ("/a -bogus 192.168.64.2", "unknown option -bogus"),
            ("/a -mapall= 192.168.64.2", "option -mapall= needs a value"),
            (
                "/a -network 8.8.8.0 -mask 255.255.255.0",
                "not inside the private ranges",
            ),
            ("/a -network 192.168.64.0", "needs -mask"),
            ("/a 192.168.64.2 -mask 255.0.0.0", "-mask without -network"),
            ("relative 192.168.64.2", "not absolute"),
        ] {
            let found = problems(&block(line), MACOS);
            assert_eq!(found.len(), 1, "{line}: {found:?}");
            assert!(found[0].contains(expected), "{line}: {found:?}");
        }
        assert_eq!(
            problems(
                &block("/a -alldirs -network=192.168.64.0 -mask=255.255.255.0"),
                MACOS
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_macos_continuation_into_a_comment_is_reported() {
        let found = problems("/a 192.168.64.2 \\\n# note\n", MACOS);
        assert!(
            found[0].contains("reads the comment on line 2"),
            "{found:?}"
        );
        let found = problems("# note \\\n/a 192.168.64.2\n", MACOS);
        assert!(found[0].contains("also ignores line 2"), "{found:?}");
    }

    #[test]
    fn a_foreign_macos_continuation_into_devenvs_block_is_reported() {
        let mut file = ExportsFile::parse("/a \\\n", MACOS).unwrap();
        file.set_block("shop", 501, &[mac_line("/b")]);
        let found = file.check();
        let joined = found
            .iter()
            .find(|p| p.message.contains("joins this line"))
            .expect("the join is reported");
        assert_eq!(joined.block, None);
        assert!(joined.affects("shop", 501));
    }

    #[test]
    fn the_scope_rule_accepts_a_private_host_or_subnet() {
        for ok in [
            "192.168.39.12",
            "192.168.64.0/24",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "172.31.255.0/24",
            "10.1.2.3/255.255.0.0",
            "192.168.0.0/16",
            "192.168.1.7/32",
        ] {
            assert_eq!(check_client_scope(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn the_scope_rule_rejects_wildcards_names_and_public_or_wide_networks() {
        for (bad, kind) in [
            ("*", "everyone"),
            ("", "everyone"),
            ("0.0.0.0/0", "everyone"),
            ("*.example.com", "ipv4"),
            ("example.com", "ipv4"),
            ("@group", "ipv4"),
            ("::1", "ipv4"),
            ("10.0.0.1/33", "ipv4"),
            ("10.0.0.1/255.0.255.0", "ipv4"),
            ("010.0.0.1", "ipv4"),
            ("8.8.8.0/24", "public"),
            ("8.8.8.8", "public"),
            ("10.0.0.0/7", "public"),
            ("172.32.0.0/16", "public"),
            ("172.16.0.0/11", "public"),
            ("0.0.0.0", "host"),
            ("255.255.255.255", "host"),
            ("224.0.0.1", "host"),
        ] {
            let err = check_client_scope(bad).unwrap_err();
            let matches = match kind {
                "everyone" => matches!(err, ScopeError::Everyone { .. }),
                "ipv4" => matches!(err, ScopeError::NotIpv4 { .. }),
                "public" => matches!(err, ScopeError::Public { .. }),
                _ => matches!(err, ScopeError::NotAHost { .. }),
            };
            assert!(matches, "{bad}: {err}");
        }
    }

    #[test]
    fn escape_path_round_trips_through_the_linux_reader_for_every_byte() {
        let all: String = (1u8..=0x7f)
            .map(char::from)
            .filter(|&c| c != '\n')
            .collect();
        let path = format!("/x{all}é");
        let text = format!("{} 10.0.0.1(rw)\n", escape_path(&path));
        let entries = parse(&text).entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].path, Path::new(&path));
        assert_eq!(problems(&text, LINUX), Vec::<String>::new());
    }
}
