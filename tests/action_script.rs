//! `--action-script`: CRIU's actions run the script with its environment
//! at the right moments. pre-dump/post-dump around a dump (a failure of
//! either fails the dump and leaves the task running unharmed);
//! pre-restore, post-restore and pre-resume before the restored task runs
//! any of its own code (pre-resume with it held stopped, the restorer
//! gone; a failure kills it and fails the restore), and
//! post-resume once it runs (a failure is only reported).

mod common;

use std::path::{Path, PathBuf};

use common::zdtm::{TIMEOUT, Zdtm};

const SCRIPT: &str = r#"#!/bin/sh
echo "$CRTOOLS_SCRIPT_ACTION ${CRTOOLS_INIT_PID:-none} $CRTOOLS_IMAGE_DIR" >> "$HOOK_LOG"
if [ "$CRTOOLS_SCRIPT_ACTION" = post-restore ]; then
    # The task must not run yet: its counter must stand still.
    a=$(cat "$HOOK_PROGRESS"); sleep 0.3; b=$(cat "$HOOK_PROGRESS")
    echo "progress $a $b" >> "$HOOK_LOG"
fi
if [ "$CRTOOLS_SCRIPT_ACTION" = pre-resume ]; then
    # As CRIU: the restore is over, the task held stopped by the tool.
    echo "state $(cut -d' ' -f3 /proc/$CRTOOLS_INIT_PID/stat)" >> "$HOOK_LOG"
fi
[ "$CRTOOLS_SCRIPT_ACTION" != "$HOOK_FAIL_AT" ]
"#;

struct Scripted {
    z: Zdtm,
    script: PathBuf,
    log: PathBuf,
}

impl Scripted {
    fn start(test: &str) -> Option<Scripted> {
        let z = Zdtm::start(test, "zdtm_counter", &[])?;
        let script = z.new_dir("bin").join("hook.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let log = z.new_dir("hooklog").join("log");
        Some(Scripted { z, script, log })
    }

    /// Run criu with the script (failing at `fail_at`); success and log.
    fn criu(&self, args: &[&str], fail_at: &str) -> (bool, String) {
        let script = self.script.to_str().unwrap();
        let mut argv = args.to_vec();
        argv.extend(["--action-script", script]);
        let progress = self.z.work().join("progress");
        let env = [
            ("HOOK_LOG", self.log.as_os_str()),
            ("HOOK_PROGRESS", progress.as_os_str()),
            ("HOOK_FAIL_AT", std::ffi::OsStr::new(fail_at)),
        ];
        common::run_criu(self.z.images(), &argv, &env)
    }

    /// The actions the script saw so far (and clear the record).
    fn actions(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        text.lines().map(str::to_string).collect()
    }

    fn dump(&self, fail_at: &str) -> (bool, String) {
        self.criu(&["dump", "-t", &self.z.pid().to_string()], fail_at)
    }
}

fn canonical(p: &Path) -> String {
    p.canonicalize().unwrap().display().to_string()
}

#[test]
fn actions_run_in_order_with_criu_environment() {
    let Some(mut s) = Scripted::start("hooks-order") else {
        return;
    };
    let pid = s.z.pid();
    let dir = canonical(s.z.images());
    let (ok, log) = s.dump("");
    assert!(ok, "dump: {log}");
    s.z.wait_gone();
    assert_eq!(
        s.actions(),
        [
            format!("pre-dump none {dir}"),
            format!("post-dump {pid} {dir}")
        ]
    );
    let (ok, log) = s.criu(&["restore", "-d", "--pidfile", "pid"], "");
    assert!(ok, "restore: {log}");
    let seen = s.actions();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen[0], format!("pre-restore none {dir}"));
    assert_eq!(seen[1], format!("post-restore {pid} {dir}"));
    // The counter stood still during post-restore.
    let progress: Vec<&str> = seen[2].split(' ').collect();
    assert_eq!(progress[0], "progress");
    assert_eq!(progress[1], progress[2], "the task ran before pre-resume");
    assert_eq!(seen[3], format!("pre-resume {pid} {dir}"));
    assert_eq!(
        seen[4], "state t",
        "pre-resume: the task is not held stopped"
    );
    assert_eq!(seen[5], format!("post-resume {pid} {dir}"));
    let before: u64 = progress[2].parse().unwrap();
    assert!(common::wait_until(TIMEOUT, || {
        std::fs::read_to_string(s.z.work().join("progress"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .is_some_and(|n| n > before)
    }));
    assert_eq!(s.z.go(), "PASS");
}

#[test]
fn failing_dump_actions_fail_the_dump_and_spare_the_task() {
    let Some(s) = Scripted::start("hooks-dump-fail") else {
        return;
    };
    let pid = s.z.pid();
    for action in ["pre-dump", "post-dump"] {
        let (ok, log) = s.dump(action);
        assert!(!ok, "dump with a failing {action} worked");
        assert!(log.contains(&format!("{action} script")), "{log}");
        assert_eq!(common::proc_state(pid).map(|c| c != 'Z'), Some(true));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.contains("TracerPid:\t0"), "{status}");
        s.actions();
    }
    assert_eq!(s.z.go(), "PASS");
}

#[test]
fn failing_restore_actions_leave_no_task() {
    let Some(mut s) = Scripted::start("hooks-restore-fail") else {
        return;
    };
    let pid = s.z.pid();
    let (ok, log) = s.dump("");
    assert!(ok, "dump: {log}");
    s.z.wait_gone();
    for action in ["pre-restore", "post-restore", "pre-resume"] {
        let (ok, log) = s.criu(&["restore", "-d"], action);
        assert!(!ok, "restore with a failing {action} worked");
        assert!(log.contains(&format!("{action} script")), "{log}");
        assert_eq!(
            common::proc_state(pid),
            None,
            "task left after {action} failed"
        );
    }
    // post-resume comes too late to undo anything: reported, not fatal.
    let (ok, log) = s.criu(&["restore", "-d"], "post-resume");
    assert!(ok, "restore with a failing post-resume failed: {log}");
    assert!(log.contains("post-resume script"), "{log}");
    assert_eq!(s.z.go(), "PASS");
}
