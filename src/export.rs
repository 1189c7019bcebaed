//! The project's NFS export as this machine should have it: the exports file and server of
//! this host ([`host_for`]), the exported directory, the client (the VM's own address once it
//! runs) and the lines of devenv's block ([`Export`]). `up`, `down`, `status`, `doctor` and
//! `devenv exports` all work from it, so they agree on what the block should hold.

use std::path::PathBuf;

use devenv_drivers::{Choice, ExportClient};

use crate::config::Loaded;
use crate::context::Context;
use crate::error::Error;
use crate::machine;
use crate::minikube;
use crate::nfs::apply::{Change, NfsHost};
use crate::nfs::{self, Owner};

/// Everything needed to write this project's block.
pub struct Export {
    pub host: NfsHost,
    pub project: String,
    pub owner: Owner,
    /// The exported directory as written in the file (firmlinks resolved on macOS).
    pub source: PathBuf,
    pub client: ExportClient,
    pub lines: Vec<String>,
    /// What the lines grant, as the exports helper is asked for it.
    pub grant: nfs::Grant,
    /// The client should be the VM's own address, which is not known yet (the VM does not
    /// run): `client` and `lines` hold the driver's usual host-only network in its place.
    pub awaits_vm_address: bool,
}

/// The NFS server of this machine as VMs of `driver` use it, for `owner`.
pub fn host_for(ctx: &Context, driver: &dyn devenv_drivers::Driver, owner: Owner) -> NfsHost {
    NfsHost::for_machine(
        ctx.exports_file.clone(),
        driver.exports_dialect(),
        owner.uid == 0,
    )
    .with_reload_override(ctx.exports_reload.as_deref())
}

impl Export {
    /// The export for a project: the VM's address when the VM runs (asked read-only from
    /// minikube), otherwise the driver's host-only network.
    pub async fn for_project(ctx: &Context, loaded: &Loaded) -> Result<Export, Error> {
        let profile = loaded.config.project.profile();
        let ip = match ctx.runner.output(&minikube::ip(&profile)).await {
            Ok(out) if out.success() => out.stdout.trim().parse().ok(),
            _ => None,
        };
        Export::at_address(ctx, loaded, ip)
    }

    /// The export for a VM whose address is already known (`None`: no running VM).
    pub fn at_address(
        ctx: &Context,
        loaded: &Loaded,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Result<Export, Error> {
        let c = &loaded.config;
        let driver = machine::driver_for(&Choice::parse(&c.vm.driver))?;
        let client = match &c.mount.export_client {
            Some(text) => nfs::parse_client(text).map_err(|why| Error::Usage {
                message: format!("mount.export_client: {why}"),
                help: format!("see {}", crate::docs::url("config.md")),
            })?,
            // The VM's own address: minikube puts a new VM on the first free subnet (.39,
            // .50, .61, ... for kvm2), so no network can be assumed before it runs. Without a
            // VM, the driver's usual network stands in (`devenv exports apply` alone); `up`
            // writes the export only once the VM has its address.
            None => driver.export_client(ip),
        };
        let awaits_vm_address = c.mount.export_client.is_none() && ip.is_none();
        let owner = Owner::current();
        let canonical = loaded
            .source_dir()
            .canonicalize()
            .map_err(Error::io("resolve", loaded.source_dir()))?;
        // The path travels as text from here on (the exports line, the helper's request, the
        // mount command in the VM, /proc/mounts): a byte that is not UTF-8 would turn into
        // U+FFFD on the way and name a directory that does not exist.
        if canonical.to_str().is_none() {
            return Err(Error::Usage {
                message: format!(
                    "the exported directory {} has a name that is not UTF-8",
                    canonical.display()
                ),
                help: "rename the directory (or the one above it whose name shows a \u{fffd}) to a UTF-8 name: NFS clients and minikube read paths as UTF-8".into(),
            });
        }
        let source = nfs::exported_path(driver.exports_dialect(), &canonical, &ctx.firmlinks);
        let line = nfs::export_line(driver.exports_dialect(), &source, client, owner);
        let grant = nfs::Grant {
            dir: canonical,
            client,
            access: nfs::Access::ReadWrite,
        };
        Ok(Export {
            host: host_for(ctx, driver, owner),
            project: c.project.name.clone(),
            owner,
            source,
            client,
            lines: vec![line],
            grant,
            awaits_vm_address,
        })
    }

    /// The change that writes this export.
    pub fn set(&self) -> Change<'_> {
        Change::Set {
            source: &self.source,
            lines: &self.lines,
            grant: Some(&self.grant),
        }
    }

    /// The exports file as it is now (empty when there is none).
    pub fn current(&self) -> Result<Vec<u8>, Error> {
        nfs::read_exports(&self.host.exports)
            .map(Option::unwrap_or_default)
            .map_err(Error::io("read", &self.host.exports))
    }
}
