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
        purge_remote: None,
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
        Err(crate::diagnostic::Failure::new(
            crate::diagnostic::codes::CHART_YAML,
            "values.yaml: line 3: not YAML",
        )),
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
            Action::Verify(Verify::Failed(why)) if why.message == "values.yaml: line 3: not YAML"
        )),
        "a values file that could not be read is the remote stage's failure: {}",
        plan.render()
    );
}

#[test]
fn a_purge_deletes_the_remote_namespace_last_and_asks_first() {
    let loaded = example();
    let mut facts = settled(&loaded);
    facts.purge_remote = Some(PurgeRemote {
        context: "dev-cluster".into(),
        namespace: "devenv-ann-shop".into(),
        still: Vec::new(),
    });
    let plan = Plan::build(&loaded, &facts);
    let purge = plan.stages.iter().find(|s| s.name == "purge").unwrap();
    assert!(matches!(
        &purge.actions[..],
        [Action::Offload(crate::offload::Step::DeleteNamespace { namespace, .. })] if namespace == "devenv-ann-shop"
    ));
    assert_eq!(
        plan.destroys(),
        [
            "delete your namespace devenv-ann-shop on dev-cluster with its releases, volumes and data"
        ]
    );
    // It waits for what the summary waits for (the release and the service's way back),
    // and the summary waits for it.
    let summary = plan.stages.iter().find(|s| s.name == "summary").unwrap();
    let before: Vec<&String> = summary.after.iter().filter(|a| *a != "purge").collect();
    assert!(summary.after.iter().any(|a| a == "purge"));
    assert_eq!(purge.after.iter().collect::<Vec<_>>(), before);
}

#[test]
fn a_purge_with_services_still_remote_keeps_the_namespace_and_asks_nothing() {
    let loaded = example();
    let mut facts = settled(&loaded);
    facts.purge_remote = Some(PurgeRemote {
        context: "dev-cluster".into(),
        namespace: "devenv-ann-shop".into(),
        still: vec!["opensearch".into()],
    });
    let plan = Plan::build(&loaded, &facts);
    assert!(plan.destroys().is_empty());
    let stops = plan.known_failures(crate::process::Platform::Debian);
    assert!(
        stops
            .iter()
            .any(|(stage, why)| stage == "purge" && why.contains("opensearch still run there")),
        "{stops:?}"
    );
}
