//! The harness side of the ZDTM-style tests: start a program from
//! `tests/programs/zdtm/` (see its `lib.rs` for the protocol), dump it with
//! `criu dump`, restore it with `criu restore -d`, tell it to go on and
//! return its verdict. Processes are killed and reaped by PID.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};

use super::{Program, TempDir, become_subreaper, skip, wait_for_file};

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One program under test, in its own temporary directory:
/// `DIR/work` is the program's directory, `DIR/images` the images.
pub struct Zdtm {
    dir: TempDir,
    work: PathBuf,
    images: PathBuf,
    program: Option<Program>,
    pid: i32,
}

impl Zdtm {
    /// Start example `program` with `args` (after its work directory) and
    /// wait until it is ready. `None` (after saying why) when this test
    /// cannot run here.
    pub fn start(test: &str, program: &str, args: &[&str]) -> Option<Zdtm> {
        Zdtm::start_wrapped(test, &[], program, args)
    }

    /// [`Zdtm::start`] through `wrapper` (`unshare --uts`, ...): the tree's
    /// root is the process started, the wrapper if it forks the program
    /// (whose ready file then shows its PID in its own pid namespace).
    pub fn start_wrapped(
        test: &str,
        wrapper: &[&str],
        program: &str,
        args: &[&str],
    ) -> Option<Zdtm> {
        if let Some(why) = super::cannot_checkpoint() {
            skip(test, why);
            return None;
        }
        become_subreaper();
        let dir = TempDir::new(test);
        let work = dir.join("work");
        let images = dir.join("images");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&images).unwrap();
        let mut argv = vec![work.to_str().unwrap()];
        argv.extend_from_slice(args);
        let program = Program::spawn_wrapped(wrapper, program, &argv, dir.path());
        let pid = program.pid();
        let mut z = Zdtm {
            dir,
            work,
            images,
            program: Some(program),
            pid,
        };
        let ready = wait_for_file(&z.work.join("ready"), TIMEOUT);
        let Some(ready) = ready else {
            let why = z.result().unwrap_or_else(|| "no ready file".into());
            panic!("{test}: program not ready: {why}\n{}", z.stderr());
        };
        if wrapper.is_empty() {
            assert_eq!(ready.trim(), pid.to_string(), "ready file");
        }
        z.pid = pid;
        Some(z)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The program's work directory.
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// The (default) images directory.
    pub fn images(&self) -> &Path {
        &self.images
    }

    /// A fresh directory `name` next to the work directory.
    pub fn new_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Run `criu ACTION ARGS -D images -v4 -o ACTION.log`: success and
    /// the log.
    pub fn criu_in(&self, images: &Path, args: &[&str]) -> (bool, String) {
        super::run_criu(images, args, &[])
    }

    /// `criu dump -t PID EXTRA` into `images`; asserts it worked. Without
    /// `--leave-running`/`--leave-stopped` the program must be gone
    /// after it (it is reaped here, so its PID is free for the restore).
    pub fn dump_to(&mut self, images: &Path, extra: &[&str]) {
        let pid = self.pid.to_string();
        let mut args = vec!["dump", "-t", &pid];
        args.extend_from_slice(extra);
        let (ok, log) = self.criu_in(images, &args);
        assert!(ok, "dump failed: {log}");
        if !extra.contains(&"--leave-running") && !extra.contains(&"--leave-stopped") {
            self.wait_gone();
        }
    }

    /// [`Zdtm::dump_to`] the default images directory.
    pub fn dump(&mut self, extra: &[&str]) {
        let images = self.images.clone();
        self.dump_to(&images, extra);
    }

    /// `criu dump -t PID EXTRA` that must be refused: asserts that it
    /// failed, that its log says `message`, that it wrote nothing but its
    /// log, and that it left every task of the tree running as it was (not
    /// traced any more). The log.
    pub fn dump_refused(&self, extra: &[&str], message: &str) -> String {
        let images = self.new_dir("refused-images");
        let tree: Vec<i32> = std::iter::once(self.pid)
            .chain(super::descendants(self.pid))
            .collect();
        let pid = self.pid.to_string();
        let mut args = vec!["dump", "-t", &pid];
        args.extend_from_slice(extra);
        let (ok, log) = self.criu_in(&images, &args);
        assert!(!ok, "the dump was not refused: {log}");
        assert!(log.contains(message), "no {message:?} in the log: {log}");
        let files: Vec<_> = std::fs::read_dir(&images)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "dump.log")
            .collect();
        assert!(files.is_empty(), "a refused dump wrote {files:?}");
        for t in tree {
            assert_eq!(
                super::tracer_pid(t),
                Some(0),
                "task {t} left traced or gone: {log}"
            );
        }
        log
    }

    /// Wait until the program's PID is free (the process is reaped).
    pub fn wait_gone(&mut self) {
        if let Some(mut p) = self.program.take() {
            p.wait_exit(TIMEOUT).expect("dumped program still running");
        } else {
            // A restored task is our child (we are the subreaper).
            let p = Pid::from_raw(self.pid).unwrap();
            let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
        }
    }

    /// Kill the program (by PID) and reap it.
    pub fn kill(&mut self) {
        let p = Pid::from_raw(self.pid).unwrap();
        let _ = rustix::process::kill_process(p, Signal::KILL);
        self.wait_gone();
    }

    /// `criu restore -d --pidfile restored.pid EXTRA` from `images`;
    /// asserts it worked and gave the task its old PID.
    pub fn restore_from(&mut self, images: &Path, extra: &[&str]) {
        let mut args = vec!["restore", "-d", "--pidfile", "restored.pid"];
        args.extend_from_slice(extra);
        let (ok, log) = self.criu_in(images, &args);
        assert!(ok, "restore failed: {log}");
        let restored = std::fs::read_to_string(images.join("restored.pid")).unwrap();
        assert_eq!(restored.trim(), self.pid.to_string(), "{log}");
        // From now on the task is a child of ours through the subreaper.
        self.program = None;
    }

    /// Make `pid` the tree's root from now on (a wrapper's child, e.g. the
    /// init of the pid namespace `ns_exec pid` made): dumps name it, and
    /// the wrapper is still what [`Zdtm::wait_gone`] waits for.
    #[allow(dead_code)]
    pub fn retarget(&mut self, pid: i32) {
        self.pid = pid;
    }

    /// `criu restore -d --pidfile restored.pid EXTRA` from `images` of a
    /// tree in its own pid namespace, whose root gets whatever PID the
    /// kernel gives it out here: asserts it worked; the root's PID (from
    /// the pidfile), which is the tree's root from now on.
    #[allow(dead_code)]
    pub fn restore_in_new_pid_ns(&mut self, images: &Path, extra: &[&str]) -> i32 {
        let mut args = vec!["restore", "-d", "--pidfile", "restored.pid"];
        args.extend_from_slice(extra);
        let (ok, log) = self.criu_in(images, &args);
        assert!(ok, "restore failed: {log}");
        self.adopt_restored(images)
    }

    /// The root of a tree restored into `images` with `--pidfile
    /// restored.pid` (by any tool): it is the tree's root from now on,
    /// our child through the subreaper.
    #[allow(dead_code)]
    pub fn adopt_restored(&mut self, images: &Path) -> i32 {
        let restored = std::fs::read_to_string(images.join("restored.pid")).unwrap();
        self.pid = restored.trim().parse().expect("a PID in the pidfile");
        self.program = None;
        self.pid
    }

    /// Note that the task was restored by other means than
    /// [`Zdtm::restore_from`] (it is our child through the subreaper now).
    #[allow(dead_code)]
    pub fn restored_elsewhere(&mut self) {
        self.program = None;
    }

    /// [`Zdtm::restore_from`] the default images directory.
    pub fn restore(&mut self, extra: &[&str]) {
        let images = self.images.clone();
        self.restore_from(&images, extra);
    }

    /// The program's verdict so far, if it wrote one.
    pub fn result(&self) -> Option<String> {
        std::fs::read_to_string(self.work.join("result"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// What the program wrote to stderr (for failure messages).
    pub fn stderr(&self) -> String {
        let mut text = String::new();
        for e in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "err") {
                text += &std::fs::read_to_string(&p).unwrap_or_default();
            }
        }
        text
    }

    /// Tell the program to check itself; its verdict (`PASS` or
    /// `FAIL: ...`, or `no result` after [`TIMEOUT`]). The program is
    /// killed and reaped afterwards.
    pub fn go(mut self) -> String {
        std::fs::write(self.work.join("go"), "").unwrap();
        let verdict = wait_for_file(&self.work.join("result"), TIMEOUT)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| format!("no result; stderr: {}", self.stderr()));
        self.kill();
        verdict
    }
}

impl Drop for Zdtm {
    fn drop(&mut self) {
        // Whatever happened, no process of this test stays behind.
        if self.program.is_none() && super::proc_state(self.pid).is_some() {
            let p = Pid::from_raw(self.pid).unwrap();
            let _ = rustix::process::kill_process(p, Signal::KILL);
            let _ = rustix::process::waitpid(Some(p), WaitOptions::NOHANG);
        }
    }
}

/// The usual run: start `program`, dump it (killing it), restore it,
/// let it check itself. Its verdict, or `None` if the test is skipped.
pub fn dump_restore(test: &str, program: &str, args: &[&str]) -> Option<String> {
    let mut z = Zdtm::start(test, program, args)?;
    z.dump(&[]);
    z.restore(&[]);
    Some(z.go())
}
