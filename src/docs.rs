//! Links to devenv's documentation in what it prints: absolute URLs of the pages of this
//! version (the repository at its release tag), so a link in a terminal opens the page that
//! matches the binary, wherever devenv was installed from and whatever the current directory.

/// The repository at this version's tag; page paths (`docs/nfs.md`) follow.
pub const BASE: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/blob/v",
    env!("CARGO_PKG_VERSION"),
    "/"
);

/// The URL of `page` (`"nfs.md"`, `"troubleshooting.md#cpu-governor"`) under `docs/`.
pub fn url(page: &str) -> String {
    format!("{BASE}docs/{page}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_name_this_version_of_the_page() {
        assert_eq!(
            super::url("nfs.md"),
            format!(
                "https://github.com/devenv-dev/devenv/blob/v{}/docs/nfs.md",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
