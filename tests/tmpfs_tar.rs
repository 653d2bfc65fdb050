//! tmpfs contents (`criu_core::ns::mnt::tmpfs`): a tmpfs holding every
//! kind of file is dumped and restored into a second tmpfs and compared
//! field by field; crossover both ways with GNU tar run with CRIU's flags;
//! the archive CRIU 4.1.1 wrote restores; hostile archives fail cleanly
//! and write nothing outside the tmpfs.
//!
//! Every test mounts its tmpfs instances on a thread of its own that first
//! unshares its mount namespace and makes every mount in it private, so
//! nothing is mounted on the host and the mounts end with the thread.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criu_core::ns::mnt::tmpfs::{self, TmpfsError, TmpfsStats};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, SeekFrom, Timespec, Timestamps, XattrFlags};

use common::{TempDir, skip};

/// CRIU's `tar --create` flags (criu/filesystems.c, `tmpfs_dump`).
const CRIU_CREATE: &[&str] = &[
    "--create",
    "--gzip",
    "--no-unquote",
    "--no-wildcards",
    "--one-file-system",
    "--check-links",
    "--preserve-permissions",
    "--sparse",
    "--numeric-owner",
];
/// CRIU's `tar --extract` flags (`tmpfs_restore`).
const CRIU_EXTRACT: &[&str] = &["--extract", "--gzip", "--no-unquote", "--no-wildcards"];

/// Why these tests cannot run here, if they cannot.
fn cannot_run() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (mounts tmpfs in a mount namespace of its own)");
    }
    None
}

/// Run `f` on a thread in a new, private mount namespace.
fn in_mount_ns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            use linux_raw_sys::general::{CLONE_FS, CLONE_NEWNS};
            criu_core::sys::probe::unshare_this_thread(CLONE_FS | CLONE_NEWNS)
                .expect("unshare(CLONE_NEWNS) on the test thread");
            rustix::mount::mount_change(
                "/",
                rustix::mount::MountPropagationFlags::PRIVATE
                    | rustix::mount::MountPropagationFlags::REC,
            )
            .expect("make every mount of the new namespace private");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

fn mount_tmpfs(at: &Path, opts: &str) {
    std::fs::create_dir_all(at).unwrap();
    let data = CString::new(opts).unwrap();
    rustix::mount::mount(
        "criu-test",
        at,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", at.display()));
}

fn dir_fd(p: &Path) -> OwnedFd {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
}

/// Whether this kernel's tmpfs takes `user.` extended attributes (6.6 on).
fn user_xattrs(root: &Path) -> bool {
    let p = root.join(".probe");
    File::create(&p).unwrap();
    let ok = rustix::fs::setxattr(&p, "user.probe", b"1", XattrFlags::empty()).is_ok();
    std::fs::remove_file(&p).unwrap();
    ok
}

fn set_times(p: &Path, sec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: 123_456_789,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

const LONG: &str = "dir_with_a_rather_long_name_to_pass_the_hundred_byte_limit_of_the_tar_header";

/// A file capability set (VFS_CAP_REVISION_2, effective, CAP_NET_BIND_SERVICE).
const CAPS: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// What to put in the tree beyond the files every test has.
#[derive(Clone, Copy)]
struct Extras {
    /// Sparse files (GNU tar --posix, which --xattrs implies, writes them
    /// in the PAX sparse format, which is not taken).
    sparse: bool,
    /// A bind mount of a directory of the same tmpfs (GNU tar's
    /// --one-file-system compares devices only and enters it).
    bind: bool,
}

/// Fill the tmpfs at `root` with every kind of file; the names below
/// which a dump must not go.
fn populate(root: &Path, x: Extras) -> Vec<&'static str> {
    let user = user_xattrs(root);
    if !user {
        skip(
            "tmpfs_tar",
            "this tmpfs takes no user.* extended attributes (before Linux 6.6)",
        );
    }
    let p = |n: &str| root.join(n);
    let xattr = |n: &str, k: &str, v: &[u8]| {
        rustix::fs::lsetxattr(p(n), k, v, XattrFlags::empty())
            .unwrap_or_else(|e| panic!("setxattr {k} on {n}: {e}"));
    };
    std::fs::write(p("f"), b"hello\n").unwrap();
    chown(&p("f"), 1234, 5678);
    chmod(&p("f"), 0o4755);
    if user {
        xattr("f", "user.foo", b"bar\0\x01\xff");
    }
    xattr("f", "trusted.t", b"tv");
    xattr("f", "security.capability", &CAPS);
    std::fs::create_dir(p("d")).unwrap();
    std::fs::hard_link(p("f"), p("d/hl")).unwrap();
    chmod(&p("d"), 0o1777);
    xattr("d", "trusted.overlay.opaque", b"y");
    // A read-only directory with contents: its mode comes after them.
    std::fs::create_dir_all(p("ro/deep/er")).unwrap();
    std::fs::write(p("ro/deep/er/x"), b"x").unwrap();
    chown(&p("ro/deep"), 42, 43);
    chmod(&p("ro/deep"), 0o500);
    chmod(&p("ro"), 0o555);
    std::fs::write(p("empty"), b"").unwrap();
    std::fs::write(p("zeros"), vec![0u8; 8192]).unwrap();
    if x.sparse {
        let f = File::create(p("sparse")).unwrap();
        f.write_all_at(b"tail\n", 100 << 20).unwrap();
        // 30 islands: more segments than a GNU header and its first
        // extension block hold.
        let f = File::create(p("many")).unwrap();
        for i in 0..30u64 {
            f.write_all_at(format!("seg{i}").as_bytes(), i << 20)
                .unwrap();
        }
        f.set_len(31 << 20).unwrap();
        let f = File::create(p("holes_only")).unwrap();
        f.set_len(1 << 20).unwrap();
    }
    rustix::fs::mkfifoat(rustix::fs::CWD, p("fifo"), Mode::from_raw_mode(0o640)).unwrap();
    chown(&p("fifo"), 7, 8);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    chmod(&p("null"), 0o666);
    xattr("null", "trusted.dev", b"node");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p("blk"),
        FileType::BlockDevice,
        Mode::from_raw_mode(0o600),
        rustix::fs::makedev(7, 300),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p("sl")).unwrap();
    std::os::unix::fs::symlink("/etc", p("sldir")).unwrap();
    std::os::unix::fs::symlink("../../outside", p("rel")).unwrap();
    chown(&p("rel"), 99, 98);
    xattr("rel", "trusted.on_a_symlink", b"1");
    // A hard link to a symlink.
    std::fs::hard_link(p("sl"), p("sl2")).unwrap();
    // Long names and a long link target.
    let long = format!("{LONG}/{LONG}/file_at_the_end_of_a_long_path");
    std::fs::create_dir_all(p(&format!("{LONG}/{LONG}"))).unwrap();
    std::fs::write(p(&long), b"deep\n").unwrap();
    std::os::unix::fs::symlink(&long, p("longlink")).unwrap();
    std::fs::hard_link(p(&long), p("hl_to_long")).unwrap();
    // A socket: left out.
    let _sock = std::os::unix::net::UnixListener::bind(p("sock")).unwrap();
    // Another tmpfs mounted below: its mount point only.
    mount_tmpfs(&p("mnt"), "mode=0711,uid=5,gid=6");
    std::fs::write(p("mnt/secret"), b"not to be archived").unwrap();
    let mut skip_below = vec!["mnt"];
    if x.bind {
        std::fs::create_dir(p("bindd")).unwrap();
        rustix::mount::mount_bind(p("d"), p("bindd")).unwrap();
        skip_below.push("bindd");
    }
    for n in [
        "f",
        "d/hl",
        "d",
        "ro/deep/er/x",
        "empty",
        "fifo",
        "null",
        "blk",
        "sl",
        "rel",
        "longlink",
    ] {
        set_times(&p(n), 981_173_106);
    }
    chown(root, 11, 12);
    chmod(root, 0o751);
    set_times(root, 1_000_000_000);
    skip_below
}

/// Everything a restore must keep of one file.
#[derive(Debug, PartialEq, Eq)]
struct Meta {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Whole seconds: GNU-format archives keep no more.
    mtime: i64,
    nlink: u64,
    rdev: u64,
    size: u64,
    /// Data segments (offset, length, CRC-32) of a regular file: holes
    /// stay holes.
    data: Vec<(u64, u64, u32)>,
    link: Option<PathBuf>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

struct Tree {
    files: BTreeMap<PathBuf, Meta>,
    /// Names sharing an inode, for inodes with several.
    links: BTreeSet<Vec<PathBuf>>,
}

fn data_of(p: &Path, size: u64) -> Vec<(u64, Vec<u8>)> {
    let f = File::open(p).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < size {
        let Ok(d) = rustix::fs::seek(&f, SeekFrom::Data(pos)) else {
            break;
        };
        let h = rustix::fs::seek(&f, SeekFrom::Hole(d)).unwrap().min(size);
        let mut buf = vec![0u8; (h - d) as usize];
        f.read_exact_at(&mut buf, d).unwrap();
        out.push((d, buf));
        pos = h;
    }
    out
}

fn xattrs_of(p: &Path, with: bool) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !with {
        return out;
    }
    let mut list = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut list[..]).unwrap();
    for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        let c = CString::new(name).unwrap();
        let len = rustix::fs::lgetxattr(p, c.as_c_str(), &mut v[..]).unwrap();
        out.insert(name.to_vec(), v[..len].to_vec());
    }
    out
}

/// The tree at `root`, not entering `skip_below` nor listing sockets.
fn scan(root: &Path, skip_below: &[&str], with_xattrs: bool) -> Tree {
    let mut files = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            continue; // sockets
        };
        if kind == "dir" {
            if !skip_below.iter().any(|s| rel == Path::new(s)) {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(rel.join(e.unwrap().file_name()));
                }
            }
        } else if m.nlink() > 1 {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.clone());
        }
        files.insert(
            rel.clone(),
            Meta {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: m.mtime(),
                nlink: if kind == "dir" { 0 } else { m.nlink() },
                rdev: m.rdev(),
                size: if kind == "dir" { 0 } else { m.size() },
                data: if kind == "file" {
                    data_of(&p, m.size())
                        .into_iter()
                        .map(|(off, bytes)| {
                            let mut crc = flate2::Crc::new();
                            crc.update(&bytes);
                            (off, bytes.len() as u64, crc.sum())
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                link: ft.is_symlink().then(|| std::fs::read_link(&p).unwrap()),
                xattrs: xattrs_of(&p, with_xattrs),
            },
        );
    }
    let links = inodes
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    Tree { files, links }
}

fn assert_same(a: &Tree, b: &Tree, what: &str) {
    for (p, m) in &a.files {
        match b.files.get(p) {
            Some(n) => assert_eq!(m, n, "{what}: {} differs", p.display()),
            None => panic!("{what}: {} is missing", p.display()),
        }
    }
    for p in b.files.keys() {
        assert!(a.files.contains_key(p), "{what}: {} is extra", p.display());
    }
    assert_eq!(a.links, b.links, "{what}: hard links differ");
}

/// The tree a dump keeps of `a`: mount points' contents left out (the
/// mount points themselves are there, as the mounted roots look).
fn dump_to_vec(root: &Path) -> (Vec<u8>, TmpfsStats) {
    let mut out = Vec::new();
    let stats = tmpfs::dump(dir_fd(root).as_fd(), &mut out).expect("dump");
    (out, stats)
}

fn have_gnu_tar(test: &str) -> bool {
    match Command::new("tar").arg("--version").output() {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("GNU tar") => true,
        _ => {
            skip(test, "GNU tar is not installed");
            false
        }
    }
}

fn run_tar(args: &[&str], dir: &Path, stdin: Option<&[u8]>) -> Vec<u8> {
    let mut c = Command::new("tar");
    c.args(args).arg("--directory").arg(dir);
    if stdin.is_none() {
        c.arg(".");
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tar");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.map(<[u8]>::to_vec);
    let feeder = std::thread::spawn(move || {
        if let Some(d) = data {
            input.write_all(&d).expect("feed tar");
        }
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "tar {args:?} failed: {}\n{err}",
        o.status
    );
    // CRIU's tar warns of the socket it leaves out; nothing else.
    for line in err.lines() {
        assert!(
            line.ends_with(": socket ignored"),
            "tar {args:?} said: {line}"
        );
    }
    o.stdout
}

#[test]
fn dump_then_restore_keeps_every_kind_of_file() {
    const TEST: &str = "tmpfs_round_trip";
    if let Some(why) = cannot_run() {
        return skip(TEST, why);
    }
    let tmp = TempDir::new(TEST);
    in_mount_ns(|| {
        let (a, b) = (tmp.join("a"), tmp.join("b"));
        mount_tmpfs(&a, "mode=0755");
        let skip_below = populate(
            &a,
            Extras {
                sparse: true,
                bind: true,
            },
        );
        let (archive, stats) = dump_to_vec(&a);
        let user = rustix::fs::lgetxattr(a.join("f"), "user.foo", &mut [0u8; 16][..]).is_ok();
        let dirs = 1 + 1 + 3 + 2 + 1 + 1; // root, d, ro/deep/er, LONG/LONG, mnt, bindd
        assert_eq!(
            stats,
            TmpfsStats {
                dirs,
                // f, ro/deep/er/x, empty, zeros, sparse, many, holes_only, the long one
                files: 8,
                sparse_files: 3,
                symlinks: 4,
                hard_links: 3, // d/hl, sl2, hl_to_long
                fifos: 1,
                devices: 2,
                data_bytes: stats.data_bytes,
                // f (2 or 3), d and bindd (the same d), null, rel
                xattrs: 6 + u64::from(user),
                sockets_skipped: 1,
                other_mounts: 2,
                missing_links: 0,
            },
            "dump stats"
        );
        assert!(
            archive.len() < 64 << 10,
            "holes were archived: {} bytes",
            archive.len()
        );

        mount_tmpfs(&b, "mode=0700");
        let rstats = tmpfs::restore(dir_fd(&b).as_fd(), &archive[..]).expect("restore");
        assert_eq!(
            rstats,
            TmpfsStats {
                sockets_skipped: 0,
                other_mounts: 0,
                ..stats.clone()
            },
            "restore stats"
        );
        let want = scan(&a, &skip_below, true);
        let got = scan(&b, &[], true);
        assert_same(&want, &got, "restored by us");
        assert!(!b.join("mnt/secret").exists());
        assert!(!b.join("sock").exists());
        let blocks = std::fs::metadata(b.join("sparse")).unwrap().blocks();
        assert!(
            blocks <= few_pages(),
            "the 100 MiB hole was filled: {blocks} blocks"
        );
        // The set-id bit and the capability survived the chown.
        assert_eq!(
            std::fs::metadata(b.join("f")).unwrap().mode() & 0o7777,
            0o4755
        );
        // The mount point is there, as the mounted root looked.
        let m = std::fs::metadata(b.join("mnt")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o711, 5, 6));
        // The same archive again, byte for byte: the dump is deterministic.
        assert_eq!(dump_to_vec(&a).0, archive);
    });
}

#[test]
fn gnu_tar_extracts_our_archive_as_criu_runs_it() {
    const TEST: &str = "tmpfs_gnu_tar_extracts";
    if let Some(why) = cannot_run() {
        return skip(TEST, why);
    }
    if !have_gnu_tar(TEST) {
        return;
    }
    let tmp = TempDir::new(TEST);
    in_mount_ns(|| {
        let (a, b, c) = (tmp.join("a"), tmp.join("b"), tmp.join("c"));
        mount_tmpfs(&a, "mode=0755");
        let skip_below = populate(
            &a,
            Extras {
                sparse: true,
                bind: true,
            },
        );
        let (archive, _) = dump_to_vec(&a);
        // Exactly CRIU's command: no extended attributes.
        mount_tmpfs(&b, "mode=0700");
        run_tar(CRIU_EXTRACT, &b, Some(&archive));
        assert_same(
            &scan(&a, &skip_below, false),
            &scan(&b, &[], false),
            "GNU tar, CRIU's flags",
        );
        let blocks = std::fs::metadata(b.join("sparse")).unwrap().blocks();
        assert!(
            blocks <= few_pages(),
            "GNU tar filled the hole: {blocks} blocks"
        );
        // With --xattrs, what our PAX records hold comes back too.
        mount_tmpfs(&c, "mode=0700");
        let mut args = CRIU_EXTRACT.to_vec();
        args.extend(["--xattrs", "--xattrs-include=*"]);
        run_tar(&args, &c, Some(&archive));
        assert_same(
            &scan(&a, &skip_below, true),
            &scan(&c, &[], true),
            "GNU tar --xattrs",
        );
    });
}

#[test]
fn we_restore_what_gnu_tar_writes_for_criu() {
    const TEST: &str = "tmpfs_gnu_tar_created";
    if let Some(why) = cannot_run() {
        return skip(TEST, why);
    }
    if !have_gnu_tar(TEST) {
        return;
    }
    let tmp = TempDir::new(TEST);
    in_mount_ns(|| {
        let (a, b, c, d) = (tmp.join("a"), tmp.join("b"), tmp.join("c"), tmp.join("d"));
        mount_tmpfs(&a, "mode=0755");
        let skip_below = populate(
            &a,
            Extras {
                sparse: true,
                bind: false,
            },
        );
        let archive = run_tar(CRIU_CREATE, &a, None);
        mount_tmpfs(&b, "mode=0700");
        let stats = tmpfs::restore(dir_fd(&b).as_fd(), &archive[..]).expect("restore");
        assert_eq!(stats.sparse_files, 3, "{stats:?}");
        assert_same(
            &scan(&a, &skip_below, false),
            &scan(&b, &[], false),
            "CRIU's tar archive",
        );
        let blocks = std::fs::metadata(b.join("sparse")).unwrap().blocks();
        assert!(
            blocks <= few_pages(),
            "the hole was filled: {blocks} blocks"
        );

        // GNU tar --xattrs writes the POSIX format (PAX headers with
        // fractional times and SCHILY.xattr records).
        mount_tmpfs(&c, "mode=0755");
        let skip_below = populate(
            &c,
            Extras {
                sparse: false,
                bind: false,
            },
        );
        let mut args = CRIU_CREATE.to_vec();
        args.extend(["--xattrs", "--xattrs-include=*"]);
        let archive = run_tar(&args, &c, None);
        mount_tmpfs(&d, "mode=0700");
        tmpfs::restore(dir_fd(&d).as_fd(), &archive[..]).expect("restore a --xattrs archive");
        assert_same(
            &scan(&c, &skip_below, true),
            &scan(&d, &[], true),
            "GNU tar --xattrs archive",
        );
    });
}

#[test]
fn the_archive_criu_wrote_restores() {
    const TEST: &str = "tmpfs_criu_fixture";
    if let Some(why) = cannot_run() {
        return skip(TEST, why);
    }
    // Written by CRIU 4.1.1 (tests/fixtures/README.md says how).
    let archive = include_bytes!("fixtures/criu-4.1.1-tmpfs/tmpfs-dev-45.tar.gz.img");
    let tmp = TempDir::new(TEST);
    in_mount_ns(|| {
        let b = tmp.join("b");
        mount_tmpfs(&b, "mode=0700");
        let stats = tmpfs::restore(dir_fd(&b).as_fd(), &archive[..]).expect("restore");
        assert_eq!(
            (
                stats.files,
                stats.sparse_files,
                stats.hard_links,
                stats.symlinks,
                stats.fifos
            ),
            (4, 2, 1, 2, 1),
            "{stats:?}"
        );
        let meta = |n: &str| std::fs::symlink_metadata(b.join(n)).unwrap();
        let root = meta("");
        assert_eq!(
            (root.mode() & 0o7777, root.uid(), root.gid()),
            (0o751, 11, 12)
        );
        let f = meta("f");
        assert_eq!(
            (f.mode() & 0o7777, f.uid(), f.gid(), f.nlink()),
            (0o4755, 1234, 5678, 2)
        );
        assert_eq!(f.mtime(), 981_173_106);
        assert_eq!(f.ino(), meta("d/hl").ino());
        assert_eq!(std::fs::read(b.join("f")).unwrap(), b"hello\n");
        assert_eq!(meta("d").mode() & 0o7777, 0o1777);
        assert_eq!(meta("d").mtime(), 981_173_106);
        let ff = meta("ff");
        assert_eq!((ff.mode() & 0o7777, ff.uid(), ff.gid()), (0o640, 7, 8));
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&ff.file_type()));
        let c = meta("cdev");
        assert_eq!(
            (c.rdev(), c.mode() & 0o7777),
            (rustix::fs::makedev(1, 3), 0o666)
        );
        assert_eq!(
            std::fs::read_link(b.join("sl")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(meta("sl").mtime(), 981_173_106);
        let long = format!("{LONG}/{LONG}/file_at_the_end_of_a_long_path");
        assert_eq!(std::fs::read(b.join(&long)).unwrap(), b"deep\n");
        assert_eq!(
            std::fs::read_link(b.join("longlink")).unwrap(),
            Path::new(&long)
        );
        let s = meta("sparse");
        assert_eq!(s.size(), (100 << 20) + 5);
        assert!(s.blocks() <= few_pages(), "{} blocks", s.blocks());
        assert_eq!(
            data_of(&b.join("sparse"), s.size()),
            vec![(100 << 20, b"tail\n".to_vec())]
        );
        // GNU tar archived whole pages (what SEEK_DATA reports on tmpfs).
        let many: Vec<_> = data_of(&b.join("many"), meta("many").size())
            .into_iter()
            .map(|(off, mut bytes)| {
                while bytes.last() == Some(&0) {
                    bytes.pop();
                }
                (off, String::from_utf8(bytes).unwrap())
            })
            .collect();
        let want: Vec<_> = (0..30u64).map(|i| (i << 20, format!("seg{i}"))).collect();
        assert_eq!(many, want);
        assert!(!b.join("sock").exists());
    });
}

/// One raw archive member: name, type, link target, data.
type RawEntry<'a> = (&'a [u8], u8, &'a [u8], &'a [u8]);

/// A gzip-compressed archive of raw GNU headers: (name, type, link,
/// data), names and links written as given (the tar crate's setters
/// refuse hostile names).
fn hostile(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().next_multiple_of(512), 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// Every hostile archive restored into `b` fails as unsafe and leaves
/// `outside` (a sibling of `b`) as it was.
fn refused_everywhere(b: &Path, outside: &Path) {
    std::fs::write(outside.join("victim"), b"v").unwrap();
    let out = outside.as_os_str().as_bytes().to_vec();
    let abs_name = format!("{}/abs", outside.display());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            hostile(&[(b"../outside/escape", b'0', b"", b"x")]),
        ),
        (
            "dotdot_inside",
            hostile(&[(b"./a/../../outside/escape", b'0', b"", b"x")]),
        ),
        (
            "absolute",
            hostile(&[(abs_name.as_bytes(), b'0', b"", b"x")]),
        ),
        (
            "through_symlink",
            hostile(&[
                (b"./link", b'2', &out, b""),
                (b"./link/escape", b'0', b"", b"x"),
            ]),
        ),
        (
            "through_relative_symlink",
            hostile(&[
                (b"./up", b'2', b"..", b""),
                (b"./up/outside/escape", b'0', b"", b"x"),
            ]),
        ),
        (
            "dir_through_symlink",
            hostile(&[
                (b"./link", b'2', &out, b""),
                (b"./link/sub/", b'5', b"", b""),
            ]),
        ),
        (
            "hardlink_through_symlink",
            hostile(&[
                (b"./link", b'2', &out, b""),
                (b"./h", b'1', b"link/victim", b""),
            ]),
        ),
        (
            "hardlink_through_relative_symlink",
            hostile(&[
                (b"./up", b'2', b"..", b""),
                (b"./h", b'1', b"up/outside/victim", b""),
            ]),
        ),
        (
            "hardlink_dotdot",
            hostile(&[(b"./h", b'1', b"../outside/victim", b"")]),
        ),
        (
            "hardlink_absolute",
            hostile(&[(b"./h", b'1', b"/etc/passwd", b"")]),
        ),
    ];
    for (what, archive) in &cases {
        let e = tmpfs::restore(dir_fd(b).as_fd(), &archive[..])
            .expect_err(&format!("{what}: accepted"));
        assert!(matches!(e, TmpfsError::Unsafe { .. }), "{what}: {e}");
        let names: Vec<_> = std::fs::read_dir(outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("victim")],
            "{what}: wrote outside"
        );
        assert_eq!(
            std::fs::metadata(outside.join("victim")).unwrap().nlink(),
            1,
            "{what}"
        );
        assert_eq!(
            std::fs::read(outside.join("victim")).unwrap(),
            b"v",
            "{what}"
        );
    }
}

#[test]
fn hostile_archives_fail_cleanly_and_write_nothing_outside() {
    const TEST: &str = "tmpfs_hostile";
    if let Some(why) = cannot_run() {
        return skip(TEST, why);
    }
    let tmp = TempDir::new(TEST);
    in_mount_ns(|| {
        // Outside on another file system (the tmpfs restored into is a
        // mount of its own)...
        let outside = tmp.join("outside");
        std::fs::create_dir(&outside).unwrap();
        let b = tmp.join("b");
        mount_tmpfs(&b, "mode=0700");
        refused_everywhere(&b, &outside);
        // ... and on the same one (restoring into a directory of a tmpfs
        // whose sibling is outside): only the resolution beneath the root
        // without symlinks stops these, not the mount boundary.
        let t = tmp.join("t");
        mount_tmpfs(&t, "mode=0755");
        std::fs::create_dir(t.join("outside")).unwrap();
        std::fs::create_dir(t.join("b")).unwrap();
        refused_everywhere(&t.join("b"), &t.join("outside"));

        // A truncated gzip stream, cut anywhere.
        let (good, _) = {
            let a = tmp.join("a");
            mount_tmpfs(&a, "mode=0755");
            std::fs::write(a.join("f"), vec![7u8; 100_000]).unwrap();
            dump_to_vec(&a)
        };
        for cut in [
            10,
            good.len() / 3,
            good.len() / 2,
            good.len() - 9,
            good.len() - 1,
        ] {
            let e = tmpfs::restore(dir_fd(&b).as_fd(), &good[..cut])
                .expect_err(&format!("cut at {cut}: accepted"));
            assert!(
                matches!(e, TmpfsError::Read { .. } | TmpfsError::Truncated { .. }),
                "cut at {cut}: {e}"
            );
        }
        // Garbage after the archive.
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"garbage");
        assert!(tmpfs::restore(dir_fd(&b).as_fd(), &trailing[..]).is_err());

        // A size header of 1 EiB with a few bytes of data: an error once
        // the stream ends, not an allocation.
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..5].copy_from_slice(b"./big");
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(1 << 60);
        h.set_cksum();
        let mut raw = h.as_bytes().to_vec();
        raw.extend_from_slice(&[1u8; 4096]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).unwrap();
        let e = tmpfs::restore(dir_fd(&b).as_fd(), &gz.finish().unwrap()[..]).expect_err("big");
        assert!(
            matches!(&e, TmpfsError::Truncated { entry, .. } if entry.contains("./big")),
            "{e}"
        );
        // A GNU long name of 1 GiB is refused before it is read.
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(1 << 30);
        h.set_cksum();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(h.as_bytes()).unwrap();
        gz.write_all(&vec![b'a'; 1 << 20]).unwrap();
        let e = tmpfs::restore(dir_fd(&b).as_fd(), &gz.finish().unwrap()[..]).expect_err("long");
        assert!(matches!(e, TmpfsError::Malformed { .. }), "{e}");
        // Not gzip at all.
        let e = tmpfs::restore(dir_fd(&b).as_fd(), &b"plain text, no gzip"[..]).expect_err("text");
        assert!(matches!(e, TmpfsError::Read { .. }), "{e}");
    });
    assert_eq!(std::fs::read_dir(tmp.join("outside")).unwrap().count(), 1);
}

/// Two pages, in 512-byte blocks: what a file of a few data bytes and a
/// hole may take (a page is 64 KiB on ppc64le).
fn few_pages() -> u64 {
    2 * rustix::param::page_size() as u64 / 512
}
