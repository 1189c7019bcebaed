//! The few facts devenv reads from the team's Helm chart: its name, and the keys its values
//! live under (top-level keys of values.yaml, and each subchart's name or alias). A leaf: it
//! reads files and knows nothing of devenv.toml, so the config checks and the helm commands can
//! both use it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("{} is not a Helm chart (no Chart.yaml)", .dir.display())]
    NoChart { dir: PathBuf },
    #[error("cannot read {}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid YAML: {message}", .file.display())]
    Yaml { file: PathBuf, message: String },
}

/// What devenv needs to know about a chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub name: String,
    /// Top-level keys of values.yaml plus each dependency's name or alias (a subchart's values
    /// live under that key even when values.yaml does not mention it).
    keys: BTreeSet<String>,
}

#[derive(Deserialize)]
struct ChartYaml {
    name: String,
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    name: String,
    #[serde(default)]
    alias: Option<String>,
}

impl Chart {
    pub fn read(dir: &Path) -> Result<Chart, ChartError> {
        let chart_file = dir.join("Chart.yaml");
        if !chart_file.is_file() {
            return Err(ChartError::NoChart {
                dir: dir.to_path_buf(),
            });
        }
        let meta: ChartYaml = read_yaml(&chart_file)?;
        let mut keys: BTreeSet<String> = meta
            .dependencies
            .into_iter()
            .map(|d| d.alias.unwrap_or(d.name))
            .collect();
        let values_file = dir.join("values.yaml");
        if values_file.is_file() {
            let values: Option<serde_norway::Mapping> = read_yaml(&values_file)?;
            keys.extend(
                values
                    .unwrap_or_default()
                    .keys()
                    .filter_map(|k| k.as_str().map(str::to_string)),
            );
        }
        Ok(Chart {
            name: meta.name,
            keys,
        })
    }

    pub fn has_value_key(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    pub fn value_keys(&self) -> Vec<String> {
        self.keys.iter().cloned().collect()
    }
}

fn read_yaml<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<T, ChartError> {
    let text = std::fs::read_to_string(file).map_err(|source| ChartError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    serde_norway::from_str(&text).map_err(|e| ChartError::Yaml {
        file: file.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subchart_aliases_and_values_keys_both_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n  - name: postgresql\n    alias: db\n    version: 0.1.0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("values.yaml"), "api:\n  replicas: 1\n").unwrap();
        let chart = Chart::read(dir.path()).unwrap();
        assert!(chart.has_value_key("db"));
        assert!(chart.has_value_key("api"));
        assert!(!chart.has_value_key("postgresql"));
    }

    #[test]
    fn a_directory_without_chart_yaml_is_not_a_chart() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Chart::read(dir.path()),
            Err(ChartError::NoChart { .. })
        ));
    }
}
