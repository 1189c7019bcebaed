//! Checks that serde cannot express: ranges, formats, paths that must exist, names that must be
//! unique, and keys that must exist in the chart. Every problem is reported, not just the first,
//! each located at its key.

use std::collections::BTreeMap;

use devenv_drivers::{Choice, Registry, SelectError};

use super::load::problem_at;
use super::locate::Doc;
use super::{Loaded, Placement, Problem, Size};
use crate::chart::Chart;
use crate::names::dns_label;

pub(super) fn validate(loaded: &Loaded, source: &str) -> Vec<Problem> {
    let doc = Doc::parse(source);
    let mut v = Validator {
        source,
        doc: doc.as_ref(),
        problems: Vec::new(),
    };
    let c = &loaded.config;

    // [project]
    if let Err(why) = dns_label(&c.project.name, 40) {
        v.add(
            &["project", "name"],
            why,
            Some("use lowercase letters, digits and '-', e.g. \"shop\"".into()),
        );
    }
    if let Some(ns) = &c.project.namespace
        && let Err(why) = dns_label(ns, 63)
    {
        v.add(&["project", "namespace"], why, None);
    }
    let chart_dir = loaded.chart_dir();
    let chart = match Chart::read(&chart_dir) {
        Ok(chart) => Some(chart),
        Err(e) => {
            v.add(
                &["project", "chart"],
                e.to_string(),
                Some(
                    "point it at the directory that holds Chart.yaml, relative to devenv.toml"
                        .into(),
                ),
            );
            None
        }
    };
    for (i, file) in c.project.values.iter().enumerate() {
        if !loaded.root.join(file).is_file() {
            let idx = i.to_string();
            v.add(
                &["project", "values", &idx],
                format!("values file {} does not exist", file.display()),
                None,
            );
        }
    }

    match super::parse_duration(&c.project.rollout_timeout) {
        Ok(d) if d.as_secs() == 0 => v.add(
            &["project", "rollout_timeout"],
            "must be longer than 0s",
            None,
        ),
        Ok(_) => {}
        Err(why) => v.add(
            &["project", "rollout_timeout"],
            why,
            Some("write it like \"10m\" or \"90s\"".into()),
        ),
    }

    // [vm]
    match Choice::parse(&c.vm.driver) {
        Choice::Auto => {}
        Choice::Named(name) => {
            if let Err(e) = Registry::builtin().get(&name) {
                let help = e.help();
                let message = match &e {
                    SelectError::Unknown { .. } => format!("unknown driver \"{name}\""),
                    other => other.to_string(),
                };
                v.add(&["vm", "driver"], message, help);
            }
        }
    }
    if !(2..=64).contains(&c.vm.cpus) {
        v.add(
            &["vm", "cpus"],
            format!("{} cpus is out of range", c.vm.cpus),
            Some("minikube needs at least 2; use 2 to 64".into()),
        );
    }
    v.size(
        &["vm", "memory"],
        c.vm.memory,
        Size::from_gib(2),
        Size::from_gib(512),
    );
    v.size(
        &["vm", "disk"],
        c.vm.disk,
        Size::from_gib(10),
        Size::from_gib(4096),
    );
    if !kubernetes_version_ok(&c.vm.kubernetes_version) {
        v.add(
            &["vm", "kubernetes_version"],
            format!(
                "\"{}\" is not a Kubernetes version",
                c.vm.kubernetes_version
            ),
            Some("write it like \"v1.31.0\" (or \"stable\" / \"latest\")".into()),
        );
    }
    if !(10..=250).contains(&c.vm.max_pods) {
        v.add(
            &["vm", "max_pods"],
            format!("{} pods per node is out of range", c.vm.max_pods),
            Some("use 10 to 250; about 60 keeps scheduling fast".into()),
        );
    }

    // [mount]
    let source_dir = loaded.source_dir();
    if !source_dir.is_dir() {
        v.add(
            &["mount", "source"],
            format!("{} is not a directory", c.mount.source.display()),
            Some("the source tree to export, relative to devenv.toml (usually \".\")".into()),
        );
    }
    // Exporting the disk's root, the home directory or a directory above the project gives
    // the VM far more than the source tree: only when the file says it is meant.
    if source_dir.is_dir()
        && let (Ok(source), Ok(root)) = (source_dir.canonicalize(), loaded.root.canonicalize())
        && root.starts_with(&source)
        && source != root
        && !c.mount.allow_outside_project
    {
        v.add(
            &["mount", "source"],
            format!(
                "{} holds the project instead of being in it: all of it would be exported to the VM",
                source.display()
            ),
            Some("export the project's own tree (\".\"), or set `allow_outside_project = true` in [mount] if exporting that much is meant".into()),
        );
    }
    if let Some(why) = unsafe_target(&c.mount.target) {
        v.add(
            &["mount", "target"],
            format!("\"{}\" {why}", c.mount.target.escape_debug()),
            Some("e.g. \"/src\"".into()),
        );
    }
    if c.mount.options.is_empty()
        || c.mount.options.chars().any(char::is_whitespace)
        || c.mount.options.split(',').any(str::is_empty)
    {
        v.add(
            &["mount", "options"],
            format!(
                "\"{}\" is not a comma-separated option list",
                c.mount.options
            ),
            Some(format!("e.g. \"{}\"", super::DEFAULT_MOUNT_OPTIONS)),
        );
    }

    if let Some(client) = &c.mount.export_client
        && let Err(why) = crate::nfs::parse_client(client)
    {
        v.add(
            &["mount", "export_client"],
            why,
            Some("give the VM's address or its host-only network, e.g. \"192.168.39.0/24\"".into()),
        );
    }

    // [remote]
    if let Some(r) = &c.remote
        && r.context.trim().is_empty()
    {
        v.add(
            &["remote", "context"],
            "must name a kubeconfig context",
            None,
        );
    }

    if let Some(q) = c.remote.as_ref().and_then(|r| r.quota.as_ref()) {
        for (key, value) in [("cpu", &q.cpu), ("memory", &q.memory)] {
            if let Some(value) = value
                && !quantity(value)
            {
                v.add(
                    &["remote", "quota", key],
                    format!("\"{value}\" is not a Kubernetes quantity"),
                    Some(if key == "cpu" {
                        "write cores like \"4\" or millicores like \"2500m\"".into()
                    } else {
                        "write it like \"8Gi\" or \"512Mi\"".into()
                    }),
                );
            }
        }
        if q.pods == Some(0) {
            v.add(&["remote", "quota", "pods"], "must be at least 1", None);
        }
    }

    // [requires] (Cargo's range syntax; crate::requires compares versions with them)
    let r = &c.requires;
    for (key, range) in [
        ("devenv", &r.devenv),
        ("minikube", &r.minikube),
        ("helm", &r.helm),
        ("kubectl", &r.kubectl),
        ("kubernetes", &r.kubernetes),
    ] {
        if let Some(range) = range
            && let Err(e) = semver::VersionReq::parse(range.trim())
        {
            v.add(
                &["requires", key],
                format!("\"{range}\" is not a version range: {e}"),
                Some("write a range like \">=1.33, <1.36\", \"~3.17\" or \"1.31\"".into()),
            );
        }
    }

    // [services.*]
    let mut hosts: BTreeMap<&str, &str> = BTreeMap::new();
    let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, s) in &c.services {
        let at = |key: &'static str| ["services", name.as_str(), key];
        if let Err(why) = dns_label(name, 63) {
            v.add(&["services", name], format!("service name {why}"), None);
        }
        if let Some(host) = &s.host {
            if let Err(why) = dns_label(host, 63) {
                v.add(&at("host"), why, None);
            }
            if let Some(other) = hosts.insert(host, name) {
                v.add(
                    &at("host"),
                    format!("host \"{host}\" is already used by service \"{other}\""),
                    Some("each service needs its own DNS name".into()),
                );
            }
        }
        for (i, need) in s.needs.iter().enumerate() {
            let idx = i.to_string();
            let path = ["services", name.as_str(), "needs", idx.as_str()];
            if need == name {
                v.add(&path, format!("\"{name}\" cannot need itself"), None);
            } else if !c.services.contains_key(need) {
                v.add(
                    &path,
                    format!("\"{need}\" is not a service of this devenv.toml"),
                    Some(
                        match super::closest(need, c.services.keys().map(String::as_str)) {
                            Some(s) => format!("did you mean \"{s}\"?"),
                            None => "name a [services.NAME] table".into(),
                        },
                    ),
                );
            }
        }
        if let Some(key) = &s.values_key {
            if let Some(other) = keys.insert(key, name) {
                v.add(
                    &at("values_key"),
                    format!("values_key \"{key}\" is already used by service \"{other}\""),
                    None,
                );
            }
            if let Some(chart) = &chart
                && !chart.has_value_key(key)
            {
                let known = chart.value_keys();
                let help = match super::closest(key, known.iter().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("the chart's top-level values are: {}", known.join(", ")),
                };
                v.add(
                    &at("values_key"),
                    format!(
                        "the chart {} has no value \"{key}\"",
                        c.project.chart.display()
                    ),
                    Some(help),
                );
            }
        }
        if s.port.is_some() && !s.ports.is_empty() {
            v.add(
                &at("ports"),
                "give either `port` or `ports`, not both",
                None,
            );
        }
        if s.all_ports().contains(&0) {
            v.add(&at("port"), "port 0 is not a port", None);
        }
        if s.offload == Placement::Remote {
            for (present, key) in [
                (s.values_key.is_some(), "values_key"),
                (s.host.is_some(), "host"),
                (!s.all_ports().is_empty(), "port"),
            ] {
                if !present {
                    v.add(
                        &at("offload"),
                        format!("an offloaded service needs `{key}`"),
                        Some(format!("add `{key} = …` to [services.{name}]")),
                    );
                }
            }
            if c.remote.is_none() {
                v.add(
                    &at("offload"),
                    "offload = \"remote\" needs a [remote] section",
                    Some(
                        "add [remote] with the kubeconfig `context` of the shared dev cluster"
                            .into(),
                    ),
                );
            }
        }
        if let Some(image) = &s.image {
            let context = loaded.root.join(&image.context);
            if !context.is_dir() {
                v.add(
                    &["services", name, "image", "context"],
                    format!("{} is not a directory", image.context.display()),
                    Some("the build context, relative to devenv.toml".into()),
                );
            } else if !context.join(&image.dockerfile).is_file() {
                v.add(
                    &["services", name, "image", "dockerfile"],
                    format!("{} has no {}", image.context.display(), image.dockerfile),
                    Some("the Dockerfile, relative to `context`".into()),
                );
            }
            if let Err(why) = image_reference(&image.tag) {
                v.add(
                    &["services", name, "image", "tag"],
                    why,
                    Some("e.g. \"shop-api:dev\"".into()),
                );
            }
            if s.values_key.is_none() {
                v.add(
                    &["services", name, "image"],
                    "a built image needs `values_key`: the release passes the image under it",
                    Some(format!("add `values_key = …` to [services.{name}]")),
                );
            }
        }
        for (i, glob) in s.watch.iter().enumerate() {
            let idx = i.to_string();
            if glob.trim().is_empty() || glob.starts_with('/') {
                v.add(
                    &["services", name, "watch", &idx],
                    format!("\"{glob}\" must be a glob relative to the project root"),
                    None,
                );
            } else if let Err(e) = watch_glob(glob) {
                // Checked here, with the file and line, not first when `watch` starts.
                v.add(
                    &["services", name, "watch", &idx],
                    format!("\"{glob}\" is not a valid glob: {}", e.kind()),
                    Some("globs follow .gitignore syntax: `*` within a directory, `**` across them, `{a,b}` for either".into()),
                );
            }
        }
    }

    // [watch]
    for (path, text) in [
        (&["watch", "interval"][..], &c.watch.interval),
        (
            &["watch", "alerts", "vm_cpu_for"][..],
            &c.watch.alerts.vm_cpu_for,
        ),
    ] {
        match super::parse_duration(text) {
            Ok(d) if d.as_secs() == 0 => v.add(path, "must be longer than 0s", None),
            Ok(_) => {}
            Err(why) => v.add(path, why, Some("write it like \"5s\" or \"1m\"".into())),
        }
    }
    if c.watch.alerts.vm_memory == 0 || c.watch.alerts.vm_memory > 100 {
        v.add(
            &["watch", "alerts", "vm_memory"],
            format!("{} % is out of range", c.watch.alerts.vm_memory),
            Some("use 1 to 100".into()),
        );
    }
    if c.watch.alerts.vm_cpu == 0 {
        v.add(
            &["watch", "alerts", "vm_cpu"],
            "must be above 0 %",
            Some("percent of one core: 300 means three cores busy".into()),
        );
    }
    v.problems
}

/// A Kubernetes resource quantity as a quota takes it: a decimal number and an optional
/// suffix (`m`, `k`, `M`, `G`, `T`, `Ki`, `Mi`, `Gi`, `Ti`).
fn quantity(text: &str) -> bool {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &text[digits.len()..];
    let number = !digits.is_empty()
        && !digits.starts_with('.')
        && !digits.ends_with('.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    number && ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"].contains(&suffix)
}

/// A Docker image reference devenv can tag: a lowercase repository, an optional tag.
fn image_reference(reference: &str) -> Result<(), String> {
    let (repo, tag) = super::split_reference(reference);
    let repo_ok = !repo.is_empty()
        && repo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b));
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if repo_ok && tag_ok && !reference.ends_with(':') {
        Ok(())
    } else {
        Err(format!("\"{reference}\" is not an image reference"))
    }
}

struct Validator<'a> {
    source: &'a str,
    doc: Option<&'a Doc<'a>>,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn add(&mut self, path: &[&str], message: impl Into<String>, help: Option<String>) {
        self.problems
            .push(problem_at(self.source, self.doc, path, message, help));
    }

    fn size(&mut self, path: &[&str], value: Size, min: Size, max: Size) {
        if value < min || value > max {
            self.add(
                path,
                format!("{value} is out of range"),
                Some(format!("use {min} to {max}")),
            );
        }
    }
}

fn kubernetes_version_ok(v: &str) -> bool {
    if v == "stable" || v == "latest" {
        return true;
    }
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a mount point inside the VM is refused: not absolute, `/`, with `..` or a NUL, or in a
/// directory the VM's system lives in (mounting over it would break the VM).
fn unsafe_target(target: &str) -> Option<&'static str> {
    const SYSTEM: &[&str] = &[
        "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
        "/sys", "/usr", "/var",
    ];
    if !target.starts_with('/') || target.trim_end_matches('/').is_empty() {
        return Some("must be an absolute path other than /");
    }
    if target.contains('\0') {
        return Some("holds a NUL character");
    }
    if target.split('/').any(|part| part == ".." || part == ".") {
        return Some("must not hold . or .. (write the path it means)");
    }
    let path = std::path::Path::new(target);
    SYSTEM
        .iter()
        .any(|dir| path.starts_with(dir))
        .then_some("is inside a directory the VM's own system uses: mounting there would break it")
}

/// A `watch` glob as `devenv watch` matches it: relative to the project root (a leading `./` is
/// allowed), `*` not crossing `/` (as in `.gitignore`), `**` crossing it.
pub fn watch_glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern.trim_start_matches("./"))
        .literal_separator(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_lowercase_with_an_optional_tag() {
        assert!(image_reference("shop-api:dev").is_ok());
        assert!(image_reference("registry:5000/team/api").is_ok());
        assert!(image_reference("Shop-API:dev").is_err());
        assert!(image_reference("shop api").is_err());
        assert!(image_reference("shop:").is_err());
    }

    #[test]
    fn quotas_take_kubernetes_quantities() {
        for ok in ["4", "2500m", "0.5", "8Gi", "512Mi", "1G"] {
            assert!(quantity(ok), "{ok}");
        }
        for bad in ["", "four", "8GB", "8 Gi", ".5", "1.", "1.2.3", "-1", "Gi"] {
            assert!(!quantity(bad), "{bad}");
        }
    }

    #[test]
    fn kubernetes_versions_need_the_v_and_three_numbers() {
        assert!(kubernetes_version_ok("v1.31.0"));
        assert!(kubernetes_version_ok("stable"));
        assert!(!kubernetes_version_ok("1.31.0"));
        assert!(!kubernetes_version_ok("v1.31"));
    }
}
