//! The team's Helm chart and the `helm` commands devenv runs against it.
//!
//! devenv reads only what it must from the chart (its top-level values and subchart names, to
//! check `values_key`s) and writes its own values as a JSON overlay, which Helm reads as YAML,
//! placed after the team's values files so it wins. The same command line works with Helm 3 and
//! Helm 4: bare `--wait` is the one spelling both accept (contracts §7).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::config::{Loaded, Placement};
use crate::docker::build::{ImageSpec, content_tag};
use crate::process::Cmd;

/// devenv's values overlay: where the source is mounted, which subcharts run elsewhere, and the
/// images built in the VM: `<values_key>.image` gets `repository`, `tag` (the content tag, so a
/// rebuilt image rolls the pods out) and `pullPolicy: Never` (the image exists only in the VM).
pub fn overlay(
    loaded: &Loaded,
    placements: &[(String, Placement)],
    images: &[(&str, &ImageSpec)],
) -> Value {
    let c = &loaded.config;
    let mut root = Map::new();
    root.insert("source".into(), json!({ "hostPath": c.mount.target }));
    for (name, placement) in placements {
        // Only services that can be offloaded (they have a `host` the bridge can take over)
        // are switched; the others' subcharts are left as the team's values have them.
        let Some(key) = c
            .services
            .get(name)
            .filter(|s| s.host.is_some())
            .and_then(|s| s.values_key.as_ref())
        else {
            continue;
        };
        root.insert(
            key.clone(),
            json!({ "enabled": *placement == Placement::Local }),
        );
    }
    for (service, spec) in images {
        let Some(key) = c.services.get(*service).and_then(|s| s.values_key.as_ref()) else {
            continue;
        };
        let entry = root.entry(key.clone()).or_insert_with(|| json!({}));
        if let Value::Object(map) = entry {
            map.insert(
                "image".into(),
                json!({
                    "repository": spec.repository(),
                    "tag": content_tag(&spec.hash),
                    "pullPolicy": "Never",
                }),
            );
        }
    }
    Value::Object(root)
}

/// `helm upgrade --install` of the local release with the team's values, then the overlay.
pub fn upgrade_install(loaded: &Loaded, kube_context: &str, overlay_file: &Path) -> Cmd {
    let c = &loaded.config;
    let mut cmd = Cmd::new("helm")
        .args(["upgrade", "--install", c.project.release()])
        .arg(loaded.chart_dir())
        .args(["--kube-context", kube_context])
        .args(["--namespace", c.project.namespace(), "--create-namespace"])
        .cwd(&loaded.root);
    for values in &c.project.values {
        cmd = cmd.arg("--values").arg(values_arg(&loaded.root, values));
    }
    // No --wait: devenv watches the rollout itself, so that a pod that cannot start is shown
    // at once with its events and logs. --timeout still bounds Helm's hooks.
    let timeout = format!("{}s", c.project.rollout_timeout().as_secs());
    let cmd = cmd
        .arg("--values")
        .arg(overlay_file)
        .args(["--timeout", timeout.as_str()]);
    bounded(cmd, c.project.rollout_timeout())
}

/// A Helm command given `--timeout helm_timeout`, killed if it runs well past that: Helm's
/// timeout bounds its hooks and waits, not its requests, so a cluster that accepts connections
/// and never answers would hold it (and `up`) forever. The margin is the timeout itself,
/// between 10 s and 60 s.
pub fn bounded(cmd: Cmd, helm_timeout: std::time::Duration) -> Cmd {
    let margin = helm_timeout.clamp(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(60),
    );
    cmd.timeout(helm_timeout + margin)
}

/// The path Helm is given for a values file. Helm reads `--values` as a URL first, and Go's URL
/// parser refuses ASCII control characters, so a project under a directory whose name holds a
/// tab fails with "invalid control character in URL". Such a file is given relative to the
/// project root, where Helm runs; every other one by its full path, as the plan shows it.
pub fn values_arg(root: &Path, values: &Path) -> PathBuf {
    let full = root.join(values);
    let url_safe = |p: &Path| {
        !p.as_os_str()
            .as_encoded_bytes()
            .iter()
            .any(|b| b.is_ascii_control())
    };
    if url_safe(&full) {
        return full;
    }
    match full.strip_prefix(root) {
        Ok(rel) if url_safe(rel) => rel.to_path_buf(),
        _ => full,
    }
}

/// Helm's major version from `helm version --short` (`v3.17.2+gcc0bbbd`, `v4.1.4+g05fa379`).
pub fn parse_short_version(text: &str) -> Option<(u32, String)> {
    let v = text.trim().split('+').next()?.trim();
    let major = v.strip_prefix('v')?.split('.').next()?.parse().ok()?;
    Some((major, v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_values_file_under_a_directory_with_a_tab_is_given_relative_to_the_project() {
        let root = Path::new("/home/a/My\tProjects/shop");
        assert_eq!(
            values_arg(root, Path::new("deploy/values-dev.yaml")),
            Path::new("deploy/values-dev.yaml")
        );
        let plain = Path::new("/home/a/My Projects/shop");
        assert_eq!(
            values_arg(plain, Path::new("deploy/values-dev.yaml")),
            plain.join("deploy/values-dev.yaml")
        );
        // Outside the project, or with the tab in its own name: the full path, and Helm's error.
        assert_eq!(
            values_arg(root, Path::new("/etc/v\t.yaml")),
            Path::new("/etc/v\t.yaml")
        );
    }

    #[test]
    fn helm_3_and_4_short_versions_give_their_major() {
        assert_eq!(
            parse_short_version("v3.17.2+gcc0bbbd\n"),
            Some((3, "v3.17.2".to_string()))
        );
        assert_eq!(
            parse_short_version("v4.1.4+g05fa379"),
            Some((4, "v4.1.4".to_string()))
        );
        assert_eq!(parse_short_version("garbage"), None);
    }
}
