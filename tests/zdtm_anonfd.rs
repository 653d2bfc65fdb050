//! ZDTM-style dump/restore tests of anon-inode files (eventfd, signalfd,
//! timerfd, epoll, inotify), unlinked open files (ghost files) and file
//! locks, plus the refusals: a closed epoll target, a ghost file over
//! the limit, locks without --file-locks. Each program checks itself after
//! restore (see tests/programs/zdtm/). The images must decode with CRIU's
//! own `crit` where it is installed.

mod common;

use std::path::Path;

use common::zdtm::Zdtm;

/// CRIU's `crit` decodes every image in `dir` (skipped without crit).
fn crit_decodes(dir: &Path, test: &str) {
    let works = std::process::Command::new("crit")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        // tests/run installs it; in strict mode (CI) this skip fails.
        return common::skip(
            test,
            "CRIU's crit is not installed (Debian package criu): images not cross-checked",
        );
    }
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".img") || name.starts_with("pages-") {
            continue;
        }
        let out = std::process::Command::new("crit")
            .args(["decode", "-i"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{test}: crit cannot decode {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn run_with(test: &str, program: &str, args: &[&str], dump: &[&str], restore: &[&str]) {
    let Some(mut z) = Zdtm::start(test, program, args) else {
        return;
    };
    z.dump(dump);
    crit_decodes(z.images(), test);
    z.restore(restore);
    let verdict = z.go();
    assert_eq!(verdict, "PASS", "{test}");
}

fn run(test: &str, program: &str) {
    run_with(test, program, &[], &[], &[]);
}

/// A dump of `program` with `dump` options that must fail with a log
/// line containing `why`; the program runs on untouched (it then passes
/// its own check without any restore).
fn refused(test: &str, program: &str, args: &[&str], dump: &[&str], why: &str) {
    let Some(z) = Zdtm::start(test, program, args) else {
        return;
    };
    let pid = z.pid().to_string();
    let images = z.new_dir("refused");
    let mut argv = vec!["dump", "-t", &pid];
    argv.extend_from_slice(dump);
    let (ok, log) = z.criu_in(&images, &argv);
    assert!(!ok, "{test}: dump should have failed: {log}");
    assert!(log.contains(why), "{test}: no {why:?} in: {log}");
    let verdict = z.go();
    assert_eq!(verdict, "PASS", "{test}: after the refused dump");
}

#[test]
fn eventfd_counters_and_semaphore_survive() {
    // Kernels whose fdinfo does not show `eventfd-semaphore` (Debian 12's
    // 6.1, in the VMs) give no way to see the flag: that part is skipped.
    let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::SEMAPHORE).unwrap();
    let info = std::fs::read_to_string(format!(
        "/proc/self/fdinfo/{}",
        std::os::fd::AsRawFd::as_raw_fd(&efd)
    ))
    .unwrap();
    let mut args = Vec::new();
    if !info.contains("eventfd-semaphore") {
        common::skip(
            "zdtm-eventfd (EFD_SEMAPHORE only)",
            "this kernel's fdinfo does not show eventfd-semaphore",
        );
        args.push("no-semaphore");
    }
    run_with("zdtm-eventfd", "zdtm_eventfd", &args, &[], &[]);
}

#[test]
fn signalfd_keeps_its_mask_and_delivers() {
    run("zdtm-signalfd", "zdtm_signalfd");
}

#[test]
fn timerfd_keeps_time_interval_and_ticks() {
    run("zdtm-timerfd", "zdtm_timerfd");
}

#[test]
fn epoll_targets_come_back_under_their_fd_numbers() {
    run("zdtm-epoll", "zdtm_epoll");
}

#[test]
fn epoll_with_a_closed_target_is_refused() {
    refused(
        "zdtm-epoll-closed",
        "zdtm_epoll",
        &["closed"],
        &[],
        "closed target still registered",
    );
}

/// pidfds of the process itself and of a child (with a dup and an epoll
/// watching it) name the same processes after restore.
#[test]
fn pidfds_name_their_processes_again() {
    let Some(mut z) = Zdtm::start("zdtm-pidfd", "zdtm_pidfd", &[]) else {
        return;
    };
    let kids = common::descendants(z.pid());
    assert_eq!(kids.len(), 1, "the program forks one child");
    z.dump(&[]);
    // The killed child comes to us (the subreaper): its PID is free once
    // it is reaped.
    common::reap(&kids);
    crit_decodes(z.images(), "zdtm-pidfd");
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// Whether this kernel makes thread pidfds (`PIDFD_THREAD`, Linux 6.9+).
fn pidfd_thread_here() -> bool {
    let tid = rustix::thread::gettid();
    let flags = linux_raw_sys::general::O_EXCL as usize;
    // SAFETY: integer arguments; a new fd is closed at once.
    let ret = unsafe {
        criu_arch::syscall2(
            criu_arch::nr::PIDFD_OPEN,
            tid.as_raw_nonzero().get() as usize,
            flags,
        )
    };
    if ret < 0 {
        return false;
    }
    // SAFETY: the fd just made, owned by nothing else.
    drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ret as i32) });
    true
}

/// A pidfd whose process the restore could not bring back is refused by
/// name, and the task runs on.
#[test]
fn pidfds_of_processes_outside_the_tree_or_dead_or_of_threads_are_refused() {
    for (mode, why) in [
        ("outside", "is a pidfd: its process "),
        ("dead", "is a pidfd: its process has ended and been reaped"),
        ("thread", "is a pidfd: it names a thread (PIDFD_THREAD)"),
    ] {
        let test = format!("zdtm-pidfd-{mode}");
        if mode == "thread" && !pidfd_thread_here() {
            common::skip(&test, "this kernel predates PIDFD_THREAD (Linux 6.9)");
            continue;
        }
        refused(&test, "zdtm_pidfd", &[mode], &[], why);
    }
}

/// Dumped with `--force-irmap` (LXC passes it on every dump): every
/// watch is in the images with the path of the directory it watches, as
/// well as its file handle.
#[test]
fn inotify_watches_keep_their_wds() {
    use criu_core::images::pb;
    use criu_core::images::typed::ImageDir;
    let test = "zdtm-inotify";
    let Some(mut z) = Zdtm::start(test, "zdtm_inotify", &[]) else {
        return;
    };
    z.dump(&["--force-irmap"]);
    crit_decodes(z.images(), test);
    let files: Vec<pb::FileEntry> = ImageDir::new(z.images())
        .read_all(criu_core::images::Kind::Files, 0)
        .unwrap();
    let mut paths: Vec<(u32, String)> = files
        .iter()
        .filter_map(|f| f.ify.as_ref())
        .flat_map(|i| &i.wd)
        .map(|w| (w.wd, w.f_handle.path.clone().unwrap_or_default()))
        .collect();
    paths.sort();
    let dir = z.work().display().to_string();
    let want = vec![(1, format!("{dir}/a")), (3, format!("{dir}/c"))];
    assert_eq!(paths, want, "{test}: the watches' paths");
    z.restore(&[]);
    assert_eq!(z.go(), "PASS", "{test}");
}

#[test]
fn ghost_file_comes_back_unlinked() {
    run("zdtm-ghost", "zdtm_ghost");
}

#[test]
fn ghost_file_whose_path_is_taken_again() {
    run_with("zdtm-ghost-occupied", "zdtm_ghost", &["occupied"], &[], &[]);
}

#[test]
fn ghost_file_over_the_limit_is_refused_then_dumped_with_a_higher_limit() {
    refused(
        "zdtm-ghost-big-refused",
        "zdtm_ghost",
        &["big"],
        &[],
        "size, increase limit",
    );
    run_with(
        "zdtm-ghost-big",
        "zdtm_ghost",
        &["big"],
        &["--ghost-limit", "8M"],
        &[],
    );
}

/// A sparse ghost file of 7 MiB with 48 KiB of data: `--ghost-limit`
/// counts the data (under the default 1 MiB), the image carries only the
/// data (`ghost_file_entry` with `chunks` and `size`, chunk entries for
/// the runs), and after restore the file has its size, data, holes and
/// offset; `--ghost-fiemap` finds the data with FIEMAP instead of
/// SEEK_DATA/SEEK_HOLE, with the same result (CRIU's ghost_holes00..02).
fn ghost_holes(test: &str, dump: &[&str]) {
    use criu_core::images::pb;
    use criu_core::images::typed::ImageDir;
    let Some(mut z) = Zdtm::start(test, "zdtm_ghost_holes", &[]) else {
        return;
    };
    z.dump(dump);
    crit_decodes(z.images(), test);
    let dir = ImageDir::new(z.images());
    let remaps: Vec<pb::RemapFilePathEntry> = dir
        .read_all(criu_core::images::Kind::RemapFpath, 0)
        .unwrap();
    let mut chunked = 0;
    for r in &remaps {
        let img = dir.path(criu_core::images::Kind::GhostFile, u64::from(r.remap_id));
        let len = std::fs::metadata(&img).unwrap().len();
        let mut rd =
            criu_core::images::reader::ImageReader::open(&img, criu_core::images::Kind::GhostFile)
                .unwrap();
        let e: pb::GhostFileEntry = rd.next_message().unwrap().unwrap();
        if e.size == Some(7 << 20) {
            assert_eq!(e.chunks, Some(true), "{test}: {e:?}");
            let want = sparse_data_bytes(z.work());
            assert!(
                len < want + (16 << 10),
                "{test}: {} holds {len} bytes for {want} bytes of data",
                img.display()
            );
            let mut data = 0;
            while let Some(c) = rd.next_message::<pb::GhostChunkEntry>().unwrap() {
                data += c.len;
                rd.payload(c.len).unwrap();
            }
            assert_eq!(data, want, "{test}: bytes of data in the chunks");
            chunked += 1;
        }
    }
    assert_eq!(chunked, 1, "{test}: the sparse ghost among {remaps:?}");
    let log = std::fs::read_to_string(z.images().join("dump.log")).unwrap();
    let no_fiemap = log.contains("the filesystem has no FIEMAP");
    let how = if dump.contains(&"--ghost-fiemap") && !no_fiemap {
        "runs of data found with FIEMAP"
    } else {
        "runs of data found with SEEK_DATA"
    };
    assert!(log.contains(how), "{test}: no {how:?} in the dump log");
    z.restore(&[]);
    assert_eq!(z.go(), "PASS", "{test}");
    if dump.contains(&"--ghost-fiemap") && no_fiemap {
        // The fallback was exercised and restored; FIEMAP itself was not.
        common::skip(test, "the filesystem of the work dir has no FIEMAP");
    }
}

/// The bytes the filesystem of `dir` reports as data in zdtm_ghost_holes'
/// sparse file: its three runs (48 KiB at 1 MiB, 3 MiB and across 5 MiB),
/// each widened to the filesystem's block (`SEEK_DATA`/`SEEK_HOLE` and
/// FIEMAP see whole blocks; CRIU's ghost chunks, and ours, hold what they
/// report). tmpfs's block is the page: 48 KiB with 4 KiB pages, 256 KiB
/// with the 64 KiB pages of ppc64le.
fn sparse_data_bytes(dir: &std::path::Path) -> u64 {
    const MIB: u64 = 1 << 20;
    let runs = [
        (MIB, 16 << 10),
        (3 * MIB, 8 << 10),
        (5 * MIB - (8 << 10), 24 << 10),
    ];
    let block = rustix::fs::statvfs(dir).unwrap().f_bsize.max(1);
    let mut covered: Vec<(u64, u64)> = Vec::new();
    for (off, len) in runs {
        let (s, e) = (off / block * block, (off + len).next_multiple_of(block));
        match covered.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => covered.push((s, e)),
        }
    }
    covered.iter().map(|(s, e)| e - s).sum()
}

#[test]
fn sparse_ghost_file_keeps_its_holes_and_size() {
    ghost_holes("zdtm-ghost-holes", &[]);
}

#[test]
fn sparse_ghost_file_dumped_with_fiemap() {
    ghost_holes("zdtm-ghost-holes-fiemap", &["--ghost-fiemap"]);
}

#[test]
fn file_locks_are_refused_without_file_locks() {
    refused(
        "zdtm-file-locks-refused",
        "zdtm_file_locks",
        &[],
        &[],
        "Some file locks are hold by dumping tasks! You can try --file-locks to dump them.",
    );
}

#[test]
fn file_locks_are_held_again_after_restore() {
    run_with(
        "zdtm-file-locks",
        "zdtm_file_locks",
        &[],
        &["--file-locks"],
        &["--file-locks"],
    );
}

/// The ghost file CRIU 4.2 wrote (fixture `fds`: 6000 bytes, mode 0600,
/// the reg file id 16 remapped to ghost 1) is recreated from its images
/// with its contents, mode and times, and unlinked when done with.
#[test]
fn ghost_file_written_by_criu_is_recreated() {
    use criu_core::images::pb;
    use criu_core::images::typed::ImageDir;
    let fixture = common::fixtures::criu_image_dir("fds");
    let dir = common::TempDir::new("ghost-fixture");
    let dir_images = ImageDir::new(&fixture);
    let remaps: Vec<pb::RemapFilePathEntry> = dir_images
        .read_all(criu_core::images::Kind::RemapFpath, 0)
        .unwrap();
    let target = dir.join("ghost.bin");
    let mut regs = std::collections::HashMap::new();
    regs.insert(
        16,
        pb::RegFileEntry {
            id: 16,
            name: target.display().to_string(),
            ..Default::default()
        },
    );
    let ghosts = criu_core::files::ghost::Ghosts::create(&dir_images, &remaps, &regs).unwrap();
    let p = ghosts.path_of(16).unwrap().to_path_buf();
    assert_eq!(p, target);
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!((m.len(), m.mode()), (6000, 0o100600));
    assert_eq!(m.mtime(), 1795762955);
    drop(ghosts);
    assert!(!p.exists(), "ghost file left behind");
}
