//! The names Kubernetes and minikube accept, checked the same way wherever a name comes from
//! (devenv.toml, the exports helper's request, a directory name turned into a project name).

/// A Kubernetes DNS label (RFC 1123): what namespaces, Services and minikube profiles accept.
pub fn dns_label(name: &str, max: usize) -> Result<(), crate::unreadable::Unreadable> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.len() > max {
        Err(format!("\"{name}\" is longer than {max} characters").into())
    } else if !ok_chars || name.starts_with('-') || name.ends_with('-') {
        Err(format!(
            "\"{name}\" is not a DNS label (lowercase letters, digits and '-', not at the ends)"
        )
        .into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_follow_rfc_1123() {
        assert!(dns_label("shop-2", 40).is_ok());
        assert!(dns_label("Shop", 40).is_err());
        assert!(dns_label("-shop", 40).is_err());
        assert!(dns_label("sh op", 40).is_err());
        assert!(dns_label(&"a".repeat(41), 40).is_err());
    }
}
