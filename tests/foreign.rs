//! Dump and restore of programs we did not write: coreutils `sleep`, a
//! `python3` loop and a `bash` loop run as a shell job (not a session
//! leader, in the session of whoever restores it). Each must carry on
//! from where it stopped after restore.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, become_subreaper, skip, wait_until};
use rustix::process::{Pid, Signal, WaitOptions};

const TIMEOUT: Duration = Duration::from_secs(20);

fn criu(images: &Path, args: &[&str]) -> (bool, String) {
    common::run_criu(images, args, &[])
}

/// Start `argv` with stdio on files in `dir`; in a new session unless
/// `job`, where it only gets its own process group (as a shell job does).
fn start(dir: &Path, argv: &[&str], job: bool) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(dir.join("out")).unwrap();
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    // SAFETY: only async-signal-safe syscalls run between fork and exec:
    // close every fd above stdio (the test runner's, e.g. cargo's jobserver
    // pipe, must not become part of the program) and, unless it is to be
    // a job of ours, start a new session.
    unsafe {
        cmd.pre_exec(move || {
            criu_arch::syscall3(criu_arch::nr::CLOSE_RANGE, 3, u32::MAX as usize, 0);
            if !job {
                rustix::process::setsid()?;
            }
            Ok(())
        })
    };
    if job {
        cmd.process_group(0);
    }
    cmd.spawn().expect("spawn")
}

fn read_num(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn reap(pid: i32) -> Option<i32> {
    let p = Pid::from_raw(pid).unwrap();
    let end = Instant::now() + TIMEOUT;
    while Instant::now() < end {
        if let Ok(Some((_, status))) = rustix::process::waitpid(Some(p), WaitOptions::NOHANG) {
            return status.exit_status();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn kill(pid: i32) {
    let p = Pid::from_raw(pid).unwrap();
    let _ = rustix::process::kill_process(p, Signal::KILL);
    let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
}

/// Dump `child` (killing it), reap it, restore it detached with `extra`.
fn dump_and_restore(child: &mut std::process::Child, images: &Path, extra: &[&str]) {
    let pid = child.id().to_string();
    let mut args = vec!["dump", "-t", &pid];
    args.extend_from_slice(extra);
    let (ok, log) = criu(images, &args);
    assert!(ok, "dump: {log}");
    child.wait().expect("reap the dumped program");
    let mut args = vec!["restore", "-d", "--pidfile", "pid"];
    args.extend_from_slice(extra);
    let (ok, log) = criu(images, &args);
    assert!(ok, "restore: {log}");
    let restored = std::fs::read_to_string(images.join("pid")).unwrap();
    assert_eq!(restored.trim(), pid, "{log}");
}

#[test]
fn coreutils_sleep_finishes_its_sleep_after_restore() {
    if !rustix::process::geteuid().is_root() {
        return skip(
            "coreutils_sleep_finishes_its_sleep_after_restore",
            "needs root",
        );
    }
    become_subreaper();
    let dir = TempDir::new("foreign-sleep");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let started = Instant::now();
    let mut child = start(dir.path(), &["sleep", "3"], false);
    let pid = child.id() as i32;
    assert!(wait_until(TIMEOUT, || common::proc_state(pid) == Some('S')));
    std::thread::sleep(Duration::from_millis(300));
    dump_and_restore(&mut child, &images, &[]);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x003\x00");
    // It sleeps on (the interrupted nanosleep restarts with the time
    // left) and exits 0 on its own, neither at once nor never.
    let status = reap(pid);
    let took = started.elapsed();
    assert_eq!(status, Some(0), "restored sleep did not exit 0");
    assert!(took >= Duration::from_millis(2900), "slept only {took:?}");
}

#[test]
fn python_loop_counts_on_after_restore() {
    if !rustix::process::geteuid().is_root() {
        return skip("python_loop_counts_on_after_restore", "needs root");
    }
    if Command::new("python3").arg("-V").output().is_err() {
        return skip("python_loop_counts_on_after_restore", "no python3");
    }
    become_subreaper();
    let dir = TempDir::new("foreign-python");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let count = dir.join("count");
    // The program checks its own heap: a list it built must still sum up.
    let script = "import time\n\
        data = [i * i for i in range(100000)]\n\
        want = sum(data)\n\
        i = 0\n\
        while True:\n\
        \x20   i += 1\n\
        \x20   assert sum(data) == want\n\
        \x20   with open('count.tmp', 'w') as f: f.write(str(i))\n\
        \x20   __import__('os').rename('count.tmp', 'count')\n\
        \x20   time.sleep(0.005)\n";
    let mut child = start(dir.path(), &["python3", "-c", script], false);
    let pid = child.id() as i32;
    assert!(wait_until(TIMEOUT, || read_num(&count) > 5));
    dump_and_restore(&mut child, &images, &[]);
    let at_restore = read_num(&count);
    assert!(
        wait_until(TIMEOUT, || read_num(&count) > at_restore + 5),
        "python loop stuck at {at_restore}: {}",
        std::fs::read_to_string(dir.join("out")).unwrap_or_default()
    );
    assert!(common::proc_state(pid).is_some());
    kill(pid);
}

#[test]
fn bash_loop_restores_as_a_shell_job() {
    if !rustix::process::geteuid().is_root() {
        return skip("bash_loop_restores_as_a_shell_job", "needs root");
    }
    become_subreaper();
    let dir = TempDir::new("foreign-bash");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let count = dir.join("count");
    // Builtins only (no children): the loop counts and writes every 200th.
    let script = "i=0; while :; do i=$((i+1)); \
        if [ $((i % 200)) -eq 0 ]; then echo $i > count; fi; done";
    let mut child = start(dir.path(), &["bash", "-c", script], true);
    let pid = child.id() as i32;
    assert!(wait_until(TIMEOUT, || read_num(&count) >= 400));
    // Not a session leader: a plain dump must refuse it, saying why.
    let (ok, log) = criu(&images, &["dump", "-t", &pid.to_string()]);
    assert!(
        !ok,
        "dump of a non-session-leader without --shell-job worked"
    );
    assert!(log.contains("shell-job"), "{log}");
    assert!(
        common::proc_state(pid).is_some(),
        "refused dump harmed the task"
    );
    let _ = std::fs::remove_file(images.join("dump.log"));
    dump_and_restore(&mut child, &images, &["--shell-job"]);
    let at_restore = read_num(&count);
    assert!(
        wait_until(TIMEOUT, || read_num(&count) > at_restore),
        "bash loop stuck at {at_restore}"
    );
    // In our session now, leading its own process group as before.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let (pgid, sid) = (fields[2], fields[3]);
    assert_eq!(pgid, pid.to_string(), "process group");
    let our_sid = rustix::process::getsid(None)
        .unwrap()
        .as_raw_nonzero()
        .get();
    assert_eq!(sid, our_sid.to_string(), "session");
    kill(pid);
}

#[test]
fn python_threads_count_on_after_restore() {
    if !rustix::process::geteuid().is_root() {
        return skip("python_threads_count_on_after_restore", "needs root");
    }
    if Command::new("python3").arg("-V").output().is_err() {
        return skip("python_threads_count_on_after_restore", "no python3");
    }
    become_subreaper();
    let dir = TempDir::new("foreign-python-threads");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let counts = dir.join("counts");
    // Three threads append to lists of their own (under the GIL, with a
    // lock and sleeps: futexes); the main thread writes the lengths and
    // checks that every list still holds what was appended.
    let script = "import os, threading, time\n\
        lists = [[], [], []]\n\
        lock = threading.Lock()\n\
        def work(n):\n\
        \x20   while True:\n\
        \x20       with lock:\n\
        \x20           lists[n].append(len(lists[n]))\n\
        \x20       time.sleep(0.002)\n\
        for n in range(3):\n\
        \x20   threading.Thread(target=work, args=(n,), daemon=True).start()\n\
        while True:\n\
        \x20   with lock:\n\
        \x20       for l in lists:\n\
        \x20           assert l == list(range(len(l)))\n\
        \x20       text = ' '.join(str(len(l)) for l in lists)\n\
        \x20   with open('counts.tmp', 'w') as f: f.write(text)\n\
        \x20   os.rename('counts.tmp', 'counts')\n\
        \x20   time.sleep(0.005)\n";
    let read = || -> Vec<u64> {
        std::fs::read_to_string(&counts)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let mut child = start(dir.path(), &["python3", "-c", script], false);
    let pid = child.id() as i32;
    assert!(wait_until(TIMEOUT, || read()
        .iter()
        .filter(|&&c| c > 5)
        .count()
        == 3));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    assert_eq!(threads, 4, "python threads");
    dump_and_restore(&mut child, &images, &[]);
    assert_eq!(
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count(),
        4,
        "threads after restore"
    );
    let at_restore = read();
    assert!(
        wait_until(TIMEOUT, || {
            let now = read();
            now.len() == 3 && now.iter().zip(&at_restore).all(|(n, a)| *n > a + 5)
        }),
        "python threads stuck at {at_restore:?}: {}",
        std::fs::read_to_string(dir.join("out")).unwrap_or_default()
    );
    kill(pid);
}
