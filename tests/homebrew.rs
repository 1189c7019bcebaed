//! `homebrew/devenv.rb`, the Homebrew formula: Ruby that parses (checked with the real `ruby -c`,
//! which `.ci/install-tools` installs), building the version Cargo.toml declares, with the
//! dependencies, completions and test the formula promises.

mod support;

use std::path::PathBuf;

fn formula_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("homebrew/devenv.rb")
}

fn formula() -> String {
    std::fs::read_to_string(formula_path()).expect("homebrew/devenv.rb exists")
}

/// The version in the formula's release `url` (`…/refs/tags/v<version>.tar.gz`).
fn url_version(formula: &str) -> Option<&str> {
    let url = formula
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("url \""))?;
    let after_tag = &url[url.find("/refs/tags/v")? + "/refs/tags/v".len()..];
    after_tag.split(".tar.gz").next()
}

#[test]
fn the_formula_is_valid_ruby() {
    let Some(ruby) = support::real_tool("ruby") else {
        return;
    };
    let out = std::process::Command::new(ruby)
        .arg("-c")
        .arg(formula_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ruby -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Syntax OK\n");
}

#[test]
fn the_formula_builds_the_version_declared_in_cargo_toml() {
    assert_eq!(url_version(&formula()), Some(env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_formula_builds_with_cargo_and_depends_on_the_tools_devenv_drives() {
    let f = formula();
    for line in [
        "depends_on \"rust\" => :build",
        "depends_on \"minikube\"",
        "depends_on \"helm\"",
        "depends_on \"kubernetes-cli\"",
        "system \"cargo\", \"install\", *std_cargo_args",
        "generate_completions_from_executable(bin/\"devenv\", \"completions\")",
    ] {
        assert!(f.contains(line), "the formula has `{line}`");
    }
}

#[test]
fn the_formulas_test_checks_the_version_and_that_init_writes_devenv_toml() {
    let f = formula();
    let test = &f[f.find("test do").expect("a test block")..];
    assert!(test.contains("devenv --version"));
    assert!(test.contains("\"devenv #{version}\\n\""));
    assert!(test.contains("system bin/\"devenv\", \"init\""));
    assert!(test.contains("assert_path_exists testpath/\"devenv.toml\""));
}

#[test]
fn the_caveats_explain_the_sudo_prompt_of_installing_the_exports_helper_outside_homebrew() {
    let f = formula();
    let caveats = &f[f.find("def caveats").expect("caveats")..f.find("test do").unwrap()];
    assert!(caveats.contains("/etc/exports"));
    assert!(caveats.contains("share/doc/devenv/nfs.md"));
    assert!(caveats.contains("devenv onboard --exports-helper"));
    assert!(caveats.contains("sudo asks for your password there, once"));
    assert!(caveats.contains("/etc/sudoers.d/devenv"));
    assert!(caveats.contains("sudo visudo -cf"));
    // The helper is installed where the sudoers rule names it, outside Homebrew's prefix.
    for path in [
        devenv::nfs::helper::installed_path(true),
        devenv::nfs::helper::installed_path(false),
    ] {
        let dir = std::path::Path::new(path)
            .parent()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(caveats.contains(dir), "the caveats name {dir}");
    }
    assert!(
        f.contains("assert_path_exists bin/\"devenv-exports-helper\""),
        "the formula's test checks that the helper was built"
    );
}
