//! VM drivers: which hypervisor minikube should use on this host, whether it is healthy, and what
//! the rest of devenv needs to know about it (minikube flags, the addresses NFS uses, the exports
//! dialect of the host).
//!
//! The crate never starts a process or reads the machine itself: every observation goes through the
//! [`Host`] trait, which devenv implements with its process runner and tests implement with fixtures.
//! That keeps each driver's health check a pure, tested function of what the host reports, as in
//! minikube's driver registry (`pkg/minikube/registry`), whose shape (name, priority, status with
//! reason / fix / doc) this crate copies.

#[cfg(test)]
mod fixture;
mod host;
pub mod packages;
mod probe;
mod registry;
mod status;

pub mod hyperkit;
pub mod kvm2;
pub mod vfkit;

pub use host::{Arch, BoxFuture, FileInfo, Host, Os, ProbeOutput, RunFailure};
pub use registry::{Choice, Registry, SelectError};
pub use status::{Check, CheckState, DriverStatus};

use std::net::Ipv4Addr;

/// Order in which `vm.driver = "auto"` prefers healthy drivers: higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Works, but only kept for machines that cannot run anything better (hyperkit).
    Deprecated = 1,
    /// A fallback choice.
    Fallback = 2,
    /// The best choice for its OS.
    Preferred = 3,
}

/// Syntax of the host's `/etc/exports`, which differs between Linux (`exports(5)`, reloaded with
/// `exportfs -ra`) and macOS (BSD `exports(5)`, checked with `nfsd checkexports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportsDialect {
    Linux,
    MacOs,
}

/// Who an NFS export is granted to. Never a wildcard: either the VM's own address or the
/// host-only network that only the VM and the host sit on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportClient {
    Address(Ipv4Addr),
    Subnet { network: Ipv4Addr, prefix: u8 },
}

impl std::fmt::Display for ExportClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportClient::Address(ip) => write!(f, "{ip}"),
            ExportClient::Subnet { network, prefix } => write!(f, "{network}/{prefix}"),
        }
    }
}

/// One minikube VM driver. Implementations are stateless; every method but [`Driver::status`] is
/// pure so the plan can be computed without touching the machine.
pub trait Driver: Send + Sync {
    /// minikube's name for the driver (`--driver=<name>`).
    fn name(&self) -> &'static str;
    /// One-line description for listings.
    fn description(&self) -> &'static str;
    fn priority(&self) -> Priority;
    /// Whether the driver can exist on this OS and CPU at all (before any health check).
    fn supports(&self, os: Os, arch: Arch) -> bool;
    /// Health of the driver on this host: every check it makes, each with reason, fix and doc.
    /// Must only read (never install or start anything) and must bound every probe's time.
    fn status<'a>(&'a self, host: &'a dyn Host) -> BoxFuture<'a, DriverStatus>;
    /// Extra `minikube start` arguments this driver needs, after `--driver=<name>`.
    fn start_flags(&self) -> Vec<String>;
    /// The host's address as the VM sees it, given the VM's address (where the NFS server is).
    fn host_address(&self, vm_ip: Ipv4Addr) -> Ipv4Addr;
    /// The host-only network the VM will get before its address is known.
    fn default_subnet(&self) -> ExportClient;
    /// Whom the export is granted to: the VM's address when known, else the host-only subnet.
    fn export_client(&self, vm_ip: Option<Ipv4Addr>) -> ExportClient {
        match vm_ip {
            Some(ip) => ExportClient::Address(ip),
            None => self.default_subnet(),
        }
    }
    /// Syntax of `/etc/exports` on the OS this driver runs on.
    fn exports_dialect(&self) -> ExportsDialect;
}

/// The `.1` address of a /24: minikube's kvm2, hyperkit and vfkit drivers all give the host the
/// first address of the VM's /24 (contracts: `cluster.HostIP`).
pub fn gateway_of(vm_ip: Ipv4Addr) -> Ipv4Addr {
    let [a, b, c, _] = vm_ip.octets();
    Ipv4Addr::new(a, b, c, 1)
}
