//! A container built by hand as its users build one: `ns_exec` makes new
//! pid, mount, UTS and IPC namespaces, a shell script bind-mounts a
//! busybox root filesystem onto itself, mounts proc, a tmpfs with files
//! and a bind of a tmpfs directory into it, and `pivot_root`s there; the
//! workload (a busybox shell counting in a variable and writing the count
//! to the tmpfs) runs as the namespace's init. It dumps with its mounts
//! (`mountpoints-ID.img`, the tmpfs archived) and restores with `--root`
//! into new namespaces with the same mounts: the tmpfs with its files,
//! the bind showing the same directory, proc showing the container's own
//! pids, the count going on from where it was. With our tool and CRIU
//! 4.1.1 either way.
//!
//! A shared tmpfs and its slave still propagate mounts one way after the
//! restore.
//!
//! A shared root mount comes back shared; `--enable-fs` mounts a filesystem
//! CRIU's table does not know again fresh.
//!
//! Refused by name, with the container left running: a root mount that
//! shares with another (not restored yet) and a bind mount of a host directory
//! outside the root (until declared with `--external mnt[PATH]:KEY`, and
//! given back with `--external mnt[KEY]:DIR`). A fault once the mount
//! namespace is built leaves no process and no yard directory behind.
//!
//! The harness is a child subreaper: a restored root is its child once
//! `criu restore -d` ends.

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TempDir;
use common::peer::Peer;
use criu_core::images::pb::rpc::{CriuOpts, CriuReq, CriuReqType, ExtMountMap};
use service_common::Client;

const BUSYBOX: &str = "/bin/busybox";

/// The host side of the set-up: runs as pid 1 of the new namespaces, in
/// the new mount namespace, with `$1` the root filesystem and `$2` extra
/// mount commands; ends in the container's own `/init.sh`.
const SETUP: &str = r#"
set -e
B=/bin/busybox
R=$1
$B mount --bind $R $R
cd $R
$B mount -t proc proc proc
$B mount -t tmpfs -o size=2m,mode=1777 ctmp tmp
echo data > tmp/file
$B mkdir tmp/d
echo bound > tmp/d/inside
$B mount --bind tmp/d mnt
# What runc sets up: /dev on a tmpfs with a device node, devpts, shm and
# mqueue; sysfs read-only; a read-only bind of part of proc, a file of
# /dev bound over a proc file.
$B mount -t tmpfs -o nosuid,strictatime,mode=755,size=1m tmpfs dev
$B mkdir dev/pts dev/shm dev/mqueue
$B mknod -m 666 dev/null c 1 3
$B mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts dev/pts
$B mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=1m shm dev/shm
$B mount -t mqueue -o nosuid,nodev,noexec mqueue dev/mqueue
$B mount -t sysfs -o ro,nosuid,nodev,noexec sysfs sys
$B mount --bind proc/sys proc/sys
$B mount -o remount,bind,ro proc/sys
$B mount --bind dev/null proc/keys
# A shared tmpfs and a slave of it.
$B mount -t tmpfs -o size=1m pair srv
$B mount --make-shared srv
$B mkdir srv/a tmp/p
$B mount --bind srv tmp/p
$B mount --make-slave tmp/p
eval "$2"
$B pivot_root . old
exec /bin/sh /init.sh
"#;

/// Inside: drops the host's tree, closes what came from outside, and
/// becomes the counting workload in a session of its own.
const INIT: &str = r#"
umount -l /old
rmdir /old
[ -f /post.sh ] && . /post.sh
hostname ct1
for i in 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19; do eval "exec $i>&-"; done
exec setsid /bin/sh /work.sh </tmp/file >/tmp/out 2>&1
"#;

/// The workload: its count lives in the shell's memory.
const WORK: &str = r#"
n=0
while :; do
  n=$((n+1))
  echo $n > /tmp/count
  sleep 0.05
done
"#;

struct Container {
    dir: TempDir,
    rootfs: PathBuf,
    ns_exec: Child,
    /// The namespaces' init (the workload).
    pid: i32,
}

/// Why this machine cannot run the container, if it cannot.
fn cannot_run() -> Option<String> {
    if let Some(why) = common::cannot_checkpoint() {
        return Some(why.to_string());
    }
    if !Path::new(BUSYBOX).exists() {
        return Some(format!("{BUSYBOX} (busybox-static) is not installed"));
    }
    // pivot_root (the set-up's, and the restore's, as CRIU's) cannot
    // leave the initramfs a machine booted into (the VMs').
    common::cannot_pivot_root().map(str::to_string)
}

/// A busybox root filesystem in `dir`.
fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in [
        "bin", "proc", "tmp", "mnt", "old", "data", "dev", "sys", "srv",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "sleep", "mount", "umount", "rmdir", "hostname", "setsid", "ln", "rm",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("init.sh"), INIT).unwrap();
    std::fs::write(root.join("work.sh"), WORK).unwrap();
    root
}

impl Container {
    /// Starts the container; `extra` runs in the set-up before the pivot
    /// (`$R` is the root, the cwd).
    fn start(test: &str, extra: &str) -> Option<Container> {
        Self::start_with(test, extra, &[])
    }

    /// [`Container::start`], with more `ns_exec` options (`inotify=PATH`
    /// takes `{root}` for the root filesystem's path).
    fn start_with(test: &str, extra: &str, options: &[&str]) -> Option<Container> {
        if let Some(why) = cannot_run() {
            common::skipping::skip(test, &why);
            return None;
        }
        common::become_subreaper();
        let dir = TempDir::new(test);
        let rootfs = rootfs(dir.path());
        let setup = dir.join("setup.sh");
        std::fs::write(&setup, SETUP).unwrap();
        let root = rootfs.display().to_string();
        let options = options.iter().map(|o| o.replace("{root}", &root));
        let ns_exec = Command::new(common::program_path("ns_exec"))
            .args(options)
            .args(["pid", "mnt", "uts", "ipc", "--", "/bin/sh"])
            .arg(&setup)
            .arg(&rootfs)
            .arg(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("setup.err")).unwrap())
            .spawn()
            .expect("start ns_exec");
        let outer = ns_exec.id() as i32;
        let mut c = Container {
            dir,
            rootfs,
            ns_exec,
            pid: 0,
        };
        let started = common::wait_until(Duration::from_secs(10), || {
            let kids = common::descendants(outer);
            match kids.first() {
                Some(&init) if count_of(init).is_some() => {
                    c.pid = init;
                    true
                }
                _ => false,
            }
        });
        assert!(
            started,
            "{test}: the container did not start counting: {}",
            std::fs::read_to_string(c.dir.join("setup.err")).unwrap_or_default()
        );
        Some(c)
    }

    fn images(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.pid > 0 {
            common::kill_all(&[self.pid]);
        }
        let _ = self.ns_exec.kill();
        let _ = self.ns_exec.wait();
    }
}

/// The count the workload of the container whose init is `pid` wrote.
fn count_of(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/root/tmp/count"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The count now: the shell rewrites the file (`echo >` truncates it
/// first), so a read that finds it empty is tried again.
fn count_now(pid: i32) -> u64 {
    let mut n = None;
    let ok = common::wait_until(Duration::from_secs(5), || {
        n = count_of(pid);
        n.is_some()
    });
    assert!(ok, "no count from task {pid}");
    n.unwrap()
}

/// Waits until the count of `pid` passes `past`; its first value seen.
fn counting_past(pid: i32, past: u64) -> u64 {
    let mut first = None;
    let ok = common::wait_until(Duration::from_secs(10), || match count_of(pid) {
        Some(n) => {
            first.get_or_insert(n);
            n > past + 2
        }
        None => false,
    });
    assert!(
        ok,
        "task {pid} does not count past {past} (first {first:?})"
    );
    first.unwrap()
}

/// The mounts of `pid` as a comparable set: mount point, root, type,
/// mount options and superblock options (ids and devices change).
fn mounts_of(pid: i32) -> BTreeSet<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-").unwrap();
            format!("{} {} {} {} {}", f[4], f[3], f[dash + 1], f[5], f[dash + 3])
        })
        .collect()
}

/// What the container must still be after a restore as `pid`.
fn check_restored(pid: i32, mounts: &BTreeSet<String>, dumped_count: u64) {
    assert_eq!(&mounts_of(pid), mounts, "mounts of the restored task {pid}");
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    assert_eq!(
        std::fs::read_to_string(root.join("tmp/file")).unwrap(),
        "data\n"
    );
    // The bind shows the tmpfs's directory: one file, written on one
    // side, read on the other.
    assert_eq!(
        std::fs::read_to_string(root.join("mnt/inside")).unwrap(),
        "bound\n"
    );
    std::fs::write(root.join("tmp/d/new"), "x").unwrap();
    assert_eq!(std::fs::read_to_string(root.join("mnt/new")).unwrap(), "x");
    // The shared tmpfs still propagates to its slave, and not back.
    let ns = |args: &[&str]| {
        let out = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "/bin/busybox"])
            .args(args)
            .output()
            .expect("nsenter");
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    ns(&["mount", "-t", "tmpfs", "late", "/srv/a"]);
    let mounts_now = mounts_of(pid);
    assert!(
        mounts_now.iter().any(|m| m.starts_with("/tmp/p/a / tmpfs")),
        "a mount on the shared /srv/a did not reach its slave /tmp/p: {mounts_now:?}"
    );
    ns(&["mkdir", "-p", "/tmp/p/b"]);
    ns(&["mount", "-t", "tmpfs", "back", "/tmp/p/b"]);
    assert!(
        !mounts_of(pid).iter().any(|m| m.starts_with("/srv/b ")),
        "a mount on the slave reached its master"
    );
    // proc is the container's: its init is pid 1 there, and the tool's
    // own tasks are not in it.
    let stat = std::fs::read_to_string(root.join("proc/1/stat")).unwrap();
    assert!(stat.starts_with("1 (sh)"), "{stat}");
    let tasks = std::fs::read_dir(root.join("proc"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    assert!(tasks < 10, "the container's proc shows {tasks} tasks");
    let host = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-u", "hostname"])
        .output()
        .expect("nsenter");
    assert_eq!(String::from_utf8_lossy(&host.stdout).trim(), "ct1");
    // The count goes on from its value at dump, not from 0.
    let first = counting_past(pid, dumped_count);
    assert!(
        first >= dumped_count && first < dumped_count + 100,
        "count {first} after a dump at {dumped_count}"
    );
}

/// A criu to run (`images`, arguments): whether it succeeded, its log.
type Criu<'a> = dyn Fn(&Path, &[&str]) -> (bool, String) + 'a;

/// Dumps the container with `dump` (our criu or the peer) and restores
/// it with `restore`, checking it each time.
fn cycle(test: &str, dump: &Criu<'_>, restore: &Criu<'_>) {
    let Some(mut c) = Container::start(test, "") else {
        return;
    };
    let mounts = mounts_of(c.pid);
    assert!(
        mounts.iter().any(|m| m.starts_with("/proc / proc")),
        "{mounts:?}"
    );
    let images = c.images("images");
    let (ok, log) = dump(&images, &["dump", "-t", &c.pid.to_string()]);
    assert!(ok, "{test}: dump failed:\n{log}");
    let dumped_count = count_of_image(&images);
    common::wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{}", c.pid)).exists()
    });
    let root = c.rootfs.to_str().unwrap().to_string();
    let pidfile = c.dir.join("restored.pid");
    let (ok, log) = restore(
        &images,
        &[
            "restore",
            "-d",
            "--root",
            &root,
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
    );
    assert!(ok, "{test}: restore failed:\n{log}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    c.pid = pid;
    check_restored(pid, &mounts, dumped_count);
    let left = left_yards();
    assert!(left.is_empty(), "{test}: left {left:?}");
}

/// Our descendants whose root is `rootfs` (a container's tasks).
fn in_root(rootfs: &Path) -> Vec<i32> {
    common::descendants(std::process::id() as i32)
        .into_iter()
        .filter(|p| std::fs::read_link(format!("/proc/{p}/root")).is_ok_and(|r| r == rootfs))
        .collect()
}

/// Yard directories (`/tmp/.criu.mntns.PID.N`) of a criu that is gone.
fn left_yards() -> Vec<PathBuf> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // Ours are `.criu.mntns.PID.N` (CRIU's own, `.criu.mntns.XXXXXX`,
            // are CRIU's business).
            let (pid, n) = name.strip_prefix(".criu.mntns.")?.split_once('.')?;
            let ours = pid.parse::<u32>().is_ok() && n.parse::<u32>().is_ok();
            (ours && !Path::new(&format!("/proc/{pid}")).exists()).then(|| e.path())
        })
        .collect()
}

/// The count at dump: the workload's file, read back from the tmpfs
/// archive with GNU tar.
fn count_of_image(images: &Path) -> u64 {
    let archives: Vec<PathBuf> = std::fs::read_dir(images)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz.img"))
        .collect();
    for a in &archives {
        let out = Command::new("tar")
            .args(["-xzOf"])
            .arg(a)
            .arg("./count")
            .output()
            .expect("run tar");
        if let Ok(n) = String::from_utf8_lossy(&out.stdout).trim().parse() {
            return n;
        }
    }
    panic!("no count in the tmpfs archives {archives:?}")
}

fn ours(images: &Path, args: &[&str]) -> (bool, String) {
    common::run_criu(images, args, &[])
}

#[test]
fn a_container_comes_back_with_its_mounts() {
    cycle("mntns_ours", &ours, &ours);
}

#[test]
fn criu_restores_our_container_and_we_restore_its() {
    let Some(peer) = Peer::for_test("mntns_crossover") else {
        return;
    };
    let theirs = |images: &Path, args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--cgroup-dump-controller", "pids"]);
        peer.criu(images, &a)
    };
    cycle("mntns_ours_to_criu", &ours, &theirs);
    cycle("mntns_criu_to_ours", &theirs, &ours);
}

/// Dumps container `c` with our criu and `args`, waits for it to be
/// gone and restores it with `--root`: the restored init's pid.
fn ours_cycle(c: &mut Container, args: &[&str]) -> i32 {
    let images = c.images("images");
    let pid = c.pid.to_string();
    let mut dump = vec!["dump", "-t", &pid];
    dump.extend(args);
    let (ok, log) = ours(&images, &dump);
    assert!(ok, "dump failed:\n{log}");
    ours_restore(c, &images)
}

/// The optional (propagation) fields of the mount at `point` of `pid`.
fn propagation_of(pid: i32, point: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    text.lines()
        .rev()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f[4] == point)
        .map(|f| {
            let dash = f.iter().position(|x| *x == "-").unwrap();
            f[6..dash].join(" ")
        })
        .unwrap_or_else(|| panic!("no mount at {point} in task {pid}'s namespace"))
}

/// A shared root mount alone in its peer group (what LXC makes) comes
/// back shared; one that also propagates to another mount is refused,
/// with the container left running.
#[test]
fn a_shared_root_mount_comes_back_shared() {
    let Some(mut c) = Container::start("mntns_shared", "echo 'mount --make-shared /' > post.sh")
    else {
        return;
    };
    assert!(propagation_of(c.pid, "/").starts_with("shared:"));
    let mounts = mounts_of(c.pid);
    let now = count_now(c.pid);
    let pid = ours_cycle(&mut c, &[]);
    assert!(
        propagation_of(pid, "/").starts_with("shared:"),
        "the restored root mount: {:?}",
        propagation_of(pid, "/")
    );
    assert_eq!(mounts_of(pid), mounts);
    counting_past(pid, now);
}

#[test]
fn a_root_mount_sharing_with_another_is_refused_and_the_container_runs_on() {
    let Some(c) = Container::start(
        "mntns_shared_pair",
        "echo 'mount --make-shared / && mount --bind / /data' > post.sh",
    ) else {
        return;
    };
    let images = c.images("images");
    let (ok, log) = ours(&images, &["dump", "-t", &c.pid.to_string()]);
    assert!(!ok, "a root mount sharing with another was dumped:\n{log}");
    assert!(
        log.contains("at / ") && log.contains("root mount and propagates"),
        "{log}"
    );
    let now = count_now(c.pid);
    counting_past(c.pid, now);
}

/// `--link-remap` in a container: the workload holds a file of its
/// tmpfs unlinked from one name and still linked at another; the link
/// the dump makes goes into the tmpfs archive, and the restore opens the
/// file under its old name and removes the link through the restored
/// tree's root (the yard it was made below is gone by then).
#[test]
fn a_link_remap_in_a_container() {
    let post = "echo x > /tmp/la && ln /tmp/la /tmp/lb && exec 25</tmp/la && rm /tmp/la";
    let Some(mut c) = Container::start("mntns_link_remap", &format!("echo '{post}' > post.sh"))
    else {
        return;
    };
    let fd = |pid: i32| std::fs::read_link(format!("/proc/{pid}/fd/25")).unwrap();
    assert_eq!(fd(c.pid), Path::new("/tmp/la (deleted)"));
    let now = count_now(c.pid);
    let pid = ours_cycle(&mut c, &["--link-remap"]);
    assert_eq!(fd(pid), Path::new("/tmp/la (deleted)"));
    let tmp: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('l'))
        .collect();
    assert_eq!(tmp, ["lb"], "the restored tmpfs");
    let same = |p: String| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        same(format!("/proc/{pid}/fd/25")),
        same(format!("/proc/{pid}/root/tmp/lb"))
    );
    counting_past(pid, now);
}

/// A filesystem CRIU's table does not know (ramfs) is refused by name,
/// and with `--enable-fs ramfs` mounted again fresh, as CRIU does (its
/// contents are the user's business: a fresh one is empty).
#[test]
fn enable_fs_mounts_an_unknown_filesystem_again() {
    let Some(mut c) = Container::start(
        "mntns_enable_fs",
        "$B mount -t ramfs -o mode=751 rfs data && echo gone > data/f",
    ) else {
        return;
    };
    let images = c.images("refused");
    let (ok, log) = ours(&images, &["dump", "-t", &c.pid.to_string(), "-R"]);
    assert!(!ok, "a ramfs was dumped without --enable-fs:\n{log}");
    assert!(log.contains("at /data"), "{log}");
    let now = count_now(c.pid);
    let mounts = mounts_of(c.pid);
    assert!(
        mounts.iter().any(|m| m.starts_with("/data / ramfs")),
        "{mounts:?}"
    );
    let pid = ours_cycle(&mut c, &["--enable-fs", "hugetlbfs,ramfs"]);
    assert_eq!(mounts_of(pid), mounts);
    let data = std::fs::metadata(format!("/proc/{pid}/root/data")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&data.permissions()) & 0o7777,
        0o751
    );
    assert!(!Path::new(&format!("/proc/{pid}/root/data/f")).exists());
    counting_past(pid, now);
}

#[test]
fn a_host_directory_is_dumped_only_as_external() {
    let Some(c) = Container::start(
        "mntns_external",
        "$B mkdir -p ../hostdir && echo host > ../hostdir/f && $B mount --bind ../hostdir data",
    ) else {
        return;
    };
    let pid = c.pid.to_string();
    let images = c.images("refused");
    let (ok, log) = ours(&images, &["dump", "-t", &pid, "-R"]);
    assert!(!ok, "a host bind mount was dumped:\n{log}");
    assert!(log.contains("at /data"), "{log}");
    let now = count_now(c.pid);
    counting_past(c.pid, now);

    let images = c.images("images");
    let (ok, log) = ours(
        &images,
        &["dump", "-t", &pid, "--external", "mnt[/data]:hostdata"],
    );
    assert!(ok, "dump with the mount external failed:\n{log}");
    let mut c = c;
    common::wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{}", c.pid)).exists()
    });
    let root = c.rootfs.to_str().unwrap().to_string();
    let pidfile = c.dir.join("restored.pid");
    let (ok, log) = ours(&images, &["restore", "-d", "--root", &root]);
    assert!(
        !ok,
        "restored without the external mount's directory:\n{log}"
    );
    assert!(log.contains("--external mnt[hostdata]:DIR"), "{log}");
    let other = c.dir.join("otherdir");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("f"), "given\n").unwrap();
    // `--ext-mount-map KEY:DIR` says the same as `--external mnt[KEY]:DIR`.
    let ext = format!("hostdata:{}", other.display());
    let (ok, log) = ours(
        &images,
        &[
            "restore",
            "-d",
            "--root",
            &root,
            "--ext-mount-map",
            &ext,
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
    );
    assert!(ok, "restore with the external mount failed:\n{log}");
    c.pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let f = std::fs::read_to_string(format!("/proc/{}/root/data/f", c.pid)).unwrap();
    assert_eq!(f, "given\n");
}

#[test]
fn a_fault_after_the_mounts_leaves_nothing_behind() {
    let Some(mut c) = Container::start("mntns_fault", "") else {
        return;
    };
    let images = c.images("images");
    let (ok, log) = ours(&images, &["dump", "-t", &c.pid.to_string()]);
    assert!(ok, "dump failed:\n{log}");
    common::wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{}", c.pid)).exists()
    });
    c.pid = 0;
    let root = c.rootfs.to_str().unwrap().to_string();
    for fault in ["mounts", "namespaces", "fds"] {
        let pidfile = c.dir.join(&format!("{fault}.pid"));
        let (ok, log) = common::run_criu(
            &images,
            &[
                "restore",
                "-d",
                "--root",
                &root,
                "--pidfile",
                pidfile.to_str().unwrap(),
            ],
            &[("CRIU_RESTORE_FAULT", std::ffi::OsStr::new(fault))],
        );
        assert!(!ok, "fault {fault}: the restore succeeded:\n{log}");
        assert!(!pidfile.exists(), "fault {fault}: a pidfile was written");
        let left = || in_root(&c.rootfs);
        assert!(
            common::wait_until(Duration::from_secs(5), || left().is_empty()),
            "fault {fault}: tasks left: {:?}",
            left()
        );
        let yards = left_yards();
        assert!(yards.is_empty(), "fault {fault}: left {yards:?}");
    }
    // And the images still restore.
    let pidfile = c.dir.join("ok.pid");
    let (ok, log) = ours(
        &images,
        &[
            "restore",
            "-d",
            "--root",
            &root,
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
    );
    assert!(ok, "{log}");
    c.pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
}

/// Over RPC, as runc sends it: `ext_mnt` (mount point to key) at dump,
/// `root` and `ext_mnt` (key to directory) at restore.
#[test]
fn rpc_root_and_ext_mnt() {
    let Some(mut c) = Container::start(
        "mntns_rpc",
        "$B mkdir -p ../hostdir && echo host > ../hostdir/f && $B mount --bind ../hostdir data",
    ) else {
        return;
    };
    let images = c.images("images");
    let dir = std::fs::File::open(&images).unwrap();
    let map = |key: &str, val: &str| ExtMountMap {
        key: key.into(),
        val: val.into(),
    };
    let r = Client::swrk().call(&CriuReq {
        r#type: CriuReqType::Dump as i32,
        opts: Some(CriuOpts {
            images_dir_fd: dir.as_raw_fd(),
            pid: Some(c.pid),
            ext_mnt: vec![map("/data", "hostdata")],
            log_level: Some(4),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(r.success, "{r:?}");
    common::wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{}", c.pid)).exists()
    });
    let other = c.dir.join("otherdir");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("f"), "given\n").unwrap();
    let r = Client::swrk().call(&CriuReq {
        r#type: CriuReqType::Restore as i32,
        opts: Some(CriuOpts {
            images_dir_fd: dir.as_raw_fd(),
            root: Some(c.rootfs.to_str().unwrap().into()),
            ext_mnt: vec![map("hostdata", other.to_str().unwrap())],
            // As runc sends it.
            evasive_devices: Some(true),
            log_level: Some(4),
            log_file: Some("restore.log".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(r.success, "{r:?}");
    let pid = r.restore.as_ref().map(|x| x.pid).expect("the restored pid");
    c.pid = pid;
    let f = std::fs::read_to_string(format!("/proc/{pid}/root/data/f")).unwrap();
    assert_eq!(f, "given\n");
    let now = count_now(pid);
    counting_past(pid, now);
}

/// `--ext-mount-map auto` (LXC passes it on every run, with
/// `--enable-external-sharing --enable-external-masters`): a bind of a
/// host directory the dump was not told about is found external by
/// itself and kept with the path criu sees it at (CRIU's autodetected
/// mount: key `CRIU:AUTOGENERATED`, the path in `source`). The restore
/// must say `auto` too (here as CRIU's other spelling, `--external
/// mnt[]`), and binds that path again: the container sees what the host
/// directory holds now. CRIU 4.1.1 restores the same images.
#[test]
fn auto_external_mounts() {
    use criu_core::images::pb;
    use criu_core::images::typed::ImageDir;
    let Some(mut c) = Container::start(
        "mntns_auto",
        "$B mkdir -p ../hostdir && echo host > ../hostdir/f && $B mount --bind ../hostdir data",
    ) else {
        return;
    };
    let hostdir = c.dir.join("hostdir");
    let images = c.images("images");
    let pid = c.pid.to_string();
    let auto = [
        "--ext-mount-map",
        "auto",
        "--enable-external-sharing",
        "--enable-external-masters",
    ];
    let mut dump = vec!["dump", "-t", &pid];
    dump.extend(auto);
    let (ok, log) = ours(&images, &dump);
    assert!(ok, "dump with --ext-mount-map auto failed:\n{log}");
    let id: u64 = std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("mountpoints-")?
                .strip_suffix(".img")?
                .parse()
                .ok()
        })
        .expect("a mountpoints image");
    let mounts: Vec<pb::MntEntry> = ImageDir::new(&images)
        .read_all(criu_core::images::Kind::Mnts, id)
        .unwrap();
    let data = mounts
        .iter()
        .find(|m| m.mountpoint == "/data")
        .expect("the mount at /data");
    assert_eq!(
        data.ext_key.as_deref(),
        Some("CRIU:AUTOGENERATED"),
        "{data:?}"
    );
    assert_eq!(
        Path::new("/").join(&data.source),
        hostdir,
        "the path criu saw the bound directory at: {data:?}"
    );
    common::wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{}", c.pid)).exists()
    });
    let root = c.rootfs.to_str().unwrap().to_string();
    let (ok, log) = ours(&images, &["restore", "-d", "--root", &root]);
    assert!(!ok, "restored an autodetected mount without auto:\n{log}");
    assert!(log.contains("--ext-mount-map auto"), "{log}");
    std::fs::write(hostdir.join("f"), "host, later\n").unwrap();
    let (ok, log) = restore_into(&mut c, &ours, &images, &["--external", "mnt[]"]);
    assert!(ok, "restore with --external mnt[] failed:\n{log}");
    let f = std::fs::read_to_string(format!("/proc/{}/root/data/f", c.pid)).unwrap();
    assert_eq!(f, "host, later\n");
    let now = count_now(c.pid);
    counting_past(c.pid, now);

    // The same images (dumped again) restored by CRIU 4.1.1.
    let Some(peer) = Peer::for_test("mntns_auto_to_criu") else {
        return;
    };
    let images = c.images("to-criu");
    let pid = c.pid.to_string();
    let mut dump = vec!["dump", "-t", &pid];
    dump.extend(auto);
    let (ok, log) = ours(&images, &dump);
    assert!(ok, "second dump failed:\n{log}");
    let theirs = |images: &Path, args: &[&str]| peer.criu(images, args);
    let (ok, log) = restore_into(&mut c, &theirs, &images, &auto);
    assert!(
        ok,
        "CRIU 4.1.1 did not restore our autodetected mount:\n{log}"
    );
    let f = std::fs::read_to_string(format!("/proc/{}/root/data/f", c.pid)).unwrap();
    assert_eq!(f, "host, later\n");
    let now = count_now(c.pid);
    counting_past(c.pid, now);
}

/// An inotify watch in a container (on its `/bin`, which the host sees at
/// another path): the images name the watched directory as the container
/// sees it, with the mount it is on (as CRIU writes it: CRIU's restore of
/// a watch with a path and no mount in a tree with its own mount
/// namespace stops on a BUG_ON), and CRIU 4.1.1 restores them.
#[test]
fn an_inotify_watch_in_a_container_is_named_by_its_path_there() {
    use criu_core::images::pb;
    use criu_core::images::typed::ImageDir;
    let Some(mut c) = Container::start_with("mntns_inotify", "", &["inotify={root}/bin"]) else {
        return;
    };
    let images = c.images("images");
    let pid = c.pid.to_string();
    let (ok, log) = ours(&images, &["dump", "-t", &pid, "--force-irmap"]);
    assert!(ok, "dump failed:\n{log}");
    let files: Vec<pb::FileEntry> = ImageDir::new(&images)
        .read_all(criu_core::images::Kind::Files, 0)
        .unwrap();
    let wds: Vec<&pb::InotifyWdEntry> = files
        .iter()
        .filter_map(|f| f.ify.as_ref())
        .flat_map(|i| &i.wd)
        .collect();
    let [wd] = wds[..] else {
        panic!("one watch expected: {wds:?}");
    };
    assert_eq!(wd.f_handle.path.as_deref(), Some("/bin"), "{wd:?}");
    assert!(wd.f_handle.mnt_id.is_some(), "{wd:?}");
    let watched = |pid: i32| {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/25")).unwrap();
        assert_eq!(link.to_str(), Some("anon_inode:inotify"));
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/25")).unwrap();
        assert!(info.contains("inotify wd:1"), "{info}");
        let now = count_now(pid);
        counting_past(pid, now);
    };
    watched(ours_restore(&mut c, &images));
    let Some(peer) = Peer::for_test("mntns_inotify_to_criu") else {
        return;
    };
    let images = c.images("to-criu");
    let pid = c.pid.to_string();
    let (ok, log) = ours(&images, &["dump", "-t", &pid, "--force-irmap"]);
    assert!(ok, "second dump failed:\n{log}");
    let theirs = |images: &Path, args: &[&str]| peer.criu(images, args);
    let (ok, log) = restore_into(&mut c, &theirs, &images, &[]);
    assert!(ok, "CRIU 4.1.1 did not restore the watch:\n{log}");
    watched(c.pid);
}

/// Waits for container `c`'s dumped tree to be gone and restores it from
/// `images` with our criu and `--root`: the restored init's pid.
fn ours_restore(c: &mut Container, images: &Path) -> i32 {
    let (ok, log) = restore_into(c, &ours, images, &[]);
    assert!(ok, "restore failed:\n{log}");
    c.pid
}

/// Waits for container `c`'s dumped tree to be gone, then restores it
/// from `images` with `criu` (ours or CRIU's), `--root` its root
/// filesystem, a new pidfile and `extra`: success and the log; on success
/// `c.pid` is the restored init.
fn restore_into(
    c: &mut Container,
    criu: &Criu<'_>,
    images: &Path,
    extra: &[&str],
) -> (bool, String) {
    common::wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{}", c.pid)).exists()
    });
    let root = c.rootfs.to_str().unwrap().to_string();
    // (CRIU creates its pidfile anew.)
    let pidfile = c.dir.join("restored.pid");
    let _ = std::fs::remove_file(&pidfile);
    let mut args = vec!["restore", "-d", "--root", &root, "--pidfile"];
    args.push(pidfile.to_str().unwrap());
    args.extend(extra);
    let (ok, log) = criu(images, &args);
    if ok {
        c.pid = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    }
    (ok, log)
}
