//! Why a text could not be read: a tool's answer that did not look as devenv expects
//! (minikube's status, the VM's `/proc`, a Docker stats reply, the exec status of a pod), or a
//! value a person wrote (a duration, a size, an NFS client, a DNS label). The readers of all
//! of them return this one type, so what they found wrong crosses module boundaries as an
//! error value (a `source` the screen shows as a cause), never as a bare string that a caller
//! might take apart again. A leaf: it uses nothing of devenv's.

/// What was wrong with the text, in words for the screen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(String);

impl Unreadable {
    pub fn new(why: impl Into<String>) -> Unreadable {
        Unreadable(why.into())
    }
}

impl From<String> for Unreadable {
    fn from(why: String) -> Unreadable {
        Unreadable(why)
    }
}

impl From<&str> for Unreadable {
    fn from(why: &str) -> Unreadable {
        Unreadable(why.to_string())
    }
}

/// The words, where a caller keeps them as text (a state that says why it is unknown).
impl From<Unreadable> for String {
    fn from(e: Unreadable) -> String {
        e.0
    }
}
