//! A scripted [`Host`] for the drivers' unit tests, plus the real outputs it replays.
//!
//! Each test states the machine it needs (OS, programs on PATH, groups, files, the output of each
//! probe) and nothing more: a probe the test did not script panics, so a check that starts running
//! something new cannot pass by accident (the same rule as rustup's mock binaries). The virsh
//! outputs and the first cpuinfo block below were captured from libvirt 9.0.0 with QEMU 7.2 on
//! Debian 12, in a VM whose CPU exposes no vmx/svm; the others are marked as edited.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use crate::host::{Arch, BoxFuture, FileInfo, Host, Os, ProbeOutput, RunFailure};

/// Drives a future that is ready on its first poll, which every future over a [`FakeHost`] is.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a future over the fake host was not ready at once"),
    }
}

/// A successful probe that printed `stdout`.
pub fn out(stdout: &str) -> Result<ProbeOutput, RunFailure> {
    Ok(ProbeOutput {
        code: Some(0),
        stdout: stdout.to_string(),
        stderr: String::new(),
    })
}

/// A probe that exited with `code` after printing `stderr` (and `stdout`, which virsh leaves as a
/// single newline on errors).
pub fn exit(code: i32, stdout: &str, stderr: &str) -> Result<ProbeOutput, RunFailure> {
    Ok(ProbeOutput {
        code: Some(code),
        stdout: stdout.to_string(),
        stderr: stderr.to_string(),
    })
}

pub struct FakeHost {
    os: Os,
    arch: Arch,
    os_version: Option<String>,
    uid: u32,
    groups: Vec<String>,
    programs: HashMap<String, PathBuf>,
    files: HashMap<PathBuf, FileInfo>,
    texts: HashMap<PathBuf, String>,
    answers: HashMap<String, Result<ProbeOutput, RunFailure>>,
    ran: Mutex<Vec<String>>,
}

impl FakeHost {
    fn new(os: Os, arch: Arch) -> Self {
        FakeHost {
            os,
            arch,
            os_version: None,
            uid: 1000,
            groups: vec!["dev".to_string()],
            programs: HashMap::new(),
            files: HashMap::new(),
            texts: HashMap::new(),
            answers: HashMap::new(),
            ran: Mutex::new(Vec::new()),
        }
    }

    /// An x86_64 Linux machine with nothing installed, used by uid 1000.
    pub fn linux() -> Self {
        FakeHost::new(Os::Linux, Arch::X86_64)
    }

    /// A macOS machine on `arch` with nothing installed.
    pub fn mac(arch: Arch, version: &str) -> Self {
        let mut h = FakeHost::new(Os::MacOs, arch);
        h.os_version = Some(version.to_string());
        h
    }

    pub fn other() -> Self {
        FakeHost::new(Os::Other, Arch::X86_64)
    }

    pub fn arch(mut self, arch: Arch) -> Self {
        self.arch = arch;
        self
    }

    pub fn no_os_version(mut self) -> Self {
        self.os_version = None;
        self
    }

    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = uid;
        self
    }

    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// Puts `program` on PATH, in /usr/bin or /usr/local/bin as real installs do.
    pub fn program(mut self, program: &str) -> Self {
        let dir = if program == "virsh" {
            "/usr/bin"
        } else {
            "/usr/local/bin"
        };
        self.programs
            .insert(program.to_string(), Path::new(dir).join(program));
        self
    }

    pub fn without_program(mut self, program: &str) -> Self {
        self.programs.remove(program);
        self
    }

    pub fn file(mut self, path: &str, info: FileInfo) -> Self {
        self.files.insert(PathBuf::from(path), info);
        self
    }

    pub fn without_file(mut self, path: &str) -> Self {
        self.files.remove(Path::new(path));
        self
    }

    pub fn text(mut self, path: &str, text: &str) -> Self {
        self.texts.insert(PathBuf::from(path), text.to_string());
        self
    }

    pub fn without_text(mut self, path: &str) -> Self {
        self.texts.remove(Path::new(path));
        self
    }

    /// Scripts the answer to `argv` (program and arguments joined by single spaces).
    pub fn answer(mut self, argv: &str, answer: Result<ProbeOutput, RunFailure>) -> Self {
        self.answers.insert(argv.to_string(), answer);
        self
    }

    /// Every probe run so far, as joined argv.
    pub fn ran(&self) -> Vec<String> {
        self.ran.lock().unwrap().clone()
    }
}

impl Host for FakeHost {
    fn os(&self) -> Os {
        self.os
    }

    fn arch(&self) -> Arch {
        self.arch
    }

    fn os_version(&self) -> Option<String> {
        self.os_version.clone()
    }

    fn uid(&self) -> u32 {
        self.uid
    }

    fn groups(&self) -> Vec<String> {
        self.groups.clone()
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        self.programs.get(program).cloned()
    }

    fn file_info(&self, path: &Path) -> Option<FileInfo> {
        self.files.get(path).copied()
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        self.texts.get(path).cloned()
    }

    fn run<'a>(
        &'a self,
        program: &'a str,
        args: &'a [&'a str],
    ) -> BoxFuture<'a, Result<ProbeOutput, RunFailure>> {
        let argv = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        self.ran.lock().unwrap().push(argv.clone());
        let answer = match self.answers.get(&argv) {
            Some(a) => a.clone(),
            None => panic!("the fake host has no answer for `{argv}`"),
        };
        Box::pin(async move { answer })
    }
}

/// The check `id` of a driver's status; a test that names a check the driver lacks fails.
pub fn check<'a>(status: &'a crate::DriverStatus, id: &str) -> &'a crate::Check {
    status
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {status:#?}"))
}

/// `/dev/kvm` as a character device the current user may open.
pub const DEV_KVM_RW: FileInfo = FileInfo {
    uid: 0,
    mode: 0o20666,
    read_write: true,
};

/// The first processor block of `/proc/cpuinfo` in a cloud VM without nested virtualisation: note
/// `hypervisor` but neither `vmx` nor `svm`.
pub const CPUINFO_NO_VIRT: &str = "processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 167
model name\t: Intel(R) Xeon(R) Processor
stepping\t: 1
microcode\t: 0x1
cpu MHz\t\t: 2599.998
cache size\t: 491520 KB
fpu\t\t: yes
fpu_exception\t: yes
cpuid level\t: 36
wp\t\t: yes
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch cpuid_fault fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni avx512_bf16 arat avx512vbmi umip avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid cldemote movdiri movdir64b fsrm serialize tsxldtrk amx_bf16 avx512_fp16 amx_tile amx_int8 arch_capabilities
bugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs retbleed bhi spectre_v2_user its its_native_only
bogomips\t: 5199.99
address sizes\t: 48 bits physical, 57 bits virtual
power management:

";

/// Edited: a laptop's block with VT-x, where `vmx` sits among the other flags and a `vmx flags`
/// line follows (kernels since 5.8).
pub const CPUINFO_VMX: &str = "processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch
vmx flags\t: vnmi preemption_timer invvpid ept_x_only ept_ad ept_1gb flexpriority tsc_offset vtpr mtf vapic ept vpid unrestricted_guest ple
bogomips\t: 4199.88

";

/// Edited: an AMD block with AMD-V (`svm`).
pub const CPUINFO_SVM: &str = "processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD Ryzen 7 5800X 8-Core Processor
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl cpuid pni pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a
bogomips\t: 7585.40

";

/// `virsh -c qemu:///system version` when libvirtd is not running.
pub const VIRSH_NO_SOCKET: &str = "error: failed to connect to the hypervisor
error: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory
";

/// `virsh -c qemu:///system version` run by a user the daemon will not let in (here: no polkit
/// agent on the system bus).
pub const VIRSH_NO_BUS: &str = "error: failed to connect to the hypervisor
error: internal error: Unable to get system bus connection: Could not connect: No such file or directory
";

/// The head of `virsh -c qemu:///system domcapabilities --virttype kvm`, which succeeds whenever
/// `/dev/kvm` exists, usable CPU or not.
pub const DOMCAPS_KVM: &str = "<domainCapabilities>
  <path>/usr/bin/qemu-system-x86_64</path>
  <domain>kvm</domain>
  <machine>pc-i440fx-7.2</machine>
  <arch>x86_64</arch>
  <vcpu max='255'/>
  <iothreads supported='yes'/>
</domainCapabilities>
";

/// `virsh -c qemu:///system domcapabilities --virttype kvm` without any qemu-system package.
pub const DOMCAPS_NO_EMULATOR: &str = "error: failed to get emulator capabilities
error: unsupported configuration: unable to find any emulator to serve '(null)' architecture
";

/// `virsh -c qemu:///system net-info default` after `net-start default`.
pub const NET_INFO_ACTIVE: &str = "Name:           default
UUID:           a5b4aeb1-5433-4f42-bcac-e4a28406fdf3
Active:         yes
Persistent:     yes
Autostart:      no
Bridge:         virbr0

";

/// Edited: [`NET_INFO_ACTIVE`] after `net-autostart default`.
pub const NET_INFO_AUTOSTART: &str = "Name:           default
UUID:           a5b4aeb1-5433-4f42-bcac-e4a28406fdf3
Active:         yes
Persistent:     yes
Autostart:      yes
Bridge:         virbr0

";

/// `virsh -c qemu:///system net-info default` as Debian's libvirt-daemon-system leaves it.
pub const NET_INFO_INACTIVE: &str = "Name:           default
UUID:           a5b4aeb1-5433-4f42-bcac-e4a28406fdf3
Active:         no
Persistent:     yes
Autostart:      no
Bridge:         virbr0

";

/// `virsh -c qemu:///system net-info default` when the network was never defined.
pub const NET_INFO_MISSING: &str = "error: failed to get network 'default'
error: Network not found: no network with matching name 'default'
";
