//! A build context as `docker build` sends it: the directory's files minus what `.dockerignore`
//! excludes, as a tar stream, plus a hash of exactly that content so an unchanged context is
//! never sent again.
//!
//! `.dockerignore` follows Docker's rules (moby's patternmatcher and the CLI): one pattern a
//! line, `#` comments, paths relative to the context root whether or not they start with `/`,
//! `*` and `?` within one path segment, `**` across segments, a pattern that matches a directory
//! excludes everything below it, `!` re-includes, and the last matching pattern wins. The
//! Dockerfile and `.dockerignore` are always sent, as the Docker CLI does.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::fsutil::Fnv;

/// One `.dockerignore` pattern.
#[derive(Debug, Clone)]
struct Pattern {
    glob: GlobMatcher,
    exception: bool,
}

/// The rules of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parse the file's text; a pattern that is not a valid glob is an error naming its line.
    pub fn parse(text: &str) -> Result<DockerIgnore, crate::unreadable::Unreadable> {
        let mut patterns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, raw) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(raw);
            if cleaned.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!(".dockerignore line {}: {e}", i + 1))?
                .compile_matcher();
            patterns.push(Pattern { glob, exception });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether `rel` (slash-separated, relative to the context root) is left out.
    pub fn excludes(&self, rel: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            if matches_or_parent(&p.glob, rel) {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether some `!` pattern could bring back a file below an excluded directory.
    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }
}

/// Docker's `filepath.Clean` of a pattern, made relative to the root.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// A pattern matches a path when it matches the path itself or one of its parent directories.
fn matches_or_parent(glob: &GlobMatcher, rel: &str) -> bool {
    if glob.is_match(rel) {
        return true;
    }
    let mut end = rel.len();
    while let Some(i) = rel[..end].rfind('/') {
        if glob.is_match(&rel[..i]) {
            return true;
        }
        end = i;
    }
    false
}

/// What is sent of one context directory.
#[derive(Debug, Clone)]
pub struct Context {
    pub root: PathBuf,
    /// Entries relative to `root`, slash-separated, sorted (directories before their contents).
    pub entries: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read the build context {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", .path.display())]
    Ignore { path: PathBuf, message: String },
    #[error("the Dockerfile {} is not in the build context {}", .dockerfile, .root.display())]
    NoDockerfile { root: PathBuf, dockerfile: String },
}

impl Context {
    /// The files of `root` that `docker build` would send with `dockerfile` (relative to root).
    pub fn scan(root: &Path, dockerfile: &str) -> Result<Context, ContextError> {
        let read = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ContextError::Read { path, source }
        };
        let ignore_file = root.join(".dockerignore");
        let ignore = match std::fs::read_to_string(&ignore_file) {
            Ok(text) => DockerIgnore::parse(&text).map_err(|message| ContextError::Ignore {
                path: ignore_file.clone(),
                message: message.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
            Err(e) => return Err(read(&ignore_file)(e)),
        };
        let dockerfile = clean(dockerfile);
        if !root.join(&dockerfile).is_file() {
            return Err(ContextError::NoDockerfile {
                root: root.to_path_buf(),
                dockerfile,
            });
        }
        let always = [dockerfile.as_str(), ".dockerignore"];
        let mut entries = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            let abs = root.join(&dir);
            let mut children: Vec<(String, bool)> = Vec::new();
            for entry in std::fs::read_dir(&abs).map_err(read(&abs))? {
                let entry = entry.map_err(read(&abs))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                let is_dir = entry.file_type().map_err(read(&entry.path()))?.is_dir();
                children.push((rel, is_dir));
            }
            children.sort();
            for (rel, is_dir) in children.into_iter().rev() {
                let excluded = ignore.excludes(&rel) && !always.contains(&rel.as_str());
                if is_dir {
                    // An excluded directory is still walked when an exception may re-include
                    // something inside it, as Docker does.
                    if !excluded || ignore.has_exceptions() {
                        stack.push(rel.clone());
                    }
                    if !excluded {
                        entries.push(rel);
                    }
                } else if !excluded {
                    entries.push(rel);
                }
            }
        }
        entries.sort();
        Ok(Context {
            root: root.to_path_buf(),
            entries,
        })
    }

    /// A hash of every sent entry's name, type, permissions and content, with the Dockerfile's
    /// name: equal hashes mean the daemon would be sent the same context.
    pub fn hash(&self, dockerfile: &str) -> Result<String, ContextError> {
        let mut h = Fnv::new();
        h.field(dockerfile.as_bytes());
        for rel in &self.entries {
            let path = self.root.join(rel);
            let meta = std::fs::symlink_metadata(&path).map_err(|source| ContextError::Read {
                path: path.clone(),
                source,
            })?;
            h.field(rel.as_bytes());
            use std::os::unix::fs::PermissionsExt;
            h.field(&meta.permissions().mode().to_le_bytes());
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|source| ContextError::Read {
                    path: path.clone(),
                    source,
                })?;
                h.field(target.to_string_lossy().as_bytes());
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).map_err(|source| ContextError::Read {
                    path: path.clone(),
                    source,
                })?;
                h.field(&bytes);
            }
        }
        Ok(format!("{:016x}", h.finish()))
    }

    /// The context as the tar stream `POST /build` takes. Symlinks are sent as symlinks.
    pub fn tar(&self) -> Result<Vec<u8>, ContextError> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        for rel in &self.entries {
            let path = self.root.join(rel);
            builder
                .append_path_with_name(&path, rel)
                .map_err(|source| ContextError::Read { path, source })?;
        }
        builder.into_inner().map_err(|source| ContextError::Read {
            path: self.root.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn a_directory_pattern_excludes_everything_below_it() {
        let i = ignore("node_modules\n");
        assert!(i.excludes("node_modules"));
        assert!(i.excludes("node_modules/a/b.js"));
        assert!(!i.excludes("src/node_modules.txt"));
    }

    #[test]
    fn patterns_are_anchored_at_the_root_with_or_without_a_slash() {
        let i = ignore("/build\nlogs/*.log\n");
        assert!(i.excludes("build/out"));
        assert!(!i.excludes("src/build"), "not a **/ pattern");
        assert!(i.excludes("logs/a.log"));
        assert!(!i.excludes("logs/sub/a.log"), "* stays within one segment");
    }

    #[test]
    fn double_star_crosses_directories() {
        let i = ignore("**/*.tmp\n");
        assert!(i.excludes("a.tmp"));
        assert!(i.excludes("a/b/c.tmp"));
        assert!(!i.excludes("a/b/c.txt"));
    }

    #[test]
    fn an_exception_re_includes_and_the_last_match_wins() {
        let i = ignore("*.md\n!README.md\n");
        assert!(i.excludes("CHANGES.md"));
        assert!(!i.excludes("README.md"));
        let j = ignore("!README.md\n*.md\n");
        assert!(j.excludes("README.md"), "the later pattern wins");
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let i = ignore("# secrets\n\n  .env  \n");
        assert!(i.excludes(".env"));
        assert!(!i.excludes("# secrets"));
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn the_dockerfile_and_dockerignore_are_sent_even_when_excluded() {
        let dir = tree(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "*\n!app\n"),
            ("app/main.go", "package main\n"),
            ("secret.env", "x\n"),
        ]);
        let c = Context::scan(dir.path(), "Dockerfile").unwrap();
        assert_eq!(
            c.entries,
            vec![".dockerignore", "Dockerfile", "app", "app/main.go"]
        );
    }

    #[test]
    fn an_exception_inside_an_excluded_directory_is_found() {
        let dir = tree(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "vendor\n!vendor/keep.txt\n"),
            ("vendor/keep.txt", "k"),
            ("vendor/drop.txt", "d"),
        ]);
        let c = Context::scan(dir.path(), "Dockerfile").unwrap();
        assert!(c.entries.contains(&"vendor/keep.txt".to_string()));
        assert!(!c.entries.contains(&"vendor/drop.txt".to_string()));
    }

    #[test]
    fn the_hash_changes_with_sent_content_only() {
        let dir = tree(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "*.log\n"),
            ("a.txt", "1"),
        ]);
        let hash = || {
            Context::scan(dir.path(), "Dockerfile")
                .unwrap()
                .hash("Dockerfile")
                .unwrap()
        };
        let first = hash();
        std::fs::write(dir.path().join("debug.log"), "noise").unwrap();
        assert_eq!(hash(), first, "an ignored file does not count");
        std::fs::write(dir.path().join("a.txt"), "2").unwrap();
        assert_ne!(hash(), first, "a sent file does");
    }

    #[test]
    fn the_tar_holds_exactly_the_entries() {
        let dir = tree(&[("Dockerfile", "FROM scratch\n"), ("x/y", "z")]);
        let c = Context::scan(dir.path(), "Dockerfile").unwrap();
        let bytes = c.tar().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .map(|n| n.trim_end_matches('/').to_string())
            .collect();
        assert_eq!(names, vec!["Dockerfile", "x", "x/y"]);
    }

    #[test]
    fn a_missing_dockerfile_is_named() {
        let dir = tree(&[("a", "b")]);
        let err = Context::scan(dir.path(), "Dockerfile").unwrap_err();
        assert!(matches!(err, ContextError::NoDockerfile { .. }), "{err}");
    }
}
