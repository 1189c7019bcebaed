//! This machine as the VM drivers see it: the implementation of [`devenv_drivers::Host`] on top
//! of the process runner and the file system. Each probe runs with a short timeout so a hung
//! libvirtd cannot hang `devenv doctor`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use devenv_drivers::{
    Arch, BoxFuture, Choice, Driver, DriverStatus, FileInfo, Host, Os, ProbeOutput, Registry,
    SelectError,
};

use crate::process::{Cmd, Runner};

/// How long one health probe may take. Generous because libvirtd answers `domcapabilities` by
/// probing QEMU, which takes seconds on hosts where KVM is unusable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Machine {
    runner: Arc<dyn Runner>,
    groups: Vec<String>,
    os_version: Option<String>,
    /// Where `/proc` and `/dev` are read from: `/`, or a fixture tree in tests.
    root: Option<PathBuf>,
}

impl Machine {
    /// Probe the facts every check needs once (group membership, OS version).
    pub async fn probe(runner: Arc<dyn Runner>) -> Machine {
        let first_line = |out: Result<crate::process::Output, _>| {
            out.ok()
                .filter(|o| o.success())
                .map(|o| o.stdout.trim().to_string())
        };
        let groups = first_line(
            runner
                .output(&Cmd::new("id").arg("-Gn").read_only().timeout(PROBE_TIMEOUT))
                .await,
        )
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
        let os_version = if cfg!(target_os = "macos") {
            first_line(
                runner
                    .output(
                        &Cmd::new("sw_vers")
                            .arg("-productVersion")
                            .read_only()
                            .timeout(PROBE_TIMEOUT),
                    )
                    .await,
            )
        } else {
            None
        };
        Machine {
            runner,
            groups,
            os_version,
            root: None,
        }
    }

    /// Read host files (`/proc/cpuinfo`, `/dev/kvm`) under `root` instead of `/`
    /// (`$DEVENV_HOST_ROOT`, for tests of a host that can run KVM).
    pub fn with_root(mut self, root: Option<PathBuf>) -> Machine {
        self.root = root;
        self
    }

    fn host_path(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }
}

/// The CPUs and memory of this machine, for the warning when `[vm]` asks for more: Linux from
/// `/proc/cpuinfo` and `/proc/meminfo` (under `root`, `$DEVENV_HOST_ROOT` in tests), macOS
/// from sysctl. `None` when they cannot be read.
pub fn resources(root: Option<&Path>) -> Option<Resources> {
    if cfg!(target_os = "macos") {
        return macos_resources();
    }
    let read = |path: &str| {
        let path = match root {
            Some(root) => root.join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        };
        std::fs::read_to_string(path).ok()
    };
    let cpuinfo = read("/proc/cpuinfo")?;
    let meminfo = read("/proc/meminfo")?;
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Resources {
        cpus: u32::try_from(cpus).ok().filter(|n| *n > 0)?,
        memory_mib: kib / 1024,
    })
}

/// What the machine has to give a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub cpus: u32,
    pub memory_mib: u64,
}

#[cfg(target_os = "macos")]
fn macos_resources() -> Option<Resources> {
    fn sysctl<T: Default + Copy>(name: &std::ffi::CStr) -> Option<T> {
        let mut value = T::default();
        let mut size = std::mem::size_of::<T>();
        // SAFETY: `value` has `size` writable bytes and the name is NUL-terminated.
        let rc = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                (&raw mut value).cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0).then_some(value)
    }
    Some(Resources {
        cpus: u32::try_from(sysctl::<i32>(c"hw.ncpu")?).ok()?,
        memory_mib: sysctl::<u64>(c"hw.memsize")? / (1024 * 1024),
    })
}

#[cfg(not(target_os = "macos"))]
fn macos_resources() -> Option<Resources> {
    None
}

pub fn current_os() -> Os {
    if cfg!(target_os = "linux") {
        Os::Linux
    } else if cfg!(target_os = "macos") {
        Os::MacOs
    } else {
        Os::Other
    }
}

pub fn current_arch() -> Arch {
    if cfg!(target_arch = "x86_64") {
        Arch::X86_64
    } else if cfg!(target_arch = "aarch64") {
        Arch::Aarch64
    } else {
        Arch::Other
    }
}

impl Host for Machine {
    fn os(&self) -> Os {
        current_os()
    }

    fn arch(&self) -> Arch {
        current_arch()
    }

    fn os_version(&self) -> Option<String> {
        self.os_version.clone()
    }

    fn uid(&self) -> u32 {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }

    fn groups(&self) -> Vec<String> {
        self.groups.clone()
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        which::which(program).ok()
    }

    fn file_info(&self, path: &Path) -> Option<FileInfo> {
        let path = &self.host_path(path);
        let meta = std::fs::metadata(path).ok()?;
        Some(FileInfo {
            uid: meta.uid(),
            mode: meta.mode(),
            read_write: access_rw(path),
        })
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(self.host_path(path)).ok()
    }

    fn run<'a>(
        &'a self,
        program: &'a str,
        args: &'a [&'a str],
    ) -> BoxFuture<'a, Result<ProbeOutput, devenv_drivers::RunFailure>> {
        Box::pin(async move {
            let cmd = Cmd::new(program)
                .args(args)
                .read_only()
                .timeout(PROBE_TIMEOUT);
            match self.runner.output(&cmd).await {
                Ok(out) => Ok(ProbeOutput {
                    code: out.code,
                    stdout: out.stdout,
                    stderr: out.stderr,
                }),
                Err(e @ crate::process::ProcessError::NotFound { .. }) => {
                    Err(devenv_drivers::RunFailure::NotFound(e.to_string()))
                }
                Err(e) => Err(devenv_drivers::RunFailure::Other(e.to_string())),
            }
        })
    }
}

/// Whether the real user may open `path` for reading and writing (what opening /dev/kvm needs).
fn access_rw(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
}

/// The driver a setting names, without probing its health (for what only depends on the
/// driver's kind: the exports dialect, its host-only network, its minikube flags). `auto` gives
/// the driver `auto` prefers on this OS.
pub fn driver_for(choice: &Choice) -> Result<&'static dyn Driver, SelectError> {
    let registry = Registry::builtin();
    let supported = registry.for_host(current_os(), current_arch());
    match choice {
        Choice::Auto => supported
            .into_iter()
            .next()
            .ok_or(SelectError::NoneHealthy {
                statuses: Vec::new(),
            }),
        Choice::Named(name) => {
            let driver = registry.get(name)?;
            if supported.iter().any(|d| d.name() == driver.name()) {
                Ok(driver)
            } else {
                Err(SelectError::Unsupported {
                    name: driver.name().to_string(),
                    os: current_os(),
                })
            }
        }
    }
}

/// The driver `up` would use and its health: for `auto` the best healthy one, or, when none is
/// healthy, the one `auto` prefers with its failing status (so a plan can still be shown).
pub async fn select_driver(
    host: &Machine,
    choice: &Choice,
) -> Result<(&'static dyn Driver, DriverStatus), SelectError> {
    match Registry::builtin().choose(choice, host).await {
        Err(SelectError::NoneHealthy { statuses }) => {
            let best = driver_for(&Choice::Auto).map_err(|_| SelectError::NoneHealthy {
                statuses: statuses.clone(),
            })?;
            let status = statuses
                .into_iter()
                .find(|s| s.driver == best.name())
                .expect("a status for every supported driver");
            Ok((best, status))
        }
        other => other,
    }
}
