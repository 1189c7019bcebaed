//! Which changed paths matter, and to whom. Pure over paths (ignore files are read only when
//! the source asks, as it meets them), so the routing rules are tested without touching notify.
//!
//! Ignore rules are those of every `.gitignore` and `.devenvignore` in the tree (same syntax; the
//! latter for what the team commits but a watcher should not react to), each applying below its
//! own directory as git applies them, and `.git/` always. The source uses the same rules to
//! decide which directories it watches at all, so an ignored `node_modules` costs no watch.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::config::{Loaded, OnChange};

/// The ignore file devenv reads beside `.gitignore`.
pub const DEVENVIGNORE: &str = ".devenvignore";

/// The names of the files whose lines are ignore rules, in the order their rules apply (a later
/// line wins, so `.devenvignore` can re-include what `.gitignore` leaves out).
pub const IGNORE_FILES: [&str; 2] = [".gitignore", DEVENVIGNORE];

/// The project's ignore rules, anchored at the watched directory: the rules of each directory
/// that holds an ignore file.
#[derive(Debug, Clone)]
pub struct Ignores {
    root: PathBuf,
    dirs: BTreeMap<PathBuf, Gitignore>,
}

impl Ignores {
    /// No rules yet but `.git/`: the source adds each directory's as it walks the tree.
    pub fn new(root: &Path) -> Ignores {
        Ignores {
            root: root.to_path_buf(),
            dirs: BTreeMap::new(),
        }
    }

    /// Read the ignore files of `dir` (absolute, below the root), replacing what was known of
    /// them (nothing, when they are gone). A missing file is no rule; a line that does not parse is skipped (as git does)
    /// rather than stopping the watcher.
    pub fn read_dir(&mut self, dir: &Path) {
        let mut builder = GitignoreBuilder::new(dir);
        for name in IGNORE_FILES {
            let file = dir.join(name);
            if file.is_file() {
                let _ = builder.add(file);
            }
        }
        self.set(dir, builder);
    }

    /// Rules from text, as the ignore files of `dir` would hold them (for tests).
    pub fn add_text(&mut self, dir: &Path, gitignore: &str, devenvignore: &str) {
        let mut builder = GitignoreBuilder::new(dir);
        for line in gitignore.lines().chain(devenvignore.lines()) {
            let _ = builder.add_line(None, line);
        }
        self.set(dir, builder);
    }

    /// Rules from text at the root, for tests: `gitignore` and `devenvignore` as the two files
    /// would hold.
    pub fn from_text(root: &Path, gitignore: &str, devenvignore: &str) -> Ignores {
        let mut ignores = Ignores::new(root);
        ignores.add_text(root, gitignore, devenvignore);
        ignores
    }

    fn set(&mut self, dir: &Path, builder: GitignoreBuilder) {
        match builder.build() {
            Ok(rules) if !rules.is_empty() => {
                self.dirs.insert(dir.to_path_buf(), rules);
            }
            _ => {
                self.dirs.remove(dir);
            }
        }
    }

    /// Drop the rules of `dir` and of every directory below it (gone, or its files removed).
    pub fn forget(&mut self, dir: &Path) {
        let below: Vec<PathBuf> = self
            .dirs
            .range(dir.to_path_buf()..)
            .take_while(|(d, _)| d.starts_with(dir))
            .map(|(d, _)| d.clone())
            .collect();
        for d in below {
            self.dirs.remove(&d);
        }
    }

    /// Whether a path (absolute, below the root) is ignored: inside `.git`, outside the root, or
    /// matched on itself or a parent directory by the rules of a directory above it. As in git,
    /// the nearest ignore file that has a say decides (a nested `!keep` re-includes), and nothing
    /// below an ignored directory comes back.
    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return true;
        };
        let depth = rel.components().count();
        let mut prefix = self.root.clone();
        let mut rules: Vec<&Gitignore> = self.dirs.get(&self.root).into_iter().collect();
        for (i, part) in rel.components().enumerate() {
            let Component::Normal(name) = part else {
                return true;
            };
            if name == ".git" {
                return true;
            }
            prefix.push(name);
            let dir = is_dir || i + 1 < depth;
            for r in rules.iter().rev() {
                match r.matched(&prefix, dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => break,
                    Match::None => {}
                }
            }
            if i + 1 < depth {
                rules.extend(self.dirs.get(&prefix));
            }
        }
        false
    }
}

/// Whether a changed path is an ignore file, whose change means the rules must be read again.
pub fn is_ignore_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| IGNORE_FILES.iter().any(|f| n == *f))
}

/// One action to run for one batch: what to do, for which services, and every path that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub action: OnChange,
    /// The services it is for; for `helm`, every service that asked (one release run serves all),
    /// or `release` when only the chart or values changed.
    pub services: Vec<String>,
    /// Paths relative to the project root, sorted, each once.
    pub paths: Vec<PathBuf>,
}

/// The name a helm job carries when the chart or a values file changed.
pub const RELEASE: &str = "release";

/// The per-service globs and the chart and values files, compiled once.
#[derive(Debug, Clone)]
pub struct Routes {
    services: Vec<(String, OnChange, GlobSet)>,
    chart: PathBuf,
    values: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("services.{service}.watch: {source}")]
pub struct GlobError {
    pub service: String,
    #[source]
    pub source: globset::Error,
}

impl Routes {
    /// Compile every service's `watch` globs. A `*` does not cross `/` (as in `.gitignore`);
    /// `**` does.
    pub fn new(loaded: &Loaded) -> Result<Routes, GlobError> {
        let mut services = Vec::new();
        for (name, service) in &loaded.config.services {
            if service.watch.is_empty() {
                continue;
            }
            let mut set = GlobSetBuilder::new();
            for pattern in &service.watch {
                let glob = crate::config::watch_glob(pattern).map_err(|source| GlobError {
                    service: name.clone(),
                    source,
                })?;
                set.add(glob);
            }
            let set = set.build().map_err(|source| GlobError {
                service: name.clone(),
                source,
            })?;
            services.push((name.clone(), service.on_change, set));
        }
        Ok(Routes {
            services,
            chart: normal(&loaded.config.project.chart),
            values: loaded
                .config
                .project
                .values
                .iter()
                .map(|v| normal(v))
                .collect(),
        })
    }

    /// The jobs for one batch of paths relative to the project root: one per service with a
    /// match (in service order), except `helm`, which runs once for all who asked and for any
    /// change to the chart or a values file.
    pub fn route(&self, paths: &[PathBuf]) -> Vec<Job> {
        let mut per_service: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
        let mut helm_services: Vec<String> = Vec::new();
        let mut helm_paths: Vec<PathBuf> = Vec::new();
        for path in paths {
            let path = normal(path);
            let release = path.starts_with(&self.chart) || self.values.contains(&path);
            if release {
                helm_paths.push(path.clone());
                if !helm_services.iter().any(|s| s == RELEASE) {
                    helm_services.push(RELEASE.to_string());
                }
            }
            for (name, action, set) in &self.services {
                if !set.is_match(&path) {
                    continue;
                }
                if *action == OnChange::Helm {
                    helm_paths.push(path.clone());
                    if !helm_services.iter().any(|s| s == name) {
                        helm_services.push(name.clone());
                    }
                } else {
                    per_service.entry(name).or_default().push(path.clone());
                }
            }
        }
        let mut jobs: Vec<Job> = Vec::new();
        for (name, action, _) in &self.services {
            if let Some(mut paths) = per_service.remove(name.as_str()) {
                paths.sort();
                paths.dedup();
                jobs.push(Job {
                    action: *action,
                    services: vec![name.clone()],
                    paths,
                });
            }
        }
        if !helm_paths.is_empty() {
            helm_paths.sort();
            helm_paths.dedup();
            helm_services.sort();
            jobs.push(Job {
                action: OnChange::Helm,
                services: helm_services,
                paths: helm_paths,
            });
        }
        jobs
    }
}

/// A relative path without `./` parts, so `./deploy/chart` and `deploy/chart` compare equal.
fn normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn loaded(toml: &str) -> Loaded {
        Loaded {
            file: PathBuf::from("/p/devenv.toml"),
            root: PathBuf::from("/p"),
            config: config::parse(toml).expect("valid config"),
        }
    }

    const CONFIG: &str = r#"
[project]
name = "shop"
chart = "./deploy/chart"
values = ["deploy/values-dev.yaml"]

[services.api]
watch = ["services/api/**", "shared/**"]
on_change = "restart"

[services.web]
watch = ["services/web/**", "shared/*.ts"]
on_change = "forward"

[services.worker]
watch = ["services/worker/**"]
on_change = "helm"
"#;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_path_matching_two_services_triggers_both() {
        let routes = Routes::new(&loaded(CONFIG)).unwrap();
        let jobs = routes.route(&paths(&["shared/a.ts", "services/api/main.go"]));
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].services, ["api"]);
        assert_eq!(jobs[0].action, OnChange::Restart);
        assert_eq!(
            jobs[0].paths,
            paths(&["services/api/main.go", "shared/a.ts"])
        );
        assert_eq!(jobs[1].services, ["web"]);
        assert_eq!(jobs[1].paths, paths(&["shared/a.ts"]));
    }

    #[test]
    fn a_single_star_does_not_cross_directories() {
        let routes = Routes::new(&loaded(CONFIG)).unwrap();
        let jobs = routes.route(&paths(&["shared/deep/a.ts"]));
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].services, ["api"]);
    }

    #[test]
    fn chart_and_values_changes_run_helm_once_with_helm_services() {
        let routes = Routes::new(&loaded(CONFIG)).unwrap();
        let jobs = routes.route(&paths(&[
            "deploy/chart/templates/api.yaml",
            "deploy/values-dev.yaml",
            "services/worker/main.py",
            "README.md",
        ]));
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].action, OnChange::Helm);
        assert_eq!(jobs[0].services, ["release", "worker"]);
        assert_eq!(jobs[0].paths.len(), 3);
    }

    #[test]
    fn unmatched_paths_trigger_nothing() {
        let routes = Routes::new(&loaded(CONFIG)).unwrap();
        assert!(routes.route(&paths(&["docs/x.md"])).is_empty());
    }

    #[test]
    fn a_bad_glob_names_the_service() {
        let bad = CONFIG.replace("services/api/**", "services/[api");
        let err = Routes::new(&loaded(&bad)).unwrap_err();
        assert!(err.to_string().starts_with("services.api.watch:"), "{err}");
    }

    #[test]
    fn git_dir_and_ignore_rules_are_ignored() {
        let root = Path::new("/p");
        let ign = Ignores::from_text(root, "target/\n*.log\n", "node_modules\n");
        assert!(ign.is_ignored(Path::new("/p/.git/index"), false));
        assert!(ign.is_ignored(Path::new("/p/target/debug/x"), false));
        assert!(ign.is_ignored(Path::new("/p/web/node_modules/a/b.js"), false));
        assert!(ign.is_ignored(Path::new("/p/a.log"), false));
        assert!(ign.is_ignored(Path::new("/elsewhere/a"), false));
        assert!(!ign.is_ignored(Path::new("/p/src/main.rs"), false));
        assert!(!ign.is_ignored(Path::new("/p/.gitignore"), false));
    }

    #[test]
    fn a_nested_gitignore_applies_below_its_own_directory_only() {
        let mut ign = Ignores::new(Path::new("/p"));
        ign.add_text(Path::new("/p/web"), "dist/\n*.gen.ts\n", "");
        assert!(ign.is_ignored(Path::new("/p/web/dist"), true));
        assert!(ign.is_ignored(Path::new("/p/web/dist/app.js"), false));
        assert!(ign.is_ignored(Path::new("/p/web/src/a.gen.ts"), false));
        assert!(!ign.is_ignored(Path::new("/p/web/src/a.ts"), false));
        assert!(!ign.is_ignored(Path::new("/p/api/dist/app.js"), false));
        assert!(!ign.is_ignored(Path::new("/p/api/a.gen.ts"), false));
    }

    #[test]
    fn the_nearest_rule_decides_but_nothing_below_an_ignored_directory_returns() {
        let mut ign = Ignores::from_text(Path::new("/p"), "*.log\nvendor/\n", "");
        ign.add_text(Path::new("/p/keep"), "!*.log\n", "");
        ign.add_text(Path::new("/p/vendor/lib"), "!*\n", "");
        assert!(ign.is_ignored(Path::new("/p/a.log"), false));
        assert!(!ign.is_ignored(Path::new("/p/keep/a.log"), false));
        assert!(ign.is_ignored(Path::new("/p/vendor/lib/x.c"), false));
    }

    #[test]
    fn devenvignore_lines_come_after_gitignore_lines() {
        let ign = Ignores::from_text(Path::new("/p"), "gen/\n", "!gen/\n");
        assert!(!ign.is_ignored(Path::new("/p/gen/a.ts"), false));
    }

    #[test]
    fn rules_read_from_disk_are_dropped_when_their_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("web")).unwrap();
        std::fs::write(root.join("web/.gitignore"), "dist/\n").unwrap();
        std::fs::write(root.join("web").join(DEVENVIGNORE), "*.tmp\n").unwrap();
        let mut ign = Ignores::new(root);
        ign.read_dir(&root.join("web"));
        assert!(ign.is_ignored(&root.join("web/dist"), true));
        assert!(ign.is_ignored(&root.join("web/a.tmp"), false));
        std::fs::remove_file(root.join("web/.gitignore")).unwrap();
        ign.read_dir(&root.join("web"));
        assert!(!ign.is_ignored(&root.join("web/dist"), true));
        assert!(ign.is_ignored(&root.join("web/a.tmp"), false));
        ign.forget(root);
        assert!(!ign.is_ignored(&root.join("web/a.tmp"), false));
    }
}
