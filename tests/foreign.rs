//! Dump and restore of programs we did not write: coreutils `sleep`, a
//! `python3` loop and a `bash` loop run as a shell job (not a session
//! leader, in the session of whoever restores it), python3 with threads,
//! a `bash` pipeline (`seq | reader`) as a shell job, and python3 with a
//! thread talking to a `cat` subprocess through pipes. Each must carry on
//! from where it stopped after restore, its data intact.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TempDir, become_subreaper, skip, wait_until};
use rustix::process::{Pid, Signal, WaitOptions};

const TIMEOUT: Duration = Duration::from_secs(20);

fn criu(images: &Path, args: &[&str]) -> (bool, String) {
    common::run_criu(images, args, &[])
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
    dump_and_restore_tree(child, &[], images, extra);
}

/// [`dump_and_restore`] of `child` and its descendants `others`.
fn dump_and_restore_tree(
    child: &mut std::process::Child,
    others: &[i32],
    images: &Path,
    extra: &[&str],
) {
    let pid = child.id().to_string();
    let mut args = vec!["dump", "-t", &pid];
    args.extend_from_slice(extra);
    let (ok, log) = criu(images, &args);
    assert!(ok, "dump: {log}");
    child.wait().expect("reap the dumped program");
    // Its descendants were killed too; as orphans they come to us (the
    // subreaper): reap them so that their PIDs are free again.
    for p in others {
        let end = Instant::now() + TIMEOUT;
        while common::proc_state(*p).is_some() && Instant::now() < end {
            let _ = rustix::process::waitpid(Pid::from_raw(*p), WaitOptions::NOHANG);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
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
    let mut child = common::spawn_in(dir.path(), &["sleep", "3"], false);
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
    let mut child = common::spawn_in(dir.path(), &["python3", "-c", script], false);
    let pid = child.id() as i32;
    assert!(wait_until(TIMEOUT, || common::read_num(&count) > 5));
    dump_and_restore(&mut child, &images, &[]);
    let at_restore = common::read_num(&count);
    assert!(
        wait_until(TIMEOUT, || common::read_num(&count) > at_restore + 5),
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
    let mut child = common::spawn_in(dir.path(), &["bash", "-c", script], true);
    let pid = child.id() as i32;
    assert!(wait_until(TIMEOUT, || common::read_num(&count) >= 400));
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
    let at_restore = common::read_num(&count);
    assert!(
        wait_until(TIMEOUT, || common::read_num(&count) > at_restore),
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
    let mut child = common::spawn_in(dir.path(), &["python3", "-c", script], false);
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

/// Dump and restore the tree `before` (its root is `child`), check it
/// comes back with the same PIDs, its `count` file grows by `step` more
/// and it wrote no `result` (its failure report); then kill it.
fn tree_carries_on(
    child: &mut std::process::Child,
    before: &[i32],
    dir: &Path,
    images: &Path,
    extra: &[&str],
    step: u64,
) {
    let pid = child.id() as i32;
    let count = dir.join("count");
    let others: Vec<i32> = before.iter().copied().filter(|&p| p != pid).collect();
    dump_and_restore_tree(child, &others, images, extra);
    assert_eq!(tree_pids(pid), before, "the restored tree");
    let at_restore = common::read_num(&count);
    assert!(
        wait_until(TIMEOUT, || common::read_num(&count) >= at_restore + step),
        "stuck at {at_restore}"
    );
    let result = std::fs::read_to_string(dir.join("result"));
    assert!(result.is_err(), "{}", result.unwrap_or_default());
    for p in before.iter().rev() {
        kill(*p);
    }
}

/// `pid` and all its descendants, sorted.
fn tree_pids(pid: i32) -> Vec<i32> {
    let mut out = common::descendants(pid);
    out.push(pid);
    out.sort_unstable();
    out
}

#[test]
fn bash_pipeline_restores_as_a_shell_job() {
    if !rustix::process::geteuid().is_root() {
        return skip("bash_pipeline_restores_as_a_shell_job", "needs root");
    }
    become_subreaper();
    let dir = TempDir::new("foreign-pipeline");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let count = dir.join("count");
    // `seq` feeds a bash reader through a pipe; the reader checks that
    // every number follows the one before (nothing lost or repeated in
    // the pipe) and writes every 500th.
    let script = "seq 1 1000000000 | { prev=0; while read n; do \
        if [ \"$n\" -ne $((prev+1)) ]; then echo \"FAIL $prev $n\" > result; exit 1; fi; \
        prev=$n; if [ $((n % 500)) -eq 0 ]; then echo $n > count; fi; done; }";
    let mut child = common::spawn_in(dir.path(), &["bash", "-c", script], true);
    let pid = child.id() as i32;
    assert!(wait_until(TIMEOUT, || common::read_num(&count) >= 1000));
    let before = tree_pids(pid);
    assert!(before.len() >= 3, "bash, seq and the reader: {before:?}");
    tree_carries_on(
        &mut child,
        &before,
        dir.path(),
        &images,
        &["--shell-job"],
        2000,
    );
}

#[test]
fn python_with_a_thread_and_a_subprocess_carries_on() {
    if !rustix::process::geteuid().is_root() {
        return skip(
            "python_with_a_thread_and_a_subprocess_carries_on",
            "needs root",
        );
    }
    if Command::new("python3").arg("-V").output().is_err() {
        return skip(
            "python_with_a_thread_and_a_subprocess_carries_on",
            "no python3",
        );
    }
    become_subreaper();
    let dir = TempDir::new("foreign-python-subprocess");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    // A thread writes numbered lines into `cat` through a pipe; the main
    // thread reads them back from another and checks their order.
    let script = "import subprocess, threading, time, os\n\
        p = subprocess.Popen(['cat'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n\
        def feed():\n\
        \x20   i = 0\n\
        \x20   while True:\n\
        \x20       i += 1\n\
        \x20       p.stdin.write(b'%d\\n' % i); p.stdin.flush()\n\
        \x20       time.sleep(0.001)\n\
        threading.Thread(target=feed, daemon=True).start()\n\
        want = 1\n\
        for line in p.stdout:\n\
        \x20   n = int(line)\n\
        \x20   if n != want:\n\
        \x20       open('result', 'w').write('FAIL got %d want %d' % (n, want)); break\n\
        \x20   want += 1\n\
        \x20   if n % 50 == 0:\n\
        \x20       open('count.tmp', 'w').write(str(n)); os.rename('count.tmp', 'count')\n";
    let count = dir.join("count");
    let mut child = common::spawn_in(dir.path(), &["python3", "-c", script], false);
    let pid = child.id() as i32;
    assert!(wait_until(TIMEOUT, || common::read_num(&count) >= 200));
    let before = tree_pids(pid);
    assert_eq!(before.len(), 2, "python and cat: {before:?}");
    tree_carries_on(&mut child, &before, dir.path(), &images, &[], 200);
}
