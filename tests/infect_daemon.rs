//! The parasite in daemon mode: started on its own stack with a signal frame
//! of the original state, driven over its socket, and sent home with FINI
//! (`rt_sigreturn`). The victim (`tests/programs/victim_loop.rs`) checks
//! itself afterwards and writes PASS or FAIL.

mod common;

use std::mem::offset_of;
use std::time::Duration;

use common::{Program, TempDir, become_subreaper, proc_syscall, skip, wait_for_file, wait_until};
use criu_core::blob::PARASITE;
use criu_core::blob::parasite_abi::{
    CMD_DAEMON_PING, CMD_DUMP_MISC, MiscArgs, PING_MESSAGE, PingArgs,
};
use criu_core::infect::{InfectError, Parasite, Seized};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const RESULT_TIMEOUT: Duration = Duration::from_secs(20);
/// nanosleep and clock_nanosleep.
const NANOSLEEP_NRS: [i64; 2] = [
    criu_arch::nr::NANOSLEEP as i64,
    criu_arch::nr::CLOCK_NANOSLEEP as i64,
];

fn cannot_infect() -> Option<&'static str> {
    if let Some(why) = common::cannot_ptrace() {
        return Some(why);
    }
    become_subreaper();
    None
}

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

    fn go(&self) {
        std::fs::write(self.dir.join("go"), "").expect("write go");
    }

    fn verdict(&self) -> String {
        wait_for_file(&self.dir.join("result"), RESULT_TIMEOUT)
            .unwrap_or_else(|| "no result".into())
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("victim_loop.out")).unwrap_or_default()
    }
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

/// Ping twice and read DUMP_MISC through a daemon, then FINI.
fn exercise_daemon(pid: i32) {
    let mut task = Seized::seize(pid).expect("seize");
    let mut parasite = Parasite::infect(&mut task, &PARASITE, 4096).expect("infect");
    let mut daemon = parasite.start_daemon().expect("start daemon");
    for _ in 0..2 {
        let args = daemon.args_mut();
        args[..size_of::<PingArgs>()].fill(0);
        args[offset_of!(PingArgs, fd)..][..4].copy_from_slice(&1i32.to_ne_bytes());
        daemon.call(CMD_DAEMON_PING).expect("PING");
    }
    daemon.call(CMD_DUMP_MISC).expect("DUMP_MISC");
    let out = daemon.args();
    assert_eq!(read_i32(out, offset_of!(MiscArgs, pid)), pid);
    // victim_loop calls setsid(): it leads its session and group.
    assert_eq!(read_i32(out, offset_of!(MiscArgs, sid)), pid);
    assert_eq!(read_i32(out, offset_of!(MiscArgs, pgid)), pid);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Field 48 of stat (start_brk is 47): brk(0) is the current break, at
    // or above start_brk.
    let start_brk: u64 = fields[47 - 3].parse().unwrap();
    assert!(read_u64(out, offset_of!(MiscArgs, brk)) >= start_brk);
    assert_eq!(read_i32(out, offset_of!(MiscArgs, dumpable)), 1);
    daemon.fini().expect("fini");
    parasite.cure().expect("cure");
    task.release().expect("release");
}

#[test]
fn daemon_serves_and_returns_running_victim() {
    if let Some(why) = cannot_infect() {
        return skip("daemon_serves_and_returns_running_victim", why);
    }
    let dir = TempDir::new("daemon-running");
    let victim = Victim::start(&dir, &["loop"]);
    exercise_daemon(victim.pid());
    exercise_daemon(victim.pid());
    assert_eq!(
        victim.stdout(),
        String::from_utf8_lossy(PING_MESSAGE).repeat(4)
    );
    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn daemon_interrupts_sleep_like_criu() {
    if let Some(why) = cannot_infect() {
        return skip("daemon_interrupts_sleep_like_criu", why);
    }
    let dir = TempDir::new("daemon-sleep");
    let victim = Victim::start(&dir, &["sleep", "1500"]);
    assert!(
        wait_until(Duration::from_secs(5), || proc_syscall(victim.pid())
            .is_some_and(|nr| NANOSLEEP_NRS.contains(&nr))),
        "victim never blocked in nanosleep"
    );
    std::thread::sleep(Duration::from_millis(200));
    exercise_daemon(victim.pid());
    // rt_sigreturn resets the kernel's restart block, so a nanosleep cut by
    // the seize (-ERESTART_RESTARTBLOCK) returns EINTR with the time left,
    // exactly as after a CRIU dump with --leave-running. Anything else
    // (a crash, a wrong mask or memory) would show as another verdict.
    // On arm64 the kernel has rewound the `svc` before the ptrace stop, so
    // the frame re-enters nanosleep with its full time: it just completes.
    let verdict = victim.verdict();
    if cfg!(target_arch = "aarch64") {
        assert_eq!(verdict, "PASS\n");
        return;
    }
    assert!(
        verdict.starts_with("FAIL: nanosleep interrupted (EINTR)"),
        "{verdict}"
    );
}

#[test]
fn failed_command_and_dropped_daemon_leave_victim_unharmed() {
    if let Some(why) = cannot_infect() {
        return skip(
            "failed_command_and_dropped_daemon_leave_victim_unharmed",
            why,
        );
    }
    let dir = TempDir::new("daemon-fail");
    let victim = Victim::start(&dir, &["loop"]);
    {
        let mut task = Seized::seize(victim.pid()).expect("seize");
        let mut parasite = Parasite::infect(&mut task, &PARASITE, 4096).expect("infect");
        let mut daemon = parasite.start_daemon().expect("start daemon");
        match daemon.call(999) {
            Err(InfectError::Command { cmd: 999, .. }) => {}
            other => panic!("unknown command gave {other:?}"),
        }
        // After an error every command fails with it.
        assert!(daemon.call(CMD_DUMP_MISC).is_err());
        // Dropped without FINI: the error path must put everything back.
    }
    // A clean run afterwards still works.
    exercise_daemon(victim.pid());
    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn drain_fds_hands_over_the_tasks_files() {
    if let Some(why) = cannot_infect() {
        return skip("drain_fds_hands_over_the_tasks_files", why);
    }
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("daemon-drain");
    let victim = Victim::start(&dir, &["loop"]);
    {
        let mut task = Seized::seize(victim.pid()).expect("seize");
        let mut parasite = Parasite::infect(&mut task, &PARASITE, 4096).expect("infect");
        let mut daemon = parasite.start_daemon().expect("start daemon");
        let got = criu_core::dump::parasite::drain_fds(&mut daemon, &[0, 1, 2]).expect("DRAIN_FDS");
        assert_eq!(got.len(), 3);
        for (i, (fd, flags)) in got.iter().enumerate() {
            let ours = rustix::fs::fstat(fd).expect("fstat");
            let theirs = std::fs::metadata(format!("/proc/{}/fd/{i}", victim.pid())).unwrap();
            assert_eq!(
                (ours.st_dev, ours.st_ino),
                (theirs.dev(), theirs.ino()),
                "fd {i}"
            );
            assert_eq!(*flags, 0, "fd {i} is not close-on-exec");
        }
        daemon.fini().expect("fini");
        parasite.cure().expect("cure");
        task.release().expect("release");
    }
    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}

#[test]
fn stop_signal_during_daemon_is_kept() {
    if let Some(why) = cannot_infect() {
        return skip("stop_signal_during_daemon_is_kept", why);
    }
    let dir = TempDir::new("daemon-stop");
    let victim = Victim::start(&dir, &["loop"]);
    {
        let mut task = Seized::seize(victim.pid()).expect("seize");
        let mut parasite = Parasite::infect(&mut task, &PARASITE, 4096).expect("infect");
        let mut daemon = parasite.start_daemon().expect("start daemon");
        victim.program.signal(rustix::process::Signal::STOP);
        std::thread::sleep(Duration::from_millis(100));
        daemon.call(CMD_DUMP_MISC).expect("DUMP_MISC after SIGSTOP");
        daemon.fini().expect("fini");
        parasite.cure().expect("cure");
        task.release().expect("release");
    }
    // Stopped now, as the signal asked; it runs on after SIGCONT.
    assert!(wait_until(Duration::from_secs(5), || {
        common::proc_state(victim.pid()) == Some('T')
    }));
    victim.program.signal(rustix::process::Signal::CONT);
    victim.go();
    assert_eq!(victim.verdict(), "PASS\n");
}
