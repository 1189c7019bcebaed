//! One walk of the project's source tree, shared by the checks that need its size: the number of
//! directories (each costs one inotify watch when devenv watches the tree) and a sample of files
//! whose metadata the latency check times.
//!
//! The walk skips what a watcher skips: `.git`, `node_modules`, `target` and the plain names in
//! the root `.gitignore` (`build/`, `/dist`, `.cache`). Glob patterns and negations are not
//! interpreted, so a tree ignored only through globs is counted too, which errs on the side of
//! asking for more watches. Symbolic links are not followed and unreadable directories are
//! skipped; the walk stops after [`MAX_DIRS`] directories so a huge tree cannot stall the doctor.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Directories a watcher never descends into, whatever `.gitignore` says.
const ALWAYS_SKIPPED: [&str; 3] = [".git", "node_modules", "target"];

/// Upper bound on the directories visited: beyond this the count is reported as "at least".
pub const MAX_DIRS: usize = 500_000;

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Directories, the root included.
    pub dirs: usize,
    /// Regular files, relative to the root, breadth first, at most the number asked for.
    pub files: Vec<PathBuf>,
    /// False when the walk stopped at [`MAX_DIRS`].
    pub complete: bool,
}

/// Walk `root` breadth first, keeping up to `max_files` files for timing.
pub fn scan(root: &Path, max_files: usize) -> std::io::Result<Tree> {
    let ignored = ignored_names(root);
    let mut tree = Tree {
        dirs: 0,
        files: Vec::new(),
        complete: true,
    };
    // Fail early (and visibly) when the root itself cannot be read.
    std::fs::read_dir(root)?;
    let mut queue = VecDeque::from([PathBuf::new()]);
    while let Some(rel) = queue.pop_front() {
        if tree.dirs >= MAX_DIRS {
            tree.complete = false;
            break;
        }
        tree.dirs += 1;
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        let mut names: Vec<(std::ffi::OsString, std::fs::FileType)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_type().ok().map(|t| (e.file_name(), t)))
            .collect();
        // Directory order is the file system's; sorting makes the sample reproducible.
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind) in names {
            let at_root = rel.as_os_str().is_empty();
            let text = name.to_string_lossy();
            if kind.is_dir() {
                let skip = ALWAYS_SKIPPED.contains(&text.as_ref())
                    || ignored.anywhere.contains(text.as_ref())
                    || (at_root && ignored.at_root.contains(text.as_ref()));
                if !skip {
                    queue.push_back(rel.join(&name));
                }
            } else if kind.is_file() && tree.files.len() < max_files {
                tree.files.push(rel.join(&name));
            }
        }
    }
    Ok(tree)
}

/// Plain names from the root `.gitignore`: those anchored with a leading `/` apply at the root
/// only, the others at any depth.
#[derive(Debug, Default, PartialEq, Eq)]
struct Ignored {
    at_root: BTreeSet<String>,
    anywhere: BTreeSet<String>,
}

fn ignored_names(root: &Path) -> Ignored {
    parse_gitignore(&std::fs::read_to_string(root.join(".gitignore")).unwrap_or_default())
}

fn parse_gitignore(text: &str) -> Ignored {
    let mut out = Ignored::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let anchored = line.starts_with('/');
        let name = line.trim_start_matches('/').trim_end_matches('/');
        // Only single plain names: globs and nested paths need a real matcher.
        if name.is_empty() || name.contains(['*', '?', '[', '/', '\\']) {
            continue;
        }
        if anchored {
            out.at_root.insert(name.to_string());
        } else {
            out.anywhere.insert(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }

    #[test]
    fn git_node_modules_and_target_are_never_walked() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "src/main.rs",
            ".git/objects/ab/cd",
            "web/node_modules/react/index.js",
            "target/debug/app",
        ] {
            touch(dir.path(), f);
        }
        let tree = scan(dir.path(), 100).unwrap();
        // root, src, web
        assert_eq!(tree.dirs, 3);
        assert_eq!(tree.files, vec![PathBuf::from("src/main.rs")]);
        assert!(tree.complete);
    }

    #[test]
    fn plain_names_in_gitignore_are_skipped_anchored_ones_only_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".gitignore"),
            "# build output\n/dist\ncache/\n*.log\n!keep\n",
        )
        .unwrap();
        for f in [
            "dist/a.js",
            "app/dist/b.js",
            "app/cache/c",
            "cache/d",
            "a.log",
        ] {
            touch(dir.path(), f);
        }
        let tree = scan(dir.path(), 100).unwrap();
        // root, app, app/dist
        assert_eq!(tree.dirs, 3);
        assert_eq!(
            tree.files,
            vec![
                PathBuf::from(".gitignore"),
                PathBuf::from("a.log"),
                PathBuf::from("app/dist/b.js")
            ]
        );
    }

    #[test]
    fn the_sample_is_capped_and_breadth_first() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["deep/er/x", "a", "b", "c"] {
            touch(dir.path(), f);
        }
        let tree = scan(dir.path(), 2).unwrap();
        assert_eq!(tree.files, vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(tree.dirs, 3);
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan(&dir.path().join("nope"), 10).is_err());
    }
}
