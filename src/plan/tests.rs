//! `Plan::build` is a pure function of devenv.toml and the facts read before it: these
//! specifications build plans for the example project from hand-written facts, with nothing
//! on disk and nothing run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::config::{Loaded, Placement};

/// The example project, at a path that does not exist (the plan must not look).
fn example() -> Loaded {
    let toml = crate::templates::EXAMPLE
        .iter()
        .find(|(src, _, _)| *src == "devenv.toml")
        .map(|(_, _, text)| *text)
        .unwrap();
    Loaded {
        file: PathBuf::from("/nonexistent/shop/devenv.toml"),
        root: PathBuf::from("/nonexistent/shop"),
        config: crate::config::parse(toml).unwrap(),
    }
}

/// A laptop whose VM runs with everything in place since the last `up`: nothing to change.
fn settled(loaded: &Loaded) -> Facts {
    let placements = loaded
        .config
        .services
        .keys()
        .map(|n| (n.clone(), Placement::Local))
        .collect();
    Facts {
        driver: devenv_drivers::Registry::builtin().get("kvm2").unwrap(),
        host: None,
        remote_refusal: None,
        version_mismatches: Vec::new(),
        driver_failure: None,
        placements,
        exports: ExportsFacts {
            file: PathBuf::from("/etc/exports"),
            source: PathBuf::from("/nonexistent/shop"),
            client: devenv_drivers::ExportClient::Address("192.168.39.10".parse().unwrap()),
            lines: vec!["\"/nonexistent/shop\" 192.168.39.10(rw,all_squash)".into()],
            grant: None,
            awaits_vm_address: false,
            diff: Ok(String::new()),
            sudo: false,
            reload: Vec::new(),
            reload_owed: false,
        },
        vm_state: Some(VmState::Running),
        vm_ip: Some("192.168.39.10".parse().unwrap()),
        vm_drift: Vec::new(),
        vm_driver_mismatch: None,
        other_checkout: None,
        recreate: false,
        mounted: true,
        mount_probed: true,
        overlay_file: PathBuf::from("/nonexistent/state/values-overlay.json"),
        probe_dir: PathBuf::from("/nonexistent/shop"),
        remote_values: BTreeMap::new(),
        release_unchanged: true,
        user: "ann".into(),
        bridged: Vec::new(),
        remote_releases: Vec::new(),
        state_dir: PathBuf::from("/nonexistent/state"),
        tunnel_running: false,
        images: Vec::new(),
    }
}

fn stage_names(plan: &Plan) -> Vec<&str> {
    plan.stages.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn a_settled_environment_plans_no_change() {
    let loaded = example();
    let plan = Plan::build(&loaded, &settled(&loaded));
    assert!(!plan.changes_anything(), "{}", plan.render());
    assert!(
        stage_names(&plan).iter().all(|s| !s.starts_with("remote:")),
        "{:?}",
        stage_names(&plan)
    );
}

#[test]
fn a_missing_vm_and_an_unmounted_tree_plan_a_start_and_a_mount() {
    let loaded = example();
    let mut facts = settled(&loaded);
    facts.vm_state = Some(VmState::Nonexistent);
    facts.vm_ip = None;
    facts.mounted = false;
    facts.mount_probed = false;
    facts.release_unchanged = false;
    let plan = Plan::build(&loaded, &facts);
    assert!(plan.changes_anything());
    let text = plan.render();
    assert!(text.contains("minikube start"), "{text}");
    let mount = plan.stages.iter().find(|s| s.name == "mount").unwrap();
    assert!(
        mount.actions.iter().any(|a| matches!(a, Action::Mount(_))),
        "{text}"
    );
}

#[test]
fn an_offloaded_service_gets_its_remote_stage_with_the_values_read_beforehand() {
    let loaded = example();
    let mut facts = settled(&loaded);
    facts.release_unchanged = false;
    for (name, place) in &mut facts.placements {
        if name == "postgres" {
            *place = Placement::Remote;
        }
    }
    facts.remote_values.insert(
        "postgres".into(),
        Err("values.yaml: line 3: not YAML".into()),
    );
    let plan = Plan::build(&loaded, &facts);
    assert!(
        stage_names(&plan).contains(&"remote:postgres"),
        "{:?}",
        stage_names(&plan)
    );
    let remote = plan
        .stages
        .iter()
        .find(|s| s.name == "remote:postgres")
        .unwrap();
    assert!(
        remote.actions.iter().any(|a| matches!(
            a,
            Action::Verify(Verify::Unsupported(why)) if why == "values.yaml: line 3: not YAML"
        )),
        "a values file that could not be read is the remote stage's failure: {}",
        plan.render()
    );
}
