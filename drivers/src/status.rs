//! The result of a driver's health check, shaped after minikube's `registry.State`: every check
//! says what it found, and a failing one says why, how to fix it and where to read more.

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Ok,
    /// Works, but something should change (a deprecated driver, a missing optional piece).
    Warn,
    /// The driver cannot work until this is fixed.
    Fail,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Ok => "ok",
            CheckState::Warn => "warn",
            CheckState::Fail => "fail",
        }
    }
}

/// One named check of a driver's prerequisites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short stable identifier, e.g. `kvm2.libvirtd`.
    pub id: String,
    pub state: CheckState,
    /// What was found, in one sentence ("libvirtd answers on qemu:///system").
    pub reason: String,
    /// The exact command or action that fixes a warn/fail; `None` when ok.
    pub fix: Option<String>,
    /// Where to read more.
    pub doc: Option<String>,
}

impl Check {
    pub fn ok(id: &str, reason: impl Into<String>) -> Self {
        Check {
            id: id.to_string(),
            state: CheckState::Ok,
            reason: reason.into(),
            fix: None,
            doc: None,
        }
    }

    pub fn warn(id: &str, reason: impl Into<String>, fix: impl Into<String>, doc: &str) -> Self {
        Check {
            id: id.to_string(),
            state: CheckState::Warn,
            reason: reason.into(),
            fix: Some(fix.into()),
            doc: Some(doc.to_string()),
        }
    }

    pub fn fail(id: &str, reason: impl Into<String>, fix: impl Into<String>, doc: &str) -> Self {
        Check {
            id: id.to_string(),
            state: CheckState::Fail,
            reason: reason.into(),
            fix: Some(fix.into()),
            doc: Some(doc.to_string()),
        }
    }
}

/// Everything a driver found about itself on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverStatus {
    pub driver: &'static str,
    /// The driver's binaries are present (it may still be unhealthy).
    pub installed: bool,
    pub checks: Vec<Check>,
}

impl DriverStatus {
    /// Healthy means no check failed; warnings do not stop a driver from being chosen.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.state != CheckState::Fail)
    }

    /// The worst state among the checks.
    pub fn state(&self) -> CheckState {
        if !self.healthy() {
            CheckState::Fail
        } else if self.checks.iter().any(|c| c.state == CheckState::Warn) {
            CheckState::Warn
        } else {
            CheckState::Ok
        }
    }

    /// The first failing check: the one to show when a single reason is wanted.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.state == CheckState::Fail)
    }
}
