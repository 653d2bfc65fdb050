//! ZDTM-style dump/restore tests of memory: dense and sparse anonymous
//! memory, private and shared file mappings, shared anonymous memory,
//! protections, the heap end (brk), the vDSO and the FPU/vector registers.
//! Each program checks itself after restore (see tests/programs/zdtm/).

mod common;

use std::time::Duration;

use common::zdtm::{TIMEOUT, Zdtm, dump_restore};

/// Dump and restore `program`, then assert that it found its state intact.
fn check(test: &str, program: &str) {
    check_args(test, program, &[]);
}

/// [`check`] with arguments for the program.
fn check_args(test: &str, program: &str, args: &[&str]) {
    if let Some(verdict) = dump_restore(test, program, args) {
        assert_eq!(verdict, "PASS", "{program} {args:?}");
    }
}

#[test]
fn anon_dense_memory_comes_back() {
    check("zdtm-anon-dense", "zdtm_anon_dense");
}

/// Restores zdtm_anon_dense (10 MiB in private anonymous VMAs of 1 MiB or
/// more: the tool copies them in through the task's userfaultfd) with
/// `CRIU_FILL_FAULT` set to `fault`; returns the restore's success, its log
/// and the program's verdict (`None` if the restore failed, after checking
/// that no task was left and that a plain restore then works).
fn dense_restore_with_fill_fault(test: &str, fault: Option<&str>) -> Option<(String, String)> {
    let mut z = Zdtm::start(test, "zdtm_anon_dense", &[])?;
    z.dump(&[]);
    let env: Vec<(&str, &std::ffi::OsStr)> = fault
        .map(|f| ("CRIU_FILL_FAULT", std::ffi::OsStr::new(f)))
        .into_iter()
        .collect();
    let images = z.images().to_path_buf();
    let (ok, log) = common::run_criu(
        &images,
        &["restore", "-d", "--pidfile", "restored.pid"],
        &env,
    );
    if !ok {
        assert_eq!(common::proc_state(z.pid()), None, "task left behind: {log}");
        z.restore(&[]);
        assert_eq!(z.go(), "PASS");
        return Some((log, String::new()));
    }
    z.restored_elsewhere();
    Some((log, z.go()))
}

#[test]
fn anon_dense_memory_is_copied_in_by_the_tool() {
    let Some((log, verdict)) = dense_restore_with_fill_fault("zdtm-anon-dense-fill", None) else {
        return;
    };
    assert_eq!(verdict, "PASS", "{log}");
    assert!(log.contains("copied in by the tool (UFFDIO_COPY)"), "{log}");
}

#[test]
fn anon_dense_memory_is_read_by_the_task_when_the_tool_cannot_copy() {
    let Some((log, verdict)) =
        dense_restore_with_fill_fault("zdtm-anon-dense-fill-take", Some("take"))
    else {
        return;
    };
    assert_eq!(verdict, "PASS", "{log}");
    assert!(log.contains("its pages are read by itself"), "{log}");
    assert!(!log.contains("copied in by the tool"), "{log}");
}

#[test]
fn a_failed_copy_of_memory_fails_the_restore_and_leaves_no_task() {
    let Some((log, verdict)) =
        dense_restore_with_fill_fault("zdtm-anon-dense-fill-copy", Some("copy"))
    else {
        return;
    };
    assert!(
        verdict.is_empty(),
        "the restore went on after a failed copy: {log}"
    );
    assert!(
        log.contains("copying its pages in (UFFDIO_COPY) failed: Operation canceled"),
        "{log}"
    );
}

#[test]
fn anon_growsdown_mapping_still_grows() {
    check("zdtm-anon-growsdown", "zdtm_anon_growsdown");
}

#[test]
fn anon_memory_at_the_edges_of_the_address_space() {
    check("zdtm-anon-placement", "zdtm_anon_placement");
}

#[test]
fn anon_sparse_memory_keeps_its_holes() {
    check("zdtm-anon-sparse", "zdtm_anon_sparse");
}

#[test]
fn file_private_mappings_keep_cow_pages_and_file() {
    check("zdtm-file-private", "zdtm_file_private");
}

#[test]
fn file_deleted_private_mapping_comes_back() {
    check("zdtm-file-deleted", "zdtm_file_deleted");
}

#[test]
fn file_shared_mapping_stays_shared() {
    check("zdtm-file-shared", "zdtm_file_shared");
}

/// A shared mapping of a file opened read-write can be made writable again
/// after restore (the file is reopened with the mode the mapping held it
/// with, `vma_entry.fdflags`), one of a read-only file cannot.
#[test]
fn file_mappings_keep_the_mode_their_file_was_opened_with() {
    check("zdtm-file-map-mode", "zdtm_file_map_mode");
}

#[test]
fn memfd_mapping_and_fd_stay_one_object() {
    check("zdtm-memfd-shared", "zdtm_memfd_shared");
}

/// A memfd can still be `execveat`ed after restore (no descriptor reopened
/// read-write holds it), keeps its flags and positions, and its mappings
/// keep the mode they held it with (CRIU's memfd04/memfd05).
#[test]
fn memfd_can_still_be_executed_and_keeps_modes() {
    check("zdtm-memfd-exec", "zdtm_memfd_exec");
}

#[test]
fn shared_anon_memory_comes_back() {
    check("zdtm-shared-anon", "zdtm_shared_anon");
}

#[test]
fn protections_and_split_vmas_come_back() {
    check("zdtm-protections", "zdtm_protections");
}

#[test]
fn brk_is_restored_and_still_moves() {
    check("zdtm-brk", "zdtm_brk");
}

#[test]
fn vma_layout_is_the_same_after_restore() {
    check("zdtm-vma-layout", "zdtm_vma_layout");
}

#[test]
fn vdso_clocks_work_after_restore() {
    check("zdtm-vdso", "zdtm_vdso");
}

/// A restore that keeps the dumped vDSO as a proxy (forced here, as
/// under another kernel): glibc's pointers into it reach this kernel's
/// vDSO through the jumps; the next dump finds the mark and records the
/// proxy as the vDSO again, and that restores (as a proxy again) too.
#[test]
fn vdso_proxy_forwards_the_clocks_and_is_dumped_again() {
    let Some(mut z) = Zdtm::start("zdtm-vdso-proxy", "zdtm_vdso", &["proxy"]) else {
        return;
    };
    let force = [("CRIU_VDSO_TRAMPOLINES", std::ffi::OsStr::new("1"))];
    let mut images = z.images().to_path_buf();
    for round in ["first", "second"] {
        if round == "second" {
            images = z.new_dir(round);
        }
        let pid = z.pid().to_string();
        let (ok, log) = common::run_criu(&images, &["dump", "-t", &pid], &[]);
        assert!(ok, "{round} dump: {log}");
        if round == "second" {
            assert!(log.contains("proxies the runtime one"), "{log}");
        }
        z.wait_gone();
        let args = ["restore", "-d", "--pidfile", "restored.pid"];
        let (ok, log) = common::run_criu(&images, &args, &force);
        assert!(ok, "{round} restore: {log}");
        assert!(log.contains("becomes a proxy of this kernel's"), "{log}");
        z.restored_elsewhere();
    }
    assert_eq!(z.go(), "PASS");
}

/// Whether the CPU has x86 feature `name` ("avx", "avx512f"); false
/// elsewhere.
fn x86_feature(name: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match name {
            "avx" => std::arch::is_x86_feature_detected!("avx"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        false
    }
}

/// Whether the FPU program cannot run here (it is assembly for x86_64,
/// aarch64, ppc64le and s390x only); says so.
fn no_fpu_program(test: &str) -> bool {
    if cfg!(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "powerpc64",
        target_arch = "s390x"
    )) {
        return false;
    }
    common::skip(test, "zdtm_fpu has no register program for this arch yet");
    true
}

/// Start the FPU program using the `kind` registers, dump and restore it
/// (or only dump it with `--leave-running`, when `leave_running`) and let
/// it compare its registers.
fn fpu(test: &str, kind: &str, leave_running: bool) {
    fpu_threads(test, kind, 1, leave_running);
}

/// [`fpu`] with `threads` threads spinning at once.
fn fpu_threads(test: &str, kind: &str, threads: usize, leave_running: bool) {
    if no_fpu_program(test) {
        return;
    }
    let threads = threads.to_string();
    let Some(mut z) = Zdtm::start(test, "zdtm_fpu", &[kind, &threads]) else {
        return;
    };
    if leave_running {
        z.dump(&["--leave-running"]);
    } else {
        z.dump(&[]);
        z.restore(&[]);
    }
    // The program leaves its register loop from a SIGALRM handler once
    // `go` exists. Its own interval timer sends SIGALRM; so does this test,
    // so that the registers are checked even if the timer was lost.
    std::fs::write(z.work().join("go"), "").unwrap();
    let pid = rustix::process::Pid::from_raw(z.pid()).unwrap();
    let result = z.work().join("result");
    let start = std::time::Instant::now();
    while !result.exists() && start.elapsed() < TIMEOUT {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::ALARM);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(z.go(), "PASS", "{kind} registers");
}

#[test]
fn fpu_sse_registers_survive() {
    if !cfg!(target_arch = "x86_64") {
        return common::skip("fpu_sse_registers_survive", "SSE registers are x86 ones");
    }
    fpu("zdtm-fpu-sse", "sse", false);
}

#[test]
fn fpu_s390x_fp_registers_survive() {
    if !cfg!(target_arch = "s390x") {
        return common::skip(
            "fpu_s390x_fp_registers_survive",
            "f0-f15/FPC are s390x ones",
        );
    }
    fpu("zdtm-fpu-fp", "fp", false);
}

#[test]
fn fpu_simd_registers_survive() {
    if !cfg!(target_arch = "aarch64") {
        return common::skip(
            "fpu_simd_registers_survive",
            "v0-v31/FPCR/FPSR are arm64 ones",
        );
    }
    fpu("zdtm-fpu-simd", "simd", false);
}

#[test]
fn fpu_vsx_registers_survive() {
    if !cfg!(target_arch = "powerpc64") {
        return common::skip(
            "fpu_vsx_registers_survive",
            "VSR0-63/FPSCR/VSCR/VRSAVE are ppc64 ones",
        );
    }
    fpu("zdtm-fpu-vsx", "vsx", false);
}

#[test]
fn fpu_avx_registers_survive() {
    if !x86_feature("avx") {
        return common::skip(
            "fpu_avx_registers_survive",
            "the CPU has no AVX (an x86 extension)",
        );
    }
    fpu("zdtm-fpu-avx", "avx", false);
}

#[test]
fn fpu_avx512_registers_survive() {
    if !x86_feature("avx512f") {
        return common::skip(
            "fpu_avx512_registers_survive",
            "the CPU has no AVX-512 (an x86 extension)",
        );
    }
    fpu("zdtm-fpu-avx512", "avx512", false);
}

#[test]
fn fpu_registers_survive_a_leave_running_dump() {
    // The parasite runs in the task: its registers must be as they were
    // when it goes on.
    // "widest": AVX-512, AVX or SSE on x86_64; v0-v31 on aarch64; VSR0-63
    // on ppc64le; v0-v31 (or f0-f15 without the vector facility) on s390x.
    fpu("zdtm-fpu-leave-running", "widest", true);
}

#[test]
fn vma_layout_is_unchanged_by_a_leave_running_dump() {
    // Nothing of the parasite stays mapped in the task.
    let Some(mut z) = Zdtm::start("zdtm-vma-layout-lr", "zdtm_vma_layout", &[]) else {
        return;
    };
    z.dump(&["--leave-running"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn fpu_registers_of_every_thread_survive() {
    fpu_threads("zdtm-fpu-threads", "widest", 4, false);
}

#[test]
fn fpu_registers_of_every_thread_survive_a_leave_running_dump() {
    fpu_threads("zdtm-fpu-threads-lr", "widest", 4, true);
}

#[test]
fn multi_threaded_dump_kills_and_reaps_every_thread() {
    // A dump without --leave-running kills the task: it must finish (the
    // tracer reaps every killed thread) and leave nothing behind.
    if no_fpu_program("multi_threaded_dump_kills_and_reaps_every_thread") {
        return;
    }
    let Some(mut z) = Zdtm::start("zdtm-fpu-threads-kill", "zdtm_fpu", &["widest", "4"]) else {
        return;
    };
    z.dump(&[]);
    assert!(
        common::proc_state(z.pid()).is_none(),
        "dumped task {} still exists",
        z.pid()
    );
}

/// Whether this kernel has `MAP_DROPPABLE` (Linux 6.11+, 64-bit only).
fn droppable_supported() -> bool {
    use rustix::mm::{MapFlags, ProtFlags};
    let len = rustix::param::page_size();
    // SAFETY: a fresh anonymous mapping, unmapped right away, never touched.
    match unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::DROPPABLE,
        )
    } {
        // SAFETY: the mapping made just above, nothing refers to it.
        Ok(p) => unsafe { rustix::mm::munmap(p, len) }.is_ok(),
        Err(_) => false,
    }
}

/// Advice (wipe-on-fork, don't-fork, don't-dump, huge pages or not, KSM,
/// access patterns), an mlocked region and a droppable mapping come back
/// in a task and its child, and act on a fork after restore (CRIU's
/// maps11 and maps05 extended).
#[test]
fn vma_advice_and_droppable_mappings_come_back() {
    let test = "vma_advice_and_droppable_mappings_come_back";
    let droppable = droppable_supported();
    if !droppable {
        common::skip(test, "this kernel predates MAP_DROPPABLE (Linux 6.11)");
    }
    let args: &[&str] = if droppable { &["droppable"] } else { &[] };
    let Some(mut z) = Zdtm::start("zdtm-vma-advice", "zdtm_vma_advice", args) else {
        return;
    };
    let kids = common::descendants(z.pid());
    assert_eq!(kids.len(), 1, "child 1 before dump: {kids:?}");
    z.dump(&[]);
    common::reap(&kids);
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// Whether `madvise(MADV_GUARD_INSTALL)` takes a page of a shared
/// anonymous mapping (Linux 6.15+: guards in file-backed mappings).
fn shared_guard_supported() -> bool {
    use rustix::mm::{MapFlags, ProtFlags};
    let len = rustix::param::page_size();
    // SAFETY: a fresh shared anonymous mapping, unmapped right away.
    let Ok(p) = (unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
        )
    }) else {
        return false;
    };
    // SAFETY: advice on the page mapped just above.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::MADVISE,
            p as usize,
            len,
            linux_raw_sys::general::MADV_GUARD_INSTALL as usize,
        )
    };
    // SAFETY: the mapping made just above, nothing refers to it.
    let _ = unsafe { rustix::mm::munmap(p, len) };
    ret == 0
}

/// Guard regions (`MADV_GUARD_INSTALL`) are dumped as CRIU 4.2 writes
/// them, `vma_entry`s with only `status = VMA_AREA_GUARD`, `start` and
/// `end`, after the VMAs, one of them crossing two VMAs; after restore
/// the guard pages fault again and the pages around them kept their data,
/// in private and shared anonymous mappings.
#[test]
fn guard_regions_come_back() {
    use criu_core::images::{Kind, pb};
    use criu_core::proc::vma_kind::status::VMA_AREA_GUARD;
    let test = "guard_regions_come_back";
    // Dump finds guards through PAGEMAP_SCAN's PAGE_IS_GUARD (6.14+).
    if !criu_core::sys::pagemap_scan::madv_guard_supported().unwrap_or(false)
        || !criu_core::sys::pagemap_scan::guard_category_supported()
    {
        common::skip(
            test,
            "no guard regions here: PAGEMAP_SCAN lacks PAGE_IS_GUARD (Linux 6.14+)",
        );
        return;
    }
    let mut args = vec!["guard"];
    if shared_guard_supported() {
        args.push("guard-shared");
    } else {
        common::skip(
            test,
            "no guard regions here in shared mappings (Linux 6.15+)",
        );
    }
    let Some(mut z) = Zdtm::start("zdtm-guard-regions", "zdtm_vma_advice", &args) else {
        return;
    };
    let kids = common::descendants(z.pid());
    z.dump(&[]);
    common::reap(&kids);
    let mm: pb::MmEntry = criu_core::images::ImageDir::new(z.images())
        .read_one(Kind::Mm, z.pid() as u64)
        .expect("mm image");
    let page = rustix::param::page_size() as u64;
    let first_guard = mm
        .vmas
        .iter()
        .position(|v| v.status & VMA_AREA_GUARD != 0)
        .expect("no guard entry in the mm image");
    let guards: Vec<u64> = mm.vmas[first_guard..]
        .iter()
        .map(|v| {
            assert_eq!(v.status, VMA_AREA_GUARD, "a VMA after the guards: {v:?}");
            assert_eq!((v.prot, v.flags, v.pgoff, v.shmid), (0, 0, 0, 0), "{v:?}");
            (v.end - v.start) / page
        })
        .collect();
    // Page 1 of the private region, pages 1-2 across two VMAs, page 2 of
    // the shared one.
    let want: &[u64] = if args.len() == 2 { &[1, 2, 1] } else { &[1, 2] };
    assert_eq!(guards, want, "guard runs (pages) in {:?}", mm.vmas);
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}
