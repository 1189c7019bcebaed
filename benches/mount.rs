//! `cargo bench --bench mount`: what the source mount costs inside a real guest, for devenv's
//! mount options and the alternatives, so the default is chosen by figures (docs/nfs.md).
//!
//! The guest is the VM-backed tests' own (`tests/support/vm.rs`: Debian's kernel under qemu TCG,
//! the real NFS client, nfs-ganesha on the host), the tree 20,000 small files in 200 directories
//! plus a 1 MiB file. Each row mounts the tree afresh and measures, inside the guest with its
//! monotonic clock (`fsbench`, built into the guest image):
//! - a cold walk (caches dropped): readdir of every directory and lstat of every entry, as a
//!   polling watcher or a `find` does;
//! - the same walk at once, and again after 5 s (longer than `actimeo=1` and the NFS client's
//!   default `acregmin=3`, shorter than devenv's minute);
//! - lstat p50/p99 during the walk after 5 s (the steady cost of one stat);
//! - a 1 MiB read with cold caches;
//! - freshness: a host edit (the file's size changes) until `lstat` in the guest sees it, the
//!   guest having just looked at the file; and the same after the `touch -c` that devenv's
//!   `forward` runs in the VM for a changed path (on a laptop add the watcher's debounce and one
//!   `minikube ssh`, about 0.5 s).
//!
//! 9p is qemu's virtio 9p (`-virtfs`), a lower bound for `minikube mount`, whose 9p server runs
//! in the minikube process over TCP. tmpfs in the guest is the floor. TCG emulation makes every
//! figure slower than on a laptop's hypervisor, the ratios are what carries over. Figures, not
//! assertions. Rows can be replaced with `DEVENV_MOUNT_BENCH_OPTIONS="opts;opts"` (NFS only).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::vm::{Ganesha, Guest, Netns};

const DIRS: usize = 200;
const FILES: usize = 100;
const MNT: &str = "/mnt/bench";

/// What one row measured; times in ms, latencies in µs.
struct Row {
    name: String,
    cold: f64,
    again: f64,
    later: f64,
    p50_us: f64,
    p99_us: f64,
    read: f64,
    fresh: Option<f64>,
    fresh_forwarded: Option<f64>,
}

/// How a row mounts the tree in the guest.
enum Mount {
    Nfs(String),
    NinePee(&'static str),
    Tmpfs,
}

fn main() {
    let Some(image) = support::vm::image() else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    write_tree(tree.path());
    let netns = Netns::new();
    let _ganesha = Ganesha::start(&netns, &[(tree.path(), "192.168.39.10")]);
    let guest = Guest::boot_sharing(
        &image,
        Ipv4Addr::new(192, 168, 39, 10),
        &netns,
        Some(tree.path()),
    );
    let rtt = round_trip(&guest);
    println!(
        "mount bench: {} files in {DIRS} directories, guest {} under TCG, command round trip {:.0} ms",
        DIRS * FILES,
        guest.ip,
        rtt
    );

    let default = devenv::config::DEFAULT_MOUNT_OPTIONS;
    let mut rows: Vec<(String, Mount)> = match std::env::var("DEVENV_MOUNT_BENCH_OPTIONS") {
        Ok(list) => list
            .split(';')
            .map(|o| (format!("nfs {o}"), Mount::Nfs(o.to_string())))
            .collect(),
        Err(_) => vec![
            (
                format!("nfs {default} (devenv)"),
                Mount::Nfs(default.into()),
            ),
            (
                "nfs vers=3,tcp,nolock,noacl,async,actimeo=1".into(),
                Mount::Nfs("vers=3,tcp,nolock,noacl,async,actimeo=1".into()),
            ),
            (
                "nfs vers=3,tcp,nolock (client defaults)".into(),
                Mount::Nfs("vers=3,tcp,nolock".into()),
            ),
            (
                "9p virtio, cache=none".into(),
                Mount::NinePee("trans=virtio,version=9p2000.L,msize=262144"),
            ),
            ("tmpfs in the guest (floor)".into(), Mount::Tmpfs),
        ],
    };
    rows.dedup_by(|a, b| matches!((&a.1, &b.1), (Mount::Nfs(x), Mount::Nfs(y)) if x == y));

    let mut measured = Vec::new();
    for (name, mount) in &rows {
        eprintln!("measuring {name} …");
        measured.push(measure(&guest, tree.path(), name, mount, rtt));
    }
    print_table(&measured);
}

/// The tree on the host: DIRS × FILES small source-like files, `big.bin` (1 MiB), `fresh.txt`.
fn write_tree(root: &Path) {
    for d in 0..DIRS {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..FILES {
            std::fs::write(dir.join(format!("f{f:03}.rb")), "puts :ok\n").unwrap();
        }
    }
    std::fs::write(root.join("big.bin"), vec![7u8; 1 << 20]).unwrap();
    std::fs::write(root.join("fresh.txt"), "x").unwrap();
}

/// The median time of a command that does nothing: what every guest call costs on top.
fn round_trip(guest: &Guest) -> f64 {
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            run(guest, "true");
            ms(t.elapsed())
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[3]
}

fn measure(guest: &Guest, tree: &Path, name: &str, mount: &Mount, rtt: f64) -> Row {
    let host = tree.to_str().unwrap();
    run(guest, &format!("mkdir -p {MNT}"));
    match mount {
        Mount::Nfs(opts) => run(
            guest,
            &format!("mount -t nfs -o {opts} 192.168.39.1:{host} {MNT}"),
        ),
        Mount::NinePee(opts) => run(guest, &format!("mount -t 9p -o {opts} share {MNT}")),
        Mount::Tmpfs => run(
            guest,
            &format!(
                "mount -t tmpfs t {MNT} && fsbench mktree {MNT} {DIRS} {FILES} && \
                 head -c 1048576 /dev/zero > {MNT}/big.bin && echo x > {MNT}/fresh.txt"
            ),
        ),
    };
    let cold = walk(guest, true);
    let again = walk(guest, false);
    std::thread::sleep(Duration::from_secs(5));
    let later = walk(guest, false);
    let read = field(
        &run(
            guest,
            &format!("echo 3 > /proc/sys/vm/drop_caches && fsbench read {MNT}/big.bin"),
        ),
        "ms",
    );
    let (fresh, fresh_forwarded) = if matches!(mount, Mount::Tmpfs) {
        (None, None)
    } else {
        let file = tree.join("fresh.txt");
        (
            Some(freshness(guest, &file, "", rtt)),
            Some(freshness(
                guest,
                &file,
                &format!("touch -c {MNT}/fresh.txt && "),
                rtt,
            )),
        )
    };
    run(guest, &format!("umount {MNT}"));
    Row {
        name: name.to_string(),
        cold: field(&cold, "ms"),
        again: field(&again, "ms"),
        later: field(&later, "ms"),
        p50_us: field(&later, "p50_us"),
        p99_us: field(&later, "p99_us"),
        read,
        fresh,
        fresh_forwarded,
    }
}

/// One walk of the mounted tree, after dropping the guest's caches when `cold`.
fn walk(guest: &Guest, cold: bool) -> String {
    let drop = if cold {
        "echo 3 > /proc/sys/vm/drop_caches && "
    } else {
        ""
    };
    let out = run(guest, &format!("{drop}fsbench walk {MNT}"));
    let entries = field(&out, "entries") as usize;
    assert_eq!(entries, DIRS * (FILES + 1) + 2, "the whole tree: {out}");
    out
}

/// From a host edit of `file` (its size grows by one byte) until the guest's lstat sees the new
/// size, the guest having looked at the file just before; `before` runs in the guest first.
fn freshness(guest: &Guest, file: &Path, before: &str, rtt: f64) -> f64 {
    let size = std::fs::metadata(file).unwrap().len();
    let vm = format!("{MNT}/fresh.txt");
    run(guest, &format!("fsbench fresh {vm} {size} 70000"));
    let mut text = std::fs::read(file).unwrap();
    text.push(b'x');
    let t = Instant::now();
    std::fs::write(file, &text).unwrap();
    let out = run(
        guest,
        &format!("{before}fsbench fresh {vm} {} 70000", size + 1),
    );
    assert!(!out.contains("timeout"), "never seen in 70 s: {out}");
    (ms(t.elapsed()) - rtt).max(field(&out, "ms"))
}

fn run(guest: &Guest, line: &str) -> String {
    let ran = guest.run(line);
    assert_eq!(ran.status, 0, "`{line}` in the guest: {}", ran.output);
    ran.output
}

/// The number after `key=` in fsbench's output.
fn field(out: &str, key: &str) -> f64 {
    let prefix = format!("{key}=");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {out:?}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_table(rows: &[Row]) {
    let base = rows[0].cold;
    println!();
    println!(
        "{:<68} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9} {:>10} {:>10} {:>11}",
        "mount",
        "cold walk",
        "at once",
        "after 5 s",
        "lstat p50",
        "lstat p99",
        "1 MiB",
        "fresh",
        "fresh+fwd",
        "after÷cold"
    );
    let opt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.0} ms"));
    for r in rows {
        println!(
            "{:<68} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9} {:>10} {:>10} {:>11}",
            r.name,
            format!("{:.0} ms", r.cold),
            format!("{:.0} ms", r.again),
            format!("{:.0} ms", r.later),
            format!("{:.0} µs", r.p50_us),
            format!("{:.0} µs", r.p99_us),
            format!("{:.0} ms", r.read),
            opt(r.fresh),
            opt(r.fresh_forwarded),
            format!("{:.2}×", r.later / r.cold),
        );
    }
    println!();
    println!("cold walks relative to the first row's:");
    for r in rows {
        println!("  {:<68} {:.2}×", r.name, r.cold / base);
    }
    println!(
        "target for devenv's default: a walk after 5 s ≤ 2 × its cold walk, and fresh+fwd ≤ 1 s"
    );
}
