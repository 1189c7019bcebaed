//! What the exports file reports to devenv: why a block cannot be edited ([`FileError`]), the
//! exports it holds ([`Entry`]), a foreign export that overlaps the project's ([`Conflict`]),
//! and a line the NFS server would refuse ([`LineProblem`]).

use super::*;

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
