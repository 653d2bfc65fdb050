//! `criu dump -t PID` of a ZDTM-style program (`tests/programs/dump_victim.rs`):
//! with `--leave-running` the program runs on and verifies its own state;
//! the images hold what /proc shows (VMAs, registers, present pages only);
//! a dump without it kills the program; and a failure injected at each step
//! (`CRIU_DUMP_FAULT`) leaves the program running and unharmed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Program, TempDir, become_subreaper, skip, wait_for_file};
use criu_core::dump::FAULT_STEPS;
use criu_core::images::{Kind, pb, read_all, read_one};

const TIMEOUT: Duration = Duration::from_secs(20);

/// This system's page size.
fn page() -> u64 {
    rustix::param::page_size() as u64
}

fn cannot_dump() -> Option<&'static str> {
    if let Some(why) = common::cannot_checkpoint() {
        return Some(why);
    }
    become_subreaper();
    None
}

/// The program counter a dumped core holds (from its arch's thread_info).
fn pc(core: &pb::CoreEntry) -> u64 {
    if cfg!(target_arch = "aarch64") {
        core.ti_aarch64.as_ref().unwrap().gpregs.pc
    } else if cfg!(target_arch = "s390x") {
        core.ti_s390.as_ref().unwrap().gpregs.psw_addr
    } else if cfg!(target_arch = "powerpc64") {
        core.ti_ppc64.as_ref().unwrap().gpregs.nip
    } else {
        core.thread_info.as_ref().unwrap().gpregs.ip
    }
}

struct Victim {
    program: Program,
    pid: i32,
    sparse: u64,
    noacc: u64,
    dir: std::path::PathBuf,
}

impl Victim {
    fn start(dir: &TempDir) -> Victim {
        Victim::start_with(dir, &[])
    }

    fn start_with(dir: &TempDir, extra: &[&str]) -> Victim {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut args = vec![work.to_str().unwrap()];
        args.extend_from_slice(extra);
        let program = Program::spawn("dump_victim", &args, dir.path());
        let ready = wait_for_file(&work.join("ready"), TIMEOUT).expect("victim not ready");
        let f: Vec<&str> = ready.split_whitespace().collect();
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        Victim {
            program,
            pid: f[0].parse().unwrap(),
            sparse: hex(f[1]),
            noacc: hex(f[2]),
            dir: work,
        }
    }

    fn verdict(&self) -> String {
        std::fs::write(self.dir.join("go"), "").unwrap();
        wait_for_file(&self.dir.join("result"), TIMEOUT).unwrap_or_else(|| "no result".into())
    }
}

/// Run `criu dump`; its exit status and log.
fn criu_dump(pid: i32, images: &Path, extra: &[&str], fault: Option<&str>) -> (i32, String) {
    criu_dump_env(pid, images, extra, fault, &[])
}

fn criu_dump_env(
    pid: i32,
    images: &Path,
    extra: &[&str],
    fault: Option<&str>,
    env: &[(&str, &str)],
) -> (i32, String) {
    std::fs::create_dir_all(images).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_criu"));
    cmd.envs(env.iter().copied());
    cmd.args([
        "dump",
        "-t",
        &pid.to_string(),
        "-D",
        images.to_str().unwrap(),
    ])
    .args(["-v4", "-o", "dump.log"])
    .args(extra);
    match fault {
        Some(f) => cmd.env("CRIU_DUMP_FAULT", f),
        None => cmd.env_remove("CRIU_DUMP_FAULT"),
    };
    let out = cmd
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run criu");
    let mut log = std::fs::read_to_string(images.join("dump.log")).unwrap_or_default();
    if !out.status.success() {
        log.push_str(&common::how_criu_ended(&out.status, &out.stderr));
    }
    (out.status.code().unwrap_or(-1), log)
}

#[test]
fn dump_leave_running_images_match_the_task() {
    if let Some(why) = cannot_dump() {
        return skip("dump_leave_running_images_match_the_task", why);
    }
    let dir = TempDir::new("dump-leave-running");
    let victim = Victim::start(&dir);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", victim.pid)).unwrap();
    let images = dir.join("images");
    let (rc, log) = criu_dump(victim.pid, &images, &["--leave-running"], None);
    assert_eq!(rc, 0, "{log}");

    let pid = victim.pid as u64;
    // Same VMAs as /proc (the stack VMA is recorded with its guard page,
    // and vsyscall is listed; compare by end address and start otherwise).
    let mm: pb::MmEntry = read_one(&images.join(format!("mm-{pid}.img")), Kind::Mm).unwrap();
    let proc_vmas: Vec<(u64, u64)> = maps
        .lines()
        .map(|l| {
            let r = l.split_whitespace().next().unwrap();
            let (a, b) = r.split_once('-').unwrap();
            (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
            )
        })
        .collect();
    let img_ends: Vec<u64> = mm.vmas.iter().map(|v| v.end).collect();
    // `[vvar]` and `[vvar_vclock]` (Linux 6.13+) are one vvar VMA in the
    // images, as CRIU records them.
    let proc_ends: Vec<u64> = maps
        .lines()
        .zip(&proc_vmas)
        .filter(|(l, _)| !l.ends_with("[vvar]") || !maps.contains("[vvar_vclock]"))
        .map(|(_, v)| v.1)
        .collect();
    assert_eq!(img_ends, proc_ends, "VMA ends differ");

    // The instruction pointer lies in an executable VMA.
    let core: pb::CoreEntry =
        read_one(&images.join(format!("core-{pid}.img")), Kind::Core).unwrap();
    let ip = pc(&core);
    assert!(
        mm.vmas
            .iter()
            .any(|v| v.prot & 4 != 0 && v.start <= ip && ip < v.end),
        "ip {ip:#x} outside executable VMAs"
    );
    let tc = core.tc.as_ref().unwrap();
    assert_eq!(tc.comm, "dump_victim");
    assert_eq!(tc.blk_sigset, 1 << 33);
    // Entries skip SIGKILL and SIGSTOP, so SIGUSR1 (10) is the 9th.
    let usr1 = &tc.sigactions[8];
    assert_eq!(usr1.mask, 1 << 11);
    let timers = tc.timers.as_ref().unwrap();
    assert_eq!(timers.real.isec, 1000);
    assert_eq!(timers.posix.len(), 1);
    assert_eq!((timers.posix[0].isec, timers.posix[0].clock_id), (2000, 1));
    assert!(timers.posix[0].vsec > 0 && timers.posix[0].vsec <= 2000);
    assert_eq!(tc.rlimits.as_ref().unwrap().rlimits.len(), 16);
    let fs: pb::FsEntry = read_one(&images.join(format!("fs-{pid}.img")), Kind::Fs).unwrap();
    assert_eq!(fs.umask, Some(0o027));

    // Pagemap: the sparse region holds exactly its three touched pages, the
    // no-access region its one page, and the pages file has every page.
    let pm: Vec<pb::PagemapEntry> =
        read_all(&images.join(format!("pagemap-{pid}.img")), Kind::Pagemap).unwrap();
    let pages: Vec<u64> = pm[1..]
        .iter()
        .flat_map(|e| {
            (0..criu_core::images::pagemap::nr_pages(e)).map(move |i| e.vaddr + i * page())
        })
        .collect();
    let in_range = |base: u64, n: u64| -> Vec<u64> {
        pages
            .iter()
            .filter(|&&a| a >= base && a < base + n * page())
            .map(|a| (a - base) / page())
            .collect()
    };
    assert_eq!(in_range(victim.sparse, 64), [0, 5, 17]);
    assert_eq!(in_range(victim.noacc, 4), [1]);
    let size = std::fs::metadata(images.join("pages-1.img")).unwrap().len();
    assert_eq!(size, pages.len() as u64 * page());
    let stats: pb::StatsEntry = read_one(&images.join("stats-dump"), Kind::Stats).unwrap();
    let stats = stats.dump.unwrap();
    assert_eq!(stats.pages_written, pages.len() as u64);
    assert!(stats.pages_scanned >= stats.pages_written);
    assert!(stats.frozen_time > 0);

    // Our crit reads every image.
    let out = Command::new(env!("CARGO_BIN_EXE_crit"))
        .args(["x", images.to_str().unwrap(), "ps"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("dump_victim"));

    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn dump_twice_with_leave_running() {
    if let Some(why) = cannot_dump() {
        return skip("dump_twice_with_leave_running", why);
    }
    let dir = TempDir::new("dump-twice");
    let victim = Victim::start(&dir);
    for i in 0..2 {
        let (rc, log) = criu_dump(victim.pid, &dir.join(&format!("img{i}")), &["-R"], None);
        assert_eq!(rc, 0, "{log}");
    }
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn dump_kills_the_task_by_default() {
    if let Some(why) = cannot_dump() {
        return skip("dump_kills_the_task_by_default", why);
    }
    let dir = TempDir::new("dump-kill");
    let mut victim = Victim::start(&dir);
    let (rc, log) = criu_dump(victim.pid, &dir.join("images"), &[], None);
    assert_eq!(rc, 0, "{log}");
    let status = victim.program.wait_exit(TIMEOUT).expect("task still alive");
    assert!(!status.success());
}

#[test]
fn failed_dumps_leave_the_task_unharmed() {
    if let Some(why) = cannot_dump() {
        return skip("failed_dumps_leave_the_task_unharmed", why);
    }
    let dir = TempDir::new("dump-faults");
    let victim = Victim::start(&dir);
    for step in FAULT_STEPS {
        let (rc, log) = criu_dump(
            victim.pid,
            &dir.join(&format!("img-{step}")),
            &[],
            Some(step),
        );
        assert_eq!(rc, 1, "fault at {step}: {log}");
        assert!(log.contains(&format!("{step:?}")), "fault at {step}: {log}");
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", victim.pid)).unwrap();
        assert!(
            !maps.contains("CRIUMFD"),
            "parasite left after fault at {step}"
        );
        // The temporary PROT_READ of the no-access region is undone.
        let noacc = format!("{:x}-", victim.noacc);
        let line = maps.lines().find(|l| l.starts_with(&noacc)).unwrap();
        assert!(line.contains(" ---p "), "after fault at {step}: {line}");
        let fds = std::fs::read_dir(format!("/proc/{}/fd", victim.pid))
            .unwrap()
            .count();
        assert_eq!(fds, 4, "fds after fault at {step}");
    }
    assert_eq!(victim.verdict(), "PASS\n");
}

/// Whatever fallible call of a dump fails (`CRIU_FAULT_SYSCALL=N`: the
/// Nth ptrace request, syscall run in the task, image creation or write,
/// or page write), the dump fails and leaves the task as it was. Walks N
/// from 1 until a dump gets through, so every such call is covered.
#[test]
fn every_failing_call_leaves_the_task_unharmed() {
    if let Some(why) = cannot_dump() {
        return skip("every_failing_call_leaves_the_task_unharmed", why);
    }
    let dir = TempDir::new("dump-call-faults");
    let victim = Victim::start(&dir);
    let images = dir.join("images");
    let noacc = format!("{:x}-", victim.noacc);
    let mut n = 1u32;
    let mut ignored = Vec::new();
    loop {
        let _ = std::fs::remove_dir_all(&images);
        let (rc, log) = criu_dump_env(
            victim.pid,
            &images,
            &["--leave-running"],
            None,
            &[("CRIU_FAULT_SYSCALL", &n.to_string())],
        );
        let state = common::proc_state(victim.pid);
        assert!(
            matches!(state, Some('S' | 'R')),
            "after a fault at call {n} the task is {state:?}: {log}"
        );
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", victim.pid)).unwrap();
        assert!(!maps.contains("CRIUMFD"), "parasite left after call {n}");
        let line = maps.lines().find(|l| l.starts_with(&noacc)).unwrap();
        assert!(line.contains(" ---p "), "after call {n}: {line}");
        let fds = std::fs::read_dir(format!("/proc/{}/fd", victim.pid))
            .unwrap()
            .count();
        assert_eq!(fds, 4, "fds after a fault at call {n}");
        let injected = log.contains("CRIU_FAULT_SYSCALL");
        if rc == 0 && !injected {
            break;
        }
        if rc == 0 {
            // A dump that gets through a failed call would have lost
            // whatever that call was for.
            ignored.push(n);
        } else {
            assert_eq!(rc, 1, "fault at call {n}: {log}");
            assert!(
                log.contains("Error"),
                "fault at call {n} not reported: {log}"
            );
        }
        n += 1;
        assert!(n < 5000, "the dump never got through");
    }
    eprintln!("{} fallible calls, each failed once", n - 1);
    assert!(
        ignored.is_empty(),
        "dumps went on past failed calls {ignored:?}"
    );
    assert!(n > 20, "only {} calls were counted", n - 1);
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn dump_of_more_memory_than_one_page_pipe() {
    if let Some(why) = cannot_dump() {
        return skip("dump_of_more_memory_than_one_page_pipe", why);
    }
    let dir = TempDir::new("dump-big");
    let victim = Victim::start_with(&dir, &["big"]);
    let images = dir.join("images");
    let (rc, log) = criu_dump(victim.pid, &images, &["--leave-running"], None);
    assert_eq!(rc, 0, "{log}");
    let pm: Vec<pb::PagemapEntry> = read_all(
        &images.join(format!("pagemap-{}.img", victim.pid)),
        Kind::Pagemap,
    )
    .unwrap();
    let pages: u64 = pm[1..]
        .iter()
        .map(criu_core::images::pagemap::nr_pages)
        .sum();
    assert!(pages >= (48 << 20) / page(), "only {pages} pages");
    let size = std::fs::metadata(images.join("pages-1.img")).unwrap().len();
    assert_eq!(size, pages * page());
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn pending_signals_are_dumped() {
    if let Some(why) = cannot_dump() {
        return skip("pending_signals_are_dumped", why);
    }
    let dir = TempDir::new("dump-sigpending");
    let victim = Victim::start(&dir);
    // SIGRTMIN+2 is blocked by the victim: two stay queued, process-wide.
    for _ in 0..2 {
        // rustix names only the classic signals: the shell's kill by PID.
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -34 {}", victim.pid)])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let images = dir.join("images");
    let (rc, log) = criu_dump(victim.pid, &images, &["--leave-running"], None);
    assert_eq!(rc, 0, "{log}");
    let core: pb::CoreEntry =
        read_one(&images.join(format!("core-{}.img", victim.pid)), Kind::Core).unwrap();
    let shared = &core
        .tc
        .as_ref()
        .unwrap()
        .signals_s
        .as_ref()
        .unwrap()
        .signals;
    assert_eq!(shared.len(), 2);
    for s in shared {
        assert_eq!(s.siginfo.len(), 128);
        assert_eq!(i32::from_ne_bytes(s.siginfo[..4].try_into().unwrap()), 34);
    }
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn images_decode_with_criu_crit_if_installed() {
    if let Some(why) = cannot_dump() {
        return skip("images_decode_with_criu_crit_if_installed", why);
    }
    let crit = Path::new("/usr/bin/crit");
    if !crit.exists() {
        return skip(
            "images_decode_with_criu_crit_if_installed",
            "CRIU's crit is not installed (Debian package criu)",
        );
    }
    let dir = TempDir::new("dump-crit");
    // The shared mode holds the most kinds of image (shmem pagemaps, memfd).
    let victim = Victim::start_with(&dir, &["shared"]);
    let images = dir.join("images");
    let (rc, log) = criu_dump(victim.pid, &images, &["-R"], None);
    assert_eq!(rc, 0, "{log}");
    let crit_out = |args: &[&str]| {
        let out = Command::new(crit).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "crit {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut decoded = Vec::new();
    for entry in std::fs::read_dir(&images).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Every image but the raw pages (stats-dump has no .img suffix).
        if !(name.ends_with(".img") || name == "stats-dump") || name.starts_with("pages-") {
            continue;
        }
        let json = crit_out(&["decode", "-i", path.to_str().unwrap()]);
        assert!(json.contains("\"magic\""), "crit decode {name}: {json}");
        decoded.push(
            name.split('-')
                .next()
                .unwrap()
                .trim_end_matches(".img")
                .to_string(),
        );
    }
    decoded.sort();
    decoded.dedup();
    for kind in [
        "core",
        "fdinfo",
        "files",
        "fs",
        "ids",
        "inventory",
        "memfd",
        "mm",
        "pagemap",
        "pstree",
        "stats",
    ] {
        assert!(
            decoded.iter().any(|d| d == kind),
            "no {kind} image: {decoded:?}"
        );
    }
    // CRIU's crit also walks the images as a whole: the tree, the memory
    // map and the fds, with the values the task has.
    let dir_arg = images.to_str().unwrap();
    let pid = victim.pid.to_string();
    let ps = crit_out(&["x", dir_arg, "ps"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(&pid) && l.contains("dump_victim")),
        "{ps}"
    );
    let mems = crit_out(&["x", dir_arg, "mems"]);
    assert!(
        mems.contains("[vdso]") && mems.contains("libc.so.6"),
        "{mems}"
    );
    let fds = crit_out(&["x", dir_arg, "fds"]);
    let data = dir.join("work").join("data");
    assert!(fds.contains(data.to_str().unwrap()), "{fds}");
    assert!(fds.contains("/dev/null"), "{fds}");
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn shared_memory_is_dumped_into_shmem_images() {
    if let Some(why) = cannot_dump() {
        return skip("shared_memory_is_dumped_into_shmem_images", why);
    }
    let dir = TempDir::new("dump-shared");
    let victim = Victim::start_with(&dir, &["shared"]);
    let images = dir.join("images");
    let (rc, log) = criu_dump(victim.pid, &images, &["--leave-running"], None);
    assert_eq!(rc, 0, "{log}");
    let mm: pb::MmEntry =
        read_one(&images.join(format!("mm-{}.img", victim.pid)), Kind::Mm).unwrap();
    const ANON_SHARED: u32 = 1 << 8;
    const MEMFD: u32 = 1 << 14;
    let anon = mm
        .vmas
        .iter()
        .find(|v| v.status & ANON_SHARED != 0)
        .expect("a shared anonymous VMA");
    assert_eq!(anon.status, 1 | ANON_SHARED);
    assert_eq!(anon.flags, 0x21);
    // Pages 0, 3-4 and 11 of 16: three runs, offsets in the object.
    let pm: Vec<pb::PagemapEntry> = read_all(
        &images.join(format!("pagemap-shmem-{}.img", anon.shmid)),
        Kind::ShmemPagemap,
    )
    .unwrap();
    let runs: Vec<(u64, u64)> = pm
        .iter()
        .skip(1)
        .map(|e| (e.vaddr, criu_core::images::pagemap::nr_pages(e)))
        .collect();
    assert_eq!(runs, [(0, 1), (3 * page(), 2), (11 * page(), 1)]);
    let memfd = mm
        .vmas
        .iter()
        .find(|v| v.status & MEMFD != 0)
        .expect("a memfd VMA");
    let files: Vec<pb::FileEntry> = read_all(&images.join("files.img"), Kind::Files).unwrap();
    let file = files
        .iter()
        .find(|f| u64::from(f.id) == memfd.shmid)
        .unwrap();
    let mf = file.memfd.as_ref().expect("a MEMFD file entry");
    let inodes: Vec<pb::MemfdInodeEntry> =
        read_all(&images.join("memfd.img"), Kind::MemfdInode).unwrap();
    assert_eq!(inodes.len(), 2, "{inodes:?}");
    let ino = inodes.iter().find(|i| i.name == "pattern").unwrap();
    assert_eq!(u64::from(mf.inode_id), ino.inode_id);
    assert_eq!((ino.size, ino.seals), (8 * page(), 0x6));
    let pm: Vec<pb::PagemapEntry> = read_all(
        &images.join(format!("pagemap-shmem-{}.img", ino.shmid)),
        Kind::ShmemPagemap,
    )
    .unwrap();
    assert_eq!(pm.len(), 3, "{pm:?}");
    // The memfd only open as an fd: a MEMFD fdinfo with its position, and
    // its pages 0-1 and 3 (the last one partial).
    let open = inodes.iter().find(|i| i.name == "openfd").unwrap();
    assert_eq!(open.size, 3 * page() + 10);
    let fdinfo: Vec<pb::FdinfoEntry> =
        read_all(&images.join("fdinfo-2.img"), Kind::Fdinfo).unwrap();
    let fi = fdinfo
        .iter()
        .find(|f| f.r#type == pb::FdTypes::Memfd as i32)
        .expect("a MEMFD fd");
    let f = files.iter().find(|f| f.id == fi.id).unwrap();
    let m = f.memfd.as_ref().unwrap();
    assert_eq!((u64::from(m.inode_id), m.pos), (open.inode_id, 1234));
    let pm: Vec<pb::PagemapEntry> = read_all(
        &images.join(format!("pagemap-shmem-{}.img", open.shmid)),
        Kind::ShmemPagemap,
    )
    .unwrap();
    let runs: Vec<(u64, u64)> = pm
        .iter()
        .skip(1)
        .map(|e| (e.vaddr, criu_core::images::pagemap::nr_pages(e)))
        .collect();
    // 5000 bytes written at the start (two 4 KiB pages, one 64 KiB page),
    // the tail at page 3.
    assert_eq!(runs, [(0, 5000u64.div_ceil(page())), (3 * page(), 1)]);
    // The task, left running, still finds its holes unfilled.
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn stopped_task_is_dumped_stopped_and_stays_stopped() {
    if let Some(why) = cannot_dump() {
        return skip("stopped_task_is_dumped_stopped_and_stays_stopped", why);
    }
    let dir = TempDir::new("dump-stopped");
    let victim = Victim::start(&dir);
    victim.program.signal(rustix::process::Signal::STOP);
    assert!(common::wait_until(TIMEOUT, || {
        common::proc_state(victim.pid) == Some('T')
    }));
    let images = dir.join("images");
    let (rc, log) = criu_dump(victim.pid, &images, &["-R"], None);
    assert_eq!(rc, 0, "{log}");
    let core: pb::CoreEntry =
        read_one(&images.join(format!("core-{}.img", victim.pid)), Kind::Core).unwrap();
    // TASK_STOPPED.
    assert_eq!(core.tc.as_ref().unwrap().task_state, 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(common::proc_state(victim.pid), Some('T'));
    victim.program.signal(rustix::process::Signal::CONT);
    assert_eq!(victim.verdict(), "PASS\n");
}

/// Page numbers (from `base`, `n` pages) present in a pagemap image.
fn pages_in(images: &Path, pid: i32, base: u64, n: u64) -> Vec<u64> {
    let pm: Vec<pb::PagemapEntry> =
        read_all(&images.join(format!("pagemap-{pid}.img")), Kind::Pagemap).unwrap();
    pm[1..]
        .iter()
        .flat_map(|e| {
            (0..criu_core::images::pagemap::nr_pages(e)).map(move |i| e.vaddr + i * page())
        })
        .filter(|&a| a >= base && a < base + n * page())
        .map(|a| (a - base) / page())
        .collect()
}

#[test]
fn raw_pagemap_fallback_finds_the_same_pages() {
    if let Some(why) = cannot_dump() {
        return skip("raw_pagemap_fallback_finds_the_same_pages", why);
    }
    let dir = TempDir::new("dump-raw-pagemap");
    let victim = Victim::start(&dir);
    let images = dir.join("images");
    let env = [("CRIU_NO_PAGEMAP_SCAN", "1")];
    let (rc, log) = criu_dump_env(victim.pid, &images, &["-R"], None, &env);
    assert_eq!(rc, 0, "{log}");
    assert_eq!(pages_in(&images, victim.pid, victim.sparse, 64), [0, 5, 17]);
    assert_eq!(pages_in(&images, victim.pid, victim.noacc, 4), [1]);
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn multi_threaded_task_is_dumped_with_every_thread() {
    if let Some(why) = cannot_dump() {
        return skip("multi_threaded_task_is_dumped_with_every_thread", why);
    }
    let dir = TempDir::new("dump-threads");
    let victim = Victim::start_with(&dir, &["threads"]);
    let images = dir.join("images");
    let (rc, log) = criu_dump(victim.pid, &images, &["-R"], None);
    assert_eq!(rc, 0, "{log}");
    let tree: pb::PstreeEntry = read_one(&images.join("pstree.img"), Kind::Pstree).unwrap();
    assert_eq!(tree.threads.len(), 3, "{tree:?}");
    assert_eq!(tree.threads[0], victim.pid as u32);
    let mut masks = Vec::new();
    for &tid in &tree.threads[1..] {
        let core: pb::CoreEntry =
            read_one(&images.join(format!("core-{tid}.img")), Kind::Core).unwrap();
        assert!(core.tc.is_none());
        let tc = core.thread_core.clone().unwrap();
        assert!(tc.creds.is_some());
        masks.push(tc.blk_sigset.unwrap());
        assert_ne!(pc(&core), 0);
    }
    masks.sort_unstable();
    assert_eq!(masks, [1 << 33, (1 << 33) | (1 << 11)]);
    // And a failure with threads leaves it unharmed too.
    let (rc, log) = criu_dump(victim.pid, &dir.join("img2"), &[], Some("pages"));
    assert_eq!(rc, 1, "{log}");
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn unsupported_fd_is_refused_and_task_unharmed() {
    if let Some(why) = cannot_dump() {
        return skip("unsupported_fd_is_refused_and_task_unharmed", why);
    }
    let dir = TempDir::new("dump-netlink");
    let victim = Victim::start_with(&dir, &["netlink"]);
    let (rc, log) = criu_dump(victim.pid, &dir.join("images"), &[], None);
    assert_eq!(rc, 1, "{log}");
    assert!(
        log.contains(&format!(
            "of task {} is a netlink socket: NETLINK_USERSOCK of type SOCK_DGRAM, which cannot \
             be dumped yet",
            victim.pid
        )) && log.contains("Dumping FAILED: fd "),
        "{log}"
    );
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn leave_stopped_keeps_the_task_stopped() {
    if let Some(why) = cannot_dump() {
        return skip("leave_stopped_keeps_the_task_stopped", why);
    }
    let dir = TempDir::new("dump-leave-stopped");
    let victim = Victim::start(&dir);
    let (rc, log) = criu_dump(victim.pid, &dir.join("images"), &["--leave-stopped"], None);
    assert_eq!(rc, 0, "{log}");
    assert!(common::wait_until(TIMEOUT, || {
        common::proc_state(victim.pid) == Some('T')
    }));
    victim.program.signal(rustix::process::Signal::CONT);
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn alternate_signal_stack_survives_and_is_dumped() {
    if let Some(why) = cannot_dump() {
        return skip("alternate_signal_stack_survives_and_is_dumped", why);
    }
    let dir = TempDir::new("dump-altstack");
    let victim = Victim::start_with(&dir, &["altstack"]);
    let images = dir.join("images");
    let (rc, log) = criu_dump(victim.pid, &images, &["-R"], None);
    assert_eq!(rc, 0, "{log}");
    let core: pb::CoreEntry =
        read_one(&images.join(format!("core-{}.img", victim.pid)), Kind::Core).unwrap();
    let sas = core.thread_core.unwrap().sas.unwrap();
    assert_eq!((sas.ss_size, sas.ss_flags), (64 * 1024, 0));
    assert_ne!(sas.ss_sp, 0);
    assert_eq!(victim.verdict(), "PASS\n");
}

/// Images are private: under umask 022 every file written into the images
/// directory (images, pages, stats, log) is 0600, a symlink planted under an
/// image's name is replaced rather than followed, and a directory other
/// users can write to is refused before the task is touched.
#[test]
fn images_are_private_and_never_follow_planted_links() {
    if let Some(why) = cannot_dump() {
        return skip("images_are_private_and_never_follow_planted_links", why);
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("dump-private");
    let victim = Victim::start(&dir);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::set_permissions(&images, std::fs::Permissions::from_mode(0o755)).unwrap();
    let outside = dir.join("precious");
    std::fs::write(&outside, "precious\n").unwrap();
    std::os::unix::fs::symlink(&outside, images.join("inventory.img")).unwrap();
    std::os::unix::fs::symlink(&outside, images.join("pages-1.img")).unwrap();

    let criu = env!("CARGO_BIN_EXE_criu");
    let script = format!(
        "umask 022; exec {criu} dump -t {} -D {} -R -v4 -o dump.log",
        victim.pid,
        images.display()
    );
    let status = Command::new("sh").args(["-c", &script]).status().unwrap();
    let log = std::fs::read_to_string(images.join("dump.log")).unwrap_or_default();
    assert!(status.success(), "{log}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
    let mut seen = 0;
    for entry in std::fs::read_dir(&images).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        assert!(meta.is_file(), "{:?} is not a regular file", entry.path());
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{:?}",
            entry.path()
        );
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} files written");

    // A directory others can write to is refused; the task runs on.
    let open = dir.join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(criu)
        .args(["dump", "-t", &victim.pid.to_string(), "-D"])
        .arg(&open)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("writable by other users"), "{err}");
    assert!(!open.join("inventory.img").exists());
    assert_eq!(victim.verdict(), "PASS\n");
}
