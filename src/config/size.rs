//! Memory and disk sizes as people write them in devenv.toml (`"6g"`, `"6144m"`, `"40GB"`), kept
//! in MiB because that is the unit minikube stores (`Config.Memory` is MB).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in mebibytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size {
    mib: u64,
}

impl Size {
    pub const fn from_mib(mib: u64) -> Self {
        Size { mib }
    }

    pub const fn from_gib(gib: u64) -> Self {
        Size { mib: gib * 1024 }
    }

    pub fn mib(self) -> u64 {
        self.mib
    }

    /// The value for a minikube flag: whole gibibytes as `6g`, otherwise `6144m`.
    pub fn minikube_flag(self) -> String {
        if self.mib.is_multiple_of(1024) {
            format!("{}g", self.mib / 1024)
        } else {
            format!("{}m", self.mib)
        }
    }

    /// Parse `"6g"`, `"6G"`, `"6gb"`, `"6GiB"`, `"6Gi"` (Kubernetes' spelling), `"6144m"`,
    /// `"6144Mi"`, `"6144mb"`, `"1t"`. A bare number is
    /// rejected: minikube reads it as MB for `--memory` but bytes elsewhere, and guessing wrong
    /// would give the VM 6 MB.
    pub fn parse(text: &str) -> Result<Self, crate::unreadable::Unreadable> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(format!("\"{text}\" is not a size").into());
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("\"{text}\" is too large"))?;
        let factor = match unit.trim().to_ascii_lowercase().as_str() {
            "m" | "mb" | "mi" | "mib" => 1,
            "g" | "gb" | "gi" | "gib" => 1024,
            "t" | "tb" | "ti" | "tib" => 1024 * 1024,
            "" => return Err(format!("\"{text}\" has no unit").into()),
            other => return Err(format!("\"{text}\" has an unknown unit \"{other}\"").into()),
        };
        n.checked_mul(factor)
            .map(Size::from_mib)
            .ok_or_else(|| format!("\"{text}\" is too large").into())
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.minikube_flag())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Size::parse(&text).map_err(|e| {
            serde::de::Error::custom(format!("{e}: write it like \"6g\" or \"6144m\""))
        })
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.minikube_flag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gigabytes_in_any_common_spelling() {
        for t in ["6g", "6G", "6gb", "6GiB", "6Gi", " 6 g"] {
            assert_eq!(Size::parse(t.trim()), Ok(Size::from_gib(6)), "{t}");
        }
    }

    #[test]
    fn megabytes_are_kept_exact() {
        assert_eq!(Size::parse("6144m").unwrap().mib(), 6144);
        assert_eq!(Size::parse("1500mb").unwrap().minikube_flag(), "1500m");
    }

    #[test]
    fn whole_gigabytes_print_as_g() {
        assert_eq!(Size::parse("6144m").unwrap().minikube_flag(), "6g");
    }

    #[test]
    fn a_bare_number_is_refused_for_its_ambiguity() {
        assert!(
            Size::parse("6144")
                .unwrap_err()
                .to_string()
                .contains("no unit")
        );
    }

    #[test]
    fn unknown_units_and_garbage_are_refused() {
        assert!(
            Size::parse("6q")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(
            Size::parse("lots")
                .unwrap_err()
                .to_string()
                .contains("not a size")
        );
        assert!(Size::parse("99999999999999999999g").is_err());
    }
}
