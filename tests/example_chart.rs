//! The example project that `devenv init --example` writes is a working Helm chart for the real
//! Helm 3 and Helm 4, including with the values overlay devenv generates for it.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Env, real_tool};

fn helm(helm: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(helm)
        .args(args)
        .current_dir(dir)
        .env("HELM_CACHE_HOME", dir.join(".helm/cache"))
        .env("HELM_CONFIG_HOME", dir.join(".helm/config"))
        .env("HELM_DATA_HOME", dir.join(".helm/data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        helm.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The overlay `devenv up` would write, taken from its JSON plan.
fn overlay(env: &Env) -> String {
    let out = env
        .devenv()
        .args(["--json", "up", "--dry-run"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["actions"].as_array().unwrap())
        .find_map(|a| a["contents"].as_str())
        .expect("the release stage writes the overlay")
        .to_string()
}

/// `helm template` of the example chart with the team's values and devenv's overlay.
fn render(h: &Path, env: &Env) -> String {
    let overlay_file = env.write("overlay.json", &overlay(env));
    helm(
        h,
        &env.project,
        &[
            "template",
            "shop",
            "deploy/chart",
            "-f",
            "deploy/values-dev.yaml",
            "-f",
            overlay_file.to_str().unwrap(),
        ],
    )
}

fn each_helm(test: impl Fn(&Path, &str)) {
    for name in ["helm3", "helm4"] {
        if let Some(path) = real_tool(name) {
            test(&path, name);
        }
    }
}

#[test]
fn example_chart_passes_helm_lint_strict() {
    each_helm(|h, name| {
        let env = Env::new();
        env.example();
        let out = helm(
            h,
            &env.project,
            &[
                "lint",
                "deploy/chart",
                "--strict",
                "--with-subcharts",
                "-f",
                "deploy/values-dev.yaml",
            ],
        );
        assert!(out.contains("0 chart(s) failed"), "{name}: {out}");
    });
}

#[test]
fn example_chart_renders_with_the_generated_overlay() {
    each_helm(|h, name| {
        let env = Env::new();
        env.example();
        let out = render(h, &env);
        for kind_name in [
            "kind: Deployment\nmetadata:\n  name: api",
            "kind: Deployment\nmetadata:\n  name: worker",
            "kind: StatefulSet\nmetadata:\n  name: postgres",
            "kind: StatefulSet\nmetadata:\n  name: search",
        ] {
            assert!(out.contains(kind_name), "{name}: no {kind_name:?}");
        }
        assert!(out.contains("path: \"/src/services/api\""), "{name}: {out}");
    });
}

#[test]
fn an_offloaded_service_disappears_from_the_local_render() {
    each_helm(|h, name| {
        let env = Env::new();
        env.example();
        let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
        env.write(
            "devenv.toml",
            &toml.replacen(
                "port = 5432\noffload = \"local\"",
                "port = 5432\noffload = \"remote\"",
                1,
            ),
        );
        let out = render(h, &env);
        assert!(
            !out.contains("name: postgres\n"),
            "{name}: postgres still rendered"
        );
        assert!(
            out.contains("kind: StatefulSet\nmetadata:\n  name: search"),
            "{name}"
        );
    });
}

#[test]
fn a_built_image_is_run_by_its_content_tag_and_never_pulled() {
    each_helm(|h, name| {
        let env = Env::new();
        env.example();
        env.with_image("api", "shop-api:dev", "FROM scratch\nCOPY README.md /\n");
        let out = render(h, &env);
        let api = out
            .split("---")
            .find(|doc| doc.contains("kind: Deployment\nmetadata:\n  name: api"))
            .expect("the api Deployment");
        assert!(
            api.contains("image: \"shop-api:devenv-"),
            "{name}: the content tag is used: {api}"
        );
        assert!(api.contains("imagePullPolicy: Never"), "{name}: {api}");
    });
}
