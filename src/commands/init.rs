//! `devenv init`: write a commented starter devenv.toml, or with `--example` a complete example
//! project (devenv.toml, an umbrella chart with Postgres and OpenSearch subcharts, values).
//! Existing files are never overwritten unless `--force` says so, and then only once that is
//! confirmed (or `--yes`). The files are a plan like every change: `--dry-run` shows each with
//! its contents.

use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::error::Error;
use crate::execute::Executor;
use crate::plan::{Action, Plan, Stage};
use crate::templates;

/// Write a starter devenv.toml (or a whole example project) into the current directory.
///
/// Without --example, devenv.toml points `chart` at the first Helm chart found below the
/// directory. Nothing is overwritten unless --force is given.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also write an example project: an umbrella chart (api, worker, Postgres and OpenSearch
    /// subcharts) and team values, ready for `devenv up`.
    #[arg(long)]
    pub example: bool,
    /// Project name (default: the directory's name, made a valid DNS label).
    #[arg(long)]
    pub name: Option<String>,
    /// Overwrite files that already exist (asked first, unless --yes).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub change: super::change::Flags,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let dir = &ctx.cwd;
    let name = args.name.clone().unwrap_or_else(|| {
        if args.example {
            "shop".to_string()
        } else {
            name_from_dir(dir)
        }
    });
    let files: Vec<(PathBuf, String)> = if args.example {
        templates::EXAMPLE
            .iter()
            .map(|(_, dest, text)| {
                let text = match (*dest, &args.name) {
                    ("devenv.toml", Some(name)) => {
                        text.replacen("name = \"shop\"", &format!("name = \"{name}\""), 1)
                    }
                    _ => text.to_string(),
                };
                (PathBuf::from(dest), text)
            })
            .collect()
    } else {
        let chart = find_chart(dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "deploy/chart".to_string());
        let text = templates::STARTER_CONFIG
            .replace("{{name}}", &name)
            .replace("{{chart}}", &chart);
        vec![(PathBuf::from("devenv.toml"), text)]
    };

    let existing: Vec<&Path> = files
        .iter()
        .map(|(p, _)| p.as_path())
        .filter(|p| dir.join(p).exists())
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(Error::Usage {
            message: format!(
                "{} already exist{}: {}",
                if existing.len() == 1 {
                    "this file"
                } else {
                    "these files"
                },
                if existing.len() == 1 { "s" } else { "" },
                list(&existing)
            ),
            help: "nothing was written; pass --force to overwrite them".into(),
        });
    }

    let plan = plan(dir, &name, &files);
    if args.change.dry_run {
        return Ok(super::change::show(ctx, &plan));
    }
    super::change::confirm(ctx, &plan, args.change, "devenv init --force will:")?;
    let executor = Executor::new(
        ctx.runner.clone(),
        ctx.platform,
        &name,
        crate::nfs::Owner::current().uid,
    );
    let result = super::change::run(&plan, &executor, vec![super::change::screen(ctx)], None).await;
    if !result.ok() {
        return Err(super::change::failed(
            &result,
            "the files written so far are whole; `devenv init --force` writes them all again",
        ));
    }
    let paths: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    if ctx.ui.json {
        crate::outln!(
            "{}",
            serde_json::json!({ "directory": dir, "files": paths })
        );
        return Ok(0);
    }
    for p in &paths {
        ctx.ui.say(format!("wrote {p}"));
    }
    ctx.ui.say(format!(
        "\nnext: `devenv doctor` to check this machine, then `devenv up --dry-run` to see the plan{}",
        if args.example {
            ""
        } else {
            " (edit devenv.toml first: chart, values, services)"
        }
    ));
    Ok(0)
}

fn list(paths: &[&Path]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The files to write into `dir`, as a plan: new ones in one stage, and in another the ones
/// that exist (only with `--force`), which is asked for since their contents are lost.
fn plan(dir: &Path, name: &str, files: &[(PathBuf, String)]) -> Plan {
    // The user's files, not devenv's state: an overwritten file keeps its mode, a new one gets
    // what the umask allows, as an editor would write it.
    let new_file_mode = 0o666 & !umask();
    let (existing, new): (Vec<_>, Vec<_>) = files.iter().partition(|(p, _)| dir.join(p).exists());
    let write = |(rel, text): &&(PathBuf, String)| {
        let path = dir.join(rel);
        let mode = std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(new_file_mode);
        Action::Write {
            path,
            contents: text.clone(),
            mode: Some(mode),
        }
    };
    let mut stages = Vec::new();
    if !new.is_empty() {
        stages.push(Stage::new("write", &[], new.iter().map(write).collect()));
    }
    if !existing.is_empty() {
        let paths: Vec<&Path> = existing.iter().map(|(p, _)| p.as_path()).collect();
        stages.push(
            Stage::new("overwrite", &[], existing.iter().map(write).collect()).destroys(format!(
                "overwrite {} (what they hold now is lost)",
                list(&paths)
            )),
        );
    }
    Plan {
        project: name.to_string(),
        profile: String::new(),
        driver: String::new(),
        stages,
        title: Some(format!(
            "Plan for devenv init of project {name} in {}",
            dir.display()
        )),
    }
}

/// The process's umask (read by setting it and putting it back; init runs on one thread).
// `mode_t` is u32 on Linux and u16 on macOS.
#[allow(clippy::useless_conversion)]
fn umask() -> u32 {
    // SAFETY: umask has no preconditions and cannot fail; the old value is restored at once.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        u32::from(old)
    }
}

/// The ASCII letters of a Latin letter with a diacritic (`ü` → `u`, `ß` → `ss`), so that a
/// directory's name keeps its letters in a DNS label.
fn fold(c: char) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("àáâãäåāăą", "a"),
        ("æ", "ae"),
        ("çćĉċč", "c"),
        ("ďđ", "d"),
        ("èéêëēĕėęě", "e"),
        ("ĝğġģ", "g"),
        ("ĥħ", "h"),
        ("ìíîïĩīĭįı", "i"),
        ("ĵ", "j"),
        ("ķ", "k"),
        ("ĺļľŀł", "l"),
        ("ñńņňŉ", "n"),
        ("òóôõöøōŏő", "o"),
        ("œ", "oe"),
        ("ŕŗř", "r"),
        ("śŝşš", "s"),
        ("ß", "ss"),
        ("ţťŧ", "t"),
        ("ùúûüũūŭůűų", "u"),
        ("ŵ", "w"),
        ("ýÿŷ", "y"),
        ("źżž", "z"),
        ("þ", "th"),
        ("ð", "d"),
    ];
    TABLE
        .iter()
        .find(|(letters, _)| letters.contains(c))
        .map(|(_, ascii)| *ascii)
}

/// A DNS-label form of the directory's name ("My Shop_2" → "my-shop-2", "ÜberShop" →
/// "ubershop").
fn name_from_dir(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name = String::new();
    for c in raw.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if let Some(ascii) = fold(c) {
            name.push_str(ascii);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name: String = name.trim_matches('-').chars().take(40).collect();
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() { "app".into() } else { name }
}

/// The first directory holding a Chart.yaml, up to three levels down, skipping hidden and
/// dependency directories; subcharts under `charts/` are not candidates.
fn find_chart(dir: &Path) -> Option<PathBuf> {
    fn walk(dir: &Path, base: &Path, depth: usize) -> Option<PathBuf> {
        if dir.join("Chart.yaml").is_file() {
            return dir.strip_prefix(base).ok().map(Path::to_path_buf);
        }
        if depth == 0 {
            return None;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                !n.starts_with('.')
                    && !["node_modules", "target", "vendor", "charts"].contains(&n.as_ref())
            })
            .collect();
        entries.sort();
        entries.into_iter().find_map(|p| walk(&p, base, depth - 1))
    }
    // A chart at the root itself is `.`.
    walk(dir, dir, 3).map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_dns_labels() {
        assert_eq!(name_from_dir(Path::new("/x/My Shop_2")), "my-shop-2");
        assert_eq!(name_from_dir(Path::new("/x/---")), "app");
        assert_eq!(name_from_dir(Path::new("/x/ÜberShop")), "ubershop");
        assert_eq!(name_from_dir(Path::new("/x/Straße Café")), "strasse-cafe");
        assert_eq!(name_from_dir(Path::new("/x/商店")), "app");
    }

    #[test]
    fn a_chart_at_the_root_is_found_as_dot() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Chart.yaml"), "name: shop").unwrap();
        assert_eq!(find_chart(d.path()), Some(PathBuf::from(".")));
    }

    #[test]
    fn a_chart_below_the_directory_is_found() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("ops/helm/shop/charts/db")).unwrap();
        std::fs::write(d.path().join("ops/helm/shop/Chart.yaml"), "name: shop").unwrap();
        std::fs::write(
            d.path().join("ops/helm/shop/charts/db/Chart.yaml"),
            "name: db",
        )
        .unwrap();
        assert_eq!(find_chart(d.path()), Some(PathBuf::from("ops/helm/shop")));
    }
}
