//! Files devenv writes, embedded in the binary from `templates/` so an installed devenv needs
//! nothing beside itself.

/// The commented starter devenv.toml; `{{name}}` and `{{chart}}` are filled in by `init`.
pub const STARTER_CONFIG: &str = include_str!("../templates/devenv.toml");

macro_rules! example_files {
    ($($src:literal => $dest:literal),* $(,)?) => {
        /// The example project: (path in `templates/example/`, path in the user's project, text).
        pub const EXAMPLE: &[(&str, &str, &str)] = &[
            $(($src, $dest, include_str!(concat!("../templates/example/", $src))),)*
        ];
    };
}

example_files! {
    "devenv.toml" => "devenv.toml",
    "values-dev.yaml" => "deploy/values-dev.yaml",
    "chart/Chart.yaml" => "deploy/chart/Chart.yaml",
    "chart/values.yaml" => "deploy/chart/values.yaml",
    "chart/templates/_helpers.tpl" => "deploy/chart/templates/_helpers.tpl",
    "chart/templates/api.yaml" => "deploy/chart/templates/api.yaml",
    "chart/templates/worker.yaml" => "deploy/chart/templates/worker.yaml",
    "chart/templates/NOTES.txt" => "deploy/chart/templates/NOTES.txt",
    "chart/charts/postgresql/Chart.yaml" => "deploy/chart/charts/postgresql/Chart.yaml",
    "chart/charts/postgresql/values.yaml" => "deploy/chart/charts/postgresql/values.yaml",
    "chart/charts/postgresql/templates/_helpers.tpl" => "deploy/chart/charts/postgresql/templates/_helpers.tpl",
    "chart/charts/postgresql/templates/secret.yaml" => "deploy/chart/charts/postgresql/templates/secret.yaml",
    "chart/charts/postgresql/templates/service.yaml" => "deploy/chart/charts/postgresql/templates/service.yaml",
    "chart/charts/postgresql/templates/statefulset.yaml" => "deploy/chart/charts/postgresql/templates/statefulset.yaml",
    "chart/charts/search/Chart.yaml" => "deploy/chart/charts/search/Chart.yaml",
    "chart/charts/search/values.yaml" => "deploy/chart/charts/search/values.yaml",
    "chart/charts/search/templates/_helpers.tpl" => "deploy/chart/charts/search/templates/_helpers.tpl",
    "chart/charts/search/templates/service.yaml" => "deploy/chart/charts/search/templates/service.yaml",
    "chart/charts/search/templates/statefulset.yaml" => "deploy/chart/charts/search/templates/statefulset.yaml",
    "services/api/README.md" => "services/api/README.md",
    "services/worker/README.md" => "services/worker/README.md",
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, base, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }

    #[test]
    fn every_file_of_the_example_is_embedded() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/example");
        let mut on_disk = Vec::new();
        files_under(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = EXAMPLE.iter().map(|(s, _, _)| s.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
