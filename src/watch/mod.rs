//! File watching for `devenv watch`: the host's source tree is watched with notify, ignored
//! directories left unwatched and ignored paths dropped, and each batch (gathered until the tree
//! is quiet) is routed to the services whose `watch` globs it matches, so each service's
//! `on_change` action runs once per batch with every path that caused it.
//!
//! The parts are kept apart so the rules can be tested without a file system: [`filter`] decides
//! which paths matter and to whom, [`forward`] builds the in-VM `touch` calls, [`limits`] turns
//! the kernel's refusals into advice, and [`source`] is the only part that talks to notify.
//! Nothing among those runs a program or calls the cluster; `commands::watch` does, through the
//! runner and the kube client.
//!
//! Resources are watched too: [`resources`] holds the pure rules (the VM's `/proc`, containers'
//! stats, which service a container belongs to, sparklines, alert thresholds) and [`sample`]
//! reads one sample from the hypervisor process, the VM (through the runner), the VM's Docker
//! daemon and the Kubernetes API.

pub mod filter;
pub mod forward;
pub mod limits;
pub mod resources;
pub mod sample;
pub mod source;

pub use filter::{Ignores, Job, Routes};
pub use limits::Limit;
pub use source::{Batch, Source};
