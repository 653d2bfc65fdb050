//! Infecting a separate running process with the parasite and leaving it
//! unharmed: the victim (`tests/programs/victim_loop.rs`) checks its own
//! registers, memory, signal mask, code, fds and mappings afterwards and
//! writes PASS or FAIL.
//!
//! These need ptrace, which qemu-user lacks (there each test says SKIPPED
//! and passes); they run on all four arches (the foreign ones in the VMs,
//! `tests/vm/run`).

mod common;

use std::mem::offset_of;
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    Program, TempDir, become_subreaper, proc_state, proc_syscall, skip, wait_for_file, wait_until,
};
use criu_core::blob::parasite_abi::{CMD_PING, PING_MESSAGE, PING_VALUES, PingArgs};
use criu_core::blob::{Blob, PARASITE};
use criu_core::infect::{self, InfectError, Parasite, Seized, TaskState};
use criu_core::sys::ptrace;
use rustix::process::{Resource, Signal};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const RESULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Syscall numbers `nanosleep` may be issued as (nanosleep,
/// clock_nanosleep).
const NANOSLEEP_NRS: [i64; 2] = [
    criu_arch::nr::NANOSLEEP as i64,
    criu_arch::nr::CLOCK_NANOSLEEP as i64,
];
/// Where the vector registers are in the extended register set: XMM0-15
/// at byte 160 of x86_64's XSAVE area, V0-V31 at the start of arm64's
/// `user_fpsimd_state`, FPR0-31 at the start of ppc64's FP set, F0-F15
/// after the FPC word in s390x's `s390_fp_regs`.
#[cfg(target_arch = "x86_64")]
const VECTOR_BYTES: std::ops::Range<usize> = 160..416;
#[cfg(target_arch = "powerpc64")]
const VECTOR_BYTES: std::ops::Range<usize> = 0..256;
#[cfg(target_arch = "s390x")]
const VECTOR_BYTES: std::ops::Range<usize> = 8..136;
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
const VECTOR_BYTES: std::ops::Range<usize> = 0..512;
/// `-ERESTART_RESTARTBLOCK`: what an interrupted nanosleep reports.
const ERESTART_RESTARTBLOCK: i64 = -516;

/// Why infection cannot be tested here, if it cannot. Probed once: seize
/// and release a sleeping victim.
fn cannot_infect() -> Option<&'static str> {
    static WHY: OnceLock<Option<&'static str>> = OnceLock::new();
    *WHY.get_or_init(|| {
        if let Some(why) = common::cannot_ptrace() {
            return Some(why);
        }
        become_subreaper();
        let dir = TempDir::new("infect-probe");
        let victim = Victim::start(&dir, &["sleep", "60000"]);
        match Seized::seize(victim.pid()) {
            Ok(task) => task.release().err().map(|_| "ptrace detach fails here"),
            Err(InfectError::Seize { source, .. })
                if source == rustix::io::Errno::NOSYS || source == rustix::io::Errno::IO =>
            {
                Some("ptrace is not available (qemu-user?)")
            }
            Err(InfectError::Seize { source, .. }) if source == rustix::io::Errno::PERM => {
                Some("ptrace is not permitted here")
            }
            Err(_) => None,
        }
    })
}

macro_rules! require_infect {
    ($name:literal) => {
        if let Some(why) = cannot_infect() {
            skip($name, why);
            return;
        }
    };
}

/// A started victim that has reported ready.
struct Victim {
    program: Program,
    dir: std::path::PathBuf,
}

impl Victim {
    fn start(dir: &TempDir, args: &[&str]) -> Victim {
        let path = dir.path().to_str().expect("utf-8 temp dir");
        let mut all = vec![path];
        all.extend_from_slice(args);
        let program = Program::spawn("victim_loop", &all, dir.path());
        wait_for_file(&dir.join("ready"), READY_TIMEOUT).expect("victim did not get ready");
        Victim {
            program,
            dir: dir.path().to_path_buf(),
        }
    }

    fn pid(&self) -> i32 {
        self.program.pid()
    }

    /// Let a `loop` victim check itself.
    fn go(&self) {
        std::fs::write(self.dir.join("go"), "").expect("write go");
    }

    fn verdict(&self) -> String {
        wait_for_file(&self.dir.join("result"), RESULT_TIMEOUT)
            .unwrap_or_else(|| "no result".into())
    }

    /// What the victim wrote to its stdout (fd 1), where PING writes.
    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("victim_loop.out")).unwrap_or_default()
    }
}

/// A PING argument block as bytes (native layout of `PingArgs`).
fn ping_args(fd: i32, index: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; size_of::<PingArgs>()];
    let at = offset_of!(PingArgs, fd);
    bytes[at..at + 4].copy_from_slice(&fd.to_ne_bytes());
    let at = offset_of!(PingArgs, index);
    bytes[at..at + 4].copy_from_slice(&index.to_ne_bytes());
    bytes
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Run PING (message to fd 1) in an infected task and check its answers.
fn ping(parasite: &mut Parasite<'_>, index: u32, expected_count: i64) {
    let args = ping_args(1, index);
    parasite.args_mut()[..args.len()].copy_from_slice(&args);
    let ret = parasite.call(CMD_PING).expect("PING call");
    assert_eq!(ret as u64, PING_VALUES[index as usize], "PING return value");
    let out = parasite.args();
    assert_eq!(
        read_i64(out, offset_of!(PingArgs, written)),
        PING_MESSAGE.len() as i64,
        "PING write result"
    );
    assert_eq!(
        read_i64(out, offset_of!(PingArgs, count)),
        expected_count,
        "PING count"
    );
}

#[test]
fn ping_running_victim_and_it_runs_on() {
    require_infect!("ping_running_victim_and_it_runs_on");
    let dir = TempDir::new("infect-running");
    let victim = Victim::start(&dir, &["loop"]);

    // Three separate infections through the one-shot helper.
    for index in 0..3u32 {
        let (ret, out) =
            infect::run_parasite_once(victim.pid(), &PARASITE, CMD_PING, &ping_args(1, index))
                .expect("run_parasite_once");
        assert_eq!(ret as u64, PING_VALUES[index as usize]);
        // A fresh area each time: the blob's .bss counter starts over.
        assert_eq!(read_i64(&out, offset_of!(PingArgs, count)), 1);
    }
    // One infection, two calls: the blob keeps its .bss between calls.
    let mut task = Seized::seize(victim.pid()).expect("seize");
    assert_eq!(task.state(), TaskState::Running);
    let mut parasite = Parasite::infect(&mut task, &PARASITE, 64).expect("infect");
    // The task sees the area W^X: code read+exec, the rest read+write.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", victim.pid())).unwrap();
    let perms: Vec<&str> = maps
        .lines()
        .filter(|l| l.contains("memfd:CRIUMFD"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(perms, ["r-xs", "rw-s"], "{maps}");
    ping(&mut parasite, 2, 1);
    ping(&mut parasite, 0, 2);
    parasite.cure().expect("cure");
    task.release().expect("release");

    assert_eq!(
        victim.stdout(),
        String::from_utf8_lossy(PING_MESSAGE).repeat(5)
    );
    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn sleeping_victim_keeps_its_sleep() {
    require_infect!("sleeping_victim_keeps_its_sleep");
    let dir = TempDir::new("infect-sleep");
    let victim = Victim::start(&dir, &["sleep", "1500"]);
    assert!(
        wait_until(Duration::from_secs(5), || proc_syscall(victim.pid())
            .is_some_and(|nr| NANOSLEEP_NRS.contains(&nr))),
        "victim never blocked in nanosleep"
    );
    std::thread::sleep(Duration::from_millis(200));

    let mut task = Seized::seize(victim.pid()).expect("seize");
    // Interrupted inside nanosleep: the kernel must restart it on resume.
    assert!(NANOSLEEP_NRS.contains(&task.regs().syscall_nr()));
    // x86_64, ppc64 and s390x show the restart code; arm64 has already
    // rewound the `svc` (x0 = the first argument again) before the stop.
    if cfg!(any(
        target_arch = "x86_64",
        target_arch = "powerpc64",
        target_arch = "s390x"
    )) {
        assert_eq!(task.regs().syscall_result(), ERESTART_RESTARTBLOCK);
    }
    let mut parasite = Parasite::infect(&mut task, &PARASITE, 64).expect("infect");
    ping(&mut parasite, 1, 1);
    parasite.cure().expect("cure");
    task.release().expect("release");

    // PASS means: nanosleep returned 0 (no EINTR) after the full 1.5 s.
    assert_eq!(victim.verdict(), "PASS\n");
    assert_eq!(victim.stdout(), String::from_utf8_lossy(PING_MESSAGE));
}

#[test]
fn stopped_victim_stays_stopped() {
    require_infect!("stopped_victim_stays_stopped");
    let dir = TempDir::new("infect-stopped");
    let victim = Victim::start(&dir, &["loop"]);
    victim.program.signal(Signal::STOP);
    assert!(wait_until(Duration::from_secs(5), || {
        proc_state(victim.pid()) == Some('T')
    }));

    let mut task = Seized::seize(victim.pid()).expect("seize");
    assert_eq!(task.state(), TaskState::Stopped(Signal::STOP.as_raw()));
    let mut parasite = Parasite::infect(&mut task, &PARASITE, 64).expect("infect");
    ping(&mut parasite, 0, 1);
    parasite.cure().expect("cure");
    task.release().expect("release");

    // Still stopped a while later, even though it may check itself now.
    victim.go();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(proc_state(victim.pid()), Some('T'));
    assert!(!dir.join("result").exists(), "a stopped victim ran");
    victim.program.signal(Signal::CONT);
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn clobbered_registers_are_restored_on_release() {
    require_infect!("clobbered_registers_are_restored_on_release");
    let dir = TempDir::new("infect-clobber");
    let victim = Victim::start(&dir, &["loop"]);
    std::thread::sleep(Duration::from_millis(50));

    let task = Seized::seize(victim.pid()).expect("seize");
    let pid = rustix::process::Pid::from_raw(task.pid()).expect("pid");
    // Scribble over the argument/return registers and the FP/vector state
    // (the vector registers, see VECTOR_BYTES).
    let mut regs = *task.regs();
    regs.set_syscall(0xdead, [0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666]);
    ptrace::set_gp_regs(pid, &regs).expect("set regs");
    let mut ext = task.ext_regs().clone();
    for b in &mut ext.bytes[VECTOR_BYTES] {
        *b ^= 0xa5;
    }
    ptrace::set_regset(pid, ext.note, &ext.bytes).expect("set fp regs");
    ptrace::set_sigmask(pid, 0).expect("set sigmask");
    task.release().expect("release");

    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

/// A blob made of the given bytes, for failure tests.
fn raw_blob(bytes: &'static [u8]) -> Blob {
    Blob {
        name: "test",
        bytes,
        size: bytes.len(),
        data_offset: bytes.len(),
        max_page_size: 4096,
        relocs: &[],
        symbols: &[],
    }
}

#[test]
fn faulting_parasite_leaves_victim_unharmed() {
    require_infect!("faulting_parasite_leaves_victim_unharmed");
    let dir = TempDir::new("infect-fault");
    let victim = Victim::start(&dir, &["loop"]);
    // All-zero code faults on every arch (x86: `add [rax], al` with rax = 0;
    // aarch64: `udf`; ppc64: an illegal instruction; s390x: the invalid
    // opcode 0x00).
    static ZEROS: [u8; 64] = [0; 64];
    let blob = raw_blob(&ZEROS);

    let mut task = Seized::seize(victim.pid()).expect("seize");
    let mut parasite = Parasite::infect(&mut task, &blob, 64).expect("infect");
    let err = parasite.call(7).expect_err("zeros must fault");
    assert!(matches!(err, InfectError::Fault { .. }), "{err}");
    // The task is still usable after the failed call.
    parasite.cure().expect("cure");
    let parasite = Parasite::infect(&mut task, &PARASITE, 64).expect("infect again");
    drop(parasite);
    task.release().expect("release");

    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn trap_in_the_wrong_place_is_reported_and_undone() {
    require_infect!("trap_in_the_wrong_place_is_reported_and_undone");
    let dir = TempDir::new("infect-wrongtrap");
    let victim = Victim::start(&dir, &["loop"]);
    let blob = raw_blob(criu_arch::TRAP_INSN);

    let mut task = Seized::seize(victim.pid()).expect("seize");
    let mut parasite = Parasite::infect(&mut task, &blob, 64).expect("infect");
    let err = parasite.call(7).expect_err("trap at entry");
    assert!(matches!(err, InfectError::WrongTrap { .. }), "{err}");
    // Dropping the handles instead of cure/release must undo just the same.
    drop(parasite);
    drop(task);

    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn pending_sigtrap_is_refused() {
    require_infect!("pending_sigtrap_is_refused");
    let dir = TempDir::new("infect-sigtrap");
    let victim = Victim::start(&dir, &["loop", "block-trap"]);
    victim.program.signal(Signal::TRAP);
    let err = Seized::seize(victim.pid()).expect_err("pending SIGTRAP");
    assert!(matches!(err, InfectError::PendingSigtrap { .. }), "{err}");
    // Released again: not traced, still running.
    let status = std::fs::read_to_string(format!("/proc/{}/status", victim.pid())).unwrap();
    assert!(status.contains("TracerPid:\t0\n"), "{status}");
    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn zombie_is_refused() {
    require_infect!("zombie_is_refused");
    let dir = TempDir::new("infect-zombie");
    let victim = Victim::start(&dir, &["loop"]);
    victim.program.signal(Signal::KILL);
    // Not reaped yet: a zombie.
    assert!(wait_until(Duration::from_secs(5), || {
        proc_state(victim.pid()) == Some('Z')
    }));
    let err = Seized::seize(victim.pid()).expect_err("zombie");
    assert!(matches!(err, InfectError::Dead { .. }), "{err}");
}

#[test]
fn failed_area_mapping_leaves_nothing_behind() {
    require_infect!("failed_area_mapping_leaves_nothing_behind");
    let dir = TempDir::new("infect-nomap");
    let victim = Victim::start(&dir, &["loop"]);

    let mut task = Seized::seize(victim.pid()).expect("seize");
    // 1 PiB of arguments: the memfd is created (and sized, sparse) but the
    // task cannot map it (more than the address space mmap hands out
    // without a hint: 128 TiB on x86_64, 256 TiB on arm64); the memfd must
    // be closed in the task again. s390x's mmap hands out up to 16 EiB
    // (its page tables grow on demand), more than a memfd can be sized
    // to, so there the victim's address-space limit is lowered to 1 TiB
    // for the attempt: its mmap fails with ENOMEM all the same.
    let lowered = cfg!(target_arch = "s390x").then(|| {
        let pid = rustix::process::Pid::from_raw(victim.pid()).expect("pid");
        let limit = rustix::process::Rlimit {
            current: Some(1 << 40),
            // The victim's hard limit is ours (it changes none).
            maximum: rustix::process::getrlimit(Resource::As).maximum,
        };
        let before = rustix::process::prlimit(Some(pid), Resource::As, limit)
            .expect("lowering the victim's RLIMIT_AS");
        (pid, before)
    });
    let err = Parasite::infect(&mut task, &PARASITE, 1 << 50).expect_err("too big to map");
    assert!(
        matches!(err, InfectError::RemoteSyscall { name: "mmap", .. }),
        "{err}"
    );
    if let Some((pid, before)) = lowered {
        rustix::process::prlimit(Some(pid), Resource::As, before)
            .expect("restoring the victim's RLIMIT_AS");
    }
    // Still fully usable afterwards.
    let mut parasite = Parasite::infect(&mut task, &PARASITE, 64).expect("infect");
    ping(&mut parasite, 0, 1);
    drop(parasite);
    task.release().expect("release");

    // PASS includes: same open fds as before, no memfd mapping left.
    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

/// x86_64 code: count down from 2^29 (a few hundred ms), then return 42.
#[cfg(target_arch = "x86_64")]
static SPIN_THEN_42: [u8; 15] = [
    0xb9, 0x00, 0x00, 0x00, 0x20, // mov ecx, 0x20000000
    0xff, 0xc9, //                   1: dec ecx
    0x75, 0xfc, //                   jnz 1b
    0xb8, 0x2a, 0x00, 0x00, 0x00, // mov eax, 42
    0xc3, //                         ret
];
/// s390x code: count down from 2^26 (the VM emulates it), then return 42.
#[cfg(target_arch = "s390x")]
static SPIN_THEN_42: [u8; 14] = [
    0xa5, 0x1e, 0x04, 0x00, // llilh %r1, 0x0400
    0xa7, 0x17, 0x00, 0x00, // 1: brctg %r1, 1b
    0xa7, 0x29, 0x00, 0x2a, // lghi %r2, 42
    0x07, 0xfe, //             br %r14
];
/// aarch64 code: count down from 2^27 (fewer: the VM emulates it), then
/// return 42.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
static SPIN_THEN_42: [u8; 20] = [
    0x01, 0x00, 0xa1, 0x52, // movz w1, #0x0800, lsl #16
    0x21, 0x04, 0x00, 0x71, // 1: subs w1, w1, #1
    0xe1, 0xff, 0xff, 0x54, // b.ne 1b
    0x40, 0x05, 0x80, 0x52, // mov w0, #42
    0xc0, 0x03, 0x5f, 0xd6, // ret
];

/// ppc64le code: count down from 2^27 (the VM emulates it), then return
/// 42.
#[cfg(target_arch = "powerpc64")]
static SPIN_THEN_42: [u8; 24] = [
    0x00, 0x08, 0x80, 0x3c, // lis r4, 0x0800
    0xff, 0xff, 0x84, 0x38, // 1: addi r4, r4, -1
    0x00, 0x00, 0x24, 0x2c, // cmpdi r4, 0
    0xf8, 0xff, 0x82, 0x40, // bne 1b
    0x2a, 0x00, 0x60, 0x38, // li r3, 42
    0x20, 0x00, 0x80, 0x4e, // blr
];

fn pending_signals(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    ["SigPnd:", "ShdPnd:"]
        .iter()
        .map(|key| {
            let line = status.lines().find_map(|l| l.strip_prefix(key)).unwrap();
            u64::from_str_radix(line.trim(), 16).unwrap()
        })
        .fold(0, |a, b| a | b)
}

#[test]
fn signals_during_parasite_are_handed_back() {
    require_infect!("signals_during_parasite_are_handed_back");
    let dir = TempDir::new("infect-signals");
    // SIGTRAP blocked, so a handed-back SIGTRAP stays pending harmlessly.
    let victim = Victim::start(&dir, &["loop", "block-trap"]);
    let blob = raw_blob(&SPIN_THEN_42);

    let mut task = Seized::seize(victim.pid()).expect("seize");
    let mut parasite = Parasite::infect(&mut task, &blob, 64).expect("infect");
    let pid = rustix::process::Pid::from_raw(victim.pid()).unwrap();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        rustix::process::kill_process(pid, Signal::TRAP).unwrap();
        rustix::process::kill_process(pid, Signal::STOP).unwrap();
    });
    // A user-sent SIGTRAP is not our trap, SIGSTOP cannot be blocked: both
    // arrive while the parasite spins and must not disturb the call.
    assert_eq!(parasite.call(0).expect("call"), 42);
    sender.join().unwrap();
    drop(parasite);
    task.release().expect("release");

    // Both handed back: stopped, SIGTRAP pending (blocked by the victim).
    assert!(wait_until(Duration::from_secs(5), || {
        proc_state(victim.pid()) == Some('T')
    }));
    assert_ne!(pending_signals(victim.pid()) & (1 << (5 - 1)), 0);
    victim.go();
    victim.program.signal(Signal::CONT);
    assert_eq!(victim.verdict(), "PASS\n");
}
