//! Restore without a dump: the test writes CRIU images of a tiny task by
//! hand (one page of code, one page of data, registers at the code) and
//! `criu restore` must bring it back with the requested PID, its memory and
//! its registers. The task's code checks the data page and the registers
//! and exits with a known code, which `criu restore` (not detached, so the
//! task's parent) returns as its own exit status.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::Path;
use std::process::Command;

use criu_core::images::kinds::Kind;
use criu_core::images::pb;
use criu_core::images::typed::ImageDir;

const CODE: u64 = 0x7100_0000;
const DATA: u64 = 0x7100_2000;
const PAGE: u64 = 4096;
/// MAP_PRIVATE | MAP_ANONYMOUS.
const PRIVATE_ANON: u32 = 0x22;
/// VMA_AREA_REGULAR | VMA_ANON_PRIVATE.
const ANON_STATUS: u32 = 1 | (1 << 9);

/// Marker in the upper half of ymm0 (restored from the xsave entry).
const YMM_MARK: u64 = 0x5a5a_1234_8765_a5a5;

/// x86_64 code: exit(rbx == 0x1122 && [DATA+8] == 0xabcdef && ymm0[128..192]
/// == YMM_MARK ? 42 : 7). Without AVX the ymm check is left out.
fn code_page(avx: bool) -> Vec<u8> {
    let mut c = vec![
        0xbf, 0x07, 0x00, 0x00, 0x00, // mov edi, 7
        0x48, 0x81, 0xfb, 0x22, 0x11, 0x00, 0x00, // cmp rbx, 0x1122
        0x75, 0x00, // jne exit (patched)
        0x48, 0xb8, // movabs rax, DATA+8
    ];
    let mut jumps = vec![12usize];
    c.extend_from_slice(&(DATA + 8).to_le_bytes());
    c.extend_from_slice(&[
        0x48, 0x81, 0x38, 0xef, 0xcd, 0xab, 0x00, // cmp qword [rax], 0xabcdef
        0x75, 0x00, // jne exit
    ]);
    jumps.push(c.len() - 2);
    if avx {
        c.extend_from_slice(&[0xc4, 0xe3, 0x7d, 0x19, 0xc1, 0x01]); // vextractf128 xmm1, ymm0, 1
        c.extend_from_slice(&[0x66, 0x48, 0x0f, 0x7e, 0xc8]); // movq rax, xmm1
        c.extend_from_slice(&[0x48, 0xb9]); // movabs rcx, YMM_MARK
        c.extend_from_slice(&YMM_MARK.to_le_bytes());
        c.extend_from_slice(&[0x48, 0x39, 0xc8, 0x75, 0x00]); // cmp rax, rcx; jne exit
        jumps.push(c.len() - 2);
    }
    c.extend_from_slice(&[0xbf, 0x2a, 0x00, 0x00, 0x00]); // mov edi, 42
    let exit = c.len();
    c.extend_from_slice(&[0xb8, 0x3c, 0x00, 0x00, 0x00, 0x0f, 0x05]); // exit(edi)
    for j in jumps {
        c[j + 1] = (exit - (j + 2)) as u8;
    }
    c.resize(PAGE as usize, 0xcc);
    c
}

/// A PID no process has; `salt` keeps parallel tests apart.
fn free_pid(salt: u32) -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let span = max / 4;
    let mut pid = max / 2 + ((std::process::id() % 1000) * 7 + salt * 1500) % span;
    while Path::new(&format!("/proc/{pid}")).exists() {
        pid += 1;
    }
    pid
}

fn vma(start: u64, prot: u32) -> pb::VmaEntry {
    pb::VmaEntry {
        start,
        end: start + PAGE,
        pgoff: 0,
        shmid: 0,
        prot,
        flags: PRIVATE_ANON,
        status: ANON_STATUS,
        fd: -1,
        ..Default::default()
    }
}

fn write_images(dir: &ImageDir, pid: u32, data_prot: u32) {
    dir.write_one(
        Kind::Inventory,
        0,
        &pb::InventoryEntry {
            img_version: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let tree = pb::PstreeEntry {
        pid,
        ppid: 0,
        pgid: pid,
        sid: pid,
        threads: vec![pid],
    };
    dir.write_all(Kind::Pstree, 0, &[tree]).unwrap();
    let mm = pb::MmEntry {
        vmas: vec![vma(CODE, 5), vma(DATA, data_prot)],
        ..Default::default()
    };
    dir.write_one(Kind::Mm, pid.into(), &mm).unwrap();

    let mut w = dir.writer(Kind::Pagemap, pid.into()).unwrap();
    w.write_message(&pb::PagemapHead { pages_id: 1 }).unwrap();
    for a in [CODE, DATA] {
        w.write_message(&pb::PagemapEntry {
            vaddr: a,
            compat_nr_pages: 1,
            nr_pages: Some(1),
            ..Default::default()
        })
        .unwrap();
    }
    w.finish().unwrap();
    let avx = std::arch::is_x86_feature_detected!("avx");
    let mut pages = code_page(avx);
    let mut data = vec![0u8; PAGE as usize];
    data[8..16].copy_from_slice(&0xabcdefu64.to_le_bytes());
    pages.extend_from_slice(&data);
    std::fs::write(dir.path(Kind::Pages, 1), pages).unwrap();

    let gp = pb::UserX86RegsEntry {
        ip: CODE,
        sp: DATA + PAGE - 64,
        bx: 0x1122,
        cs: 0x33,
        ss: 0x2b,
        flags: 0x202,
        orig_ax: u64::MAX,
        ..Default::default()
    };
    let mut ymmh = vec![0u32; 64];
    ymmh[0] = YMM_MARK as u32;
    ymmh[1] = (YMM_MARK >> 32) as u32;
    let fp = pb::UserX86FpregsEntry {
        cwd: 0x37f,
        mxcsr: 0x1f80,
        st_space: vec![0; 32],
        xmm_space: vec![0; 64],
        padding: vec![0; 24],
        xsave: avx.then(|| pb::UserX86XsaveEntry {
            xstate_bv: 0x7,
            ymmh_space: ymmh,
            ..Default::default()
        }),
        ..Default::default()
    };
    let core = pb::CoreEntry {
        mtype: 1,
        thread_info: Some(pb::ThreadInfoX86 {
            gpregs: gp,
            fpregs: fp,
            ..Default::default()
        }),
        tc: Some(pb::TaskCoreEntry {
            task_state: 1,
            comm: "synthetic".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    dir.write_one(Kind::Core, pid.into(), &core).unwrap();
}

fn restore(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["restore", "-D"])
        .arg(dir)
        .output()
        .expect("run criu")
}

#[test]
fn synthetic_task_resumes_with_memory_and_registers() {
    if !rustix::process::geteuid().is_root() {
        return common::skip("synthetic_task_resumes", "needs root for clone3 set_tid");
    }
    let tmp = common::TempDir::new("restore-synth");
    let dir = ImageDir::new(tmp.path());
    let pid = free_pid(1);
    write_images(&dir, pid, 3);
    if let Ok(keep) = std::env::var("RESTORE_KEEP_IMAGES") {
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(tmp.path())
            .arg(keep)
            .status();
    }
    let out = restore(tmp.path());
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(42), "criu restore: {log}");
}

#[test]
fn bad_vma_is_rejected_before_any_process_exists() {
    let tmp = common::TempDir::new("restore-badvma");
    let dir = ImageDir::new(tmp.path());
    let pid = free_pid(2);
    write_images(&dir, pid, 3);
    let mut mm: pb::MmEntry = dir.read_one(Kind::Mm, pid.into()).unwrap();
    mm.vmas[1].start = CODE + 10; // unaligned and overlapping
    dir.write_one(Kind::Mm, pid.into(), &mm).unwrap();
    let out = restore(tmp.path());
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains(&format!("mm-{pid}.img")), "{log}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn busy_pid_is_reported_and_nothing_is_left() {
    if !rustix::process::geteuid().is_root() {
        return common::skip("busy_pid_is_reported", "needs root for clone3 set_tid");
    }
    let tmp = common::TempDir::new("restore-busy");
    let dir = ImageDir::new(tmp.path());
    // Our own PID is certainly in use.
    let pid = std::process::id();
    write_images(&dir, pid, 3);
    let out = restore(tmp.path());
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains(&format!("PID {pid} is in use")), "{log}");
}

#[test]
fn restorer_failure_is_reported_and_the_task_is_gone() {
    if !rustix::process::geteuid().is_root() {
        return common::skip(
            "restorer_failure_is_reported",
            "needs root for clone3 set_tid",
        );
    }
    let tmp = common::TempDir::new("restore-fail");
    let dir = ImageDir::new(tmp.path());
    let pid = free_pid(3);
    write_images(&dir, pid, 3);
    // Neither MAP_PRIVATE nor MAP_SHARED: mmap in the restorer says EINVAL.
    let mut mm: pb::MmEntry = dir.read_one(Kind::Mm, pid.into()).unwrap();
    mm.vmas[1].flags = 0x20;
    dir.write_one(Kind::Mm, pid.into(), &mm).unwrap();
    let out = restore(tmp.path());
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("stage map-vmas (item 1 of mm-") && log.contains(".img): Invalid argument"),
        "{log}"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}
