//! `--freeze-cgroup DIR`: the tasks of a freezer cgroup seized while it is
//! frozen, as CRIU's `freeze_processes` does (what container runtimes ask
//! for: runc passes the container's cgroup, and containerd has often
//! frozen it already).
//!
//! A frozen task does not run, so it cannot run the parasite either, and
//! in a v1 freezer it does not even stop for `PTRACE_INTERRUPT`. So:
//! freeze the cgroup if it is not frozen yet (waiting for it to be, within
//! `--timeout`), `PTRACE_SEIZE` and `PTRACE_INTERRUPT` every thread of it
//! and of its sub-cgroups while frozen, then thaw it: each thread runs
//! just far enough to stop in the interrupt's trap, so none runs a user
//! instruction. The tree is then seized as usual, waiting only for those
//! stops. Threads of the cgroup outside the tree stay stopped until the
//! end, like the tree.
//!
//! When the tasks are let go (running, or after a failed dump): a cgroup
//! that was frozen before the dump is frozen again first, so the tasks go
//! back to being frozen the moment they are detached; one that was thawed
//! stays thawed. When they are killed, the cgroup is left thawed (CRIU
//! does the same).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::Pid;

use crate::sys::ptrace;
use crate::{pr_debug, pr_info, pr_warn};

/// How often the freezer's state is read while it freezes (CRIU's step).
const STEP: Duration = Duration::from_millis(100);

/// How long the clean-up waits for a thread that never stopped.
const CLEANUP_WAIT: Duration = Duration::from_secs(1);

/// Why the cgroup could not be frozen or its tasks seized.
#[derive(Debug, thiserror::Error)]
pub enum FreezerError {
    #[error(
        "{dir}: neither a cgroupv1 (freezer.state) or cgroupv2 (cgroup.freeze) \
         control file found"
    )]
    NoControl { dir: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: unknown freezer state {state:?}")]
    UnknownState { path: String, state: String },
    #[error(
        "{dir} is frozen by an ancestor ({how}), which only that ancestor can thaw: give \
         --freeze-cgroup the frozen cgroup"
    )]
    FrozenAbove { dir: String, how: &'static str },
    #[error("Unable to freeze cgroup {dir}: not frozen within {secs} s (--timeout)")]
    NotFrozen { dir: String, secs: u64 },
    #[error("cannot seize thread {tid} of the frozen cgroup {dir}: {source}")]
    Seize {
        tid: i32,
        dir: String,
        source: Errno,
    },
    #[error("thread {tid} of the frozen cgroup {dir} did not stop within {secs} s (--timeout)")]
    NoStop { tid: i32, dir: String, secs: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    /// `freezer.state`: `THAWED`, `FREEZING`, `FROZEN`.
    V1,
    /// `cgroup.freeze` (0/1) and `frozen` in `cgroup.events`.
    V2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Thawed,
    Freezing,
    Frozen,
}

/// A freezer cgroup whose threads are attached (seized) by us.
#[derive(Debug)]
pub struct Freezer {
    dir: PathBuf,
    version: Version,
    /// Frozen (or freezing) before the dump: frozen again before the tasks
    /// are let go.
    was_frozen: bool,
    /// Every thread of the cgroup tree attached while it was frozen.
    attached: Vec<i32>,
    /// Attached threads that belong to no task of the dumped tree, stopped.
    bystanders: Vec<Pid>,
    /// [`Freezer::before_release`] ran.
    done: bool,
    /// It froze the cgroup again: [`Freezer::wait_refrozen`] waits for it.
    refrozen: bool,
}

impl Freezer {
    /// Freeze `dir` (unless frozen), attach every thread in it and its
    /// sub-cgroups, and thaw it again, all before `deadline` (`timeout`
    /// after the dump began freezing, for messages).
    pub fn freeze_and_attach(
        dir: &Path,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Freezer, FreezerError> {
        let version = if dir.join("freezer.state").exists() {
            Version::V1
        } else if dir.join("cgroup.freeze").exists() {
            Version::V2
        } else {
            return Err(FreezerError::NoControl {
                dir: dir.display().to_string(),
            });
        };
        pr_debug!(
            "Detected cgroup V{} freezer",
            if version == Version::V1 { 1 } else { 2 }
        );
        let mut f = Freezer {
            dir: dir.to_path_buf(),
            version,
            was_frozen: false,
            attached: Vec::new(),
            bystanders: Vec::new(),
            done: false,
            refrozen: false,
        };
        let state = f.state()?;
        f.was_frozen = state != State::Thawed;
        // Frozen from above: writing THAWED here would change nothing, and
        // no thread would ever stop (v1) or run the parasite (v2).
        if f.frozen_by_events()? || (f.was_frozen && !f.self_frozen()?) {
            f.done = true;
            return Err(FreezerError::FrozenAbove {
                dir: dir.display().to_string(),
                how: match version {
                    Version::V1 => "freezer.parent_freezing: 1",
                    Version::V2 => "cgroup.freeze: 0, cgroup.events: frozen 1",
                },
            });
        }
        pr_info!(
            "Freezer cgroup {} is {:?} before the dump",
            dir.display(),
            state
        );
        if state == State::Thawed {
            f.write(State::Frozen)?;
        }
        // Tasks may still be exiting while the freezer is in transition:
        // read the thread lists only once it is frozen.
        while f.state()? != State::Frozen {
            if Instant::now() >= deadline {
                let e = FreezerError::NotFrozen {
                    dir: dir.display().to_string(),
                    secs: timeout.as_secs(),
                };
                // Nothing attached yet: put the state back as it was.
                if !f.was_frozen {
                    let _ = f.write(State::Thawed);
                }
                f.done = true;
                return Err(e);
            }
            std::thread::sleep(STEP);
        }
        let attached = f.attach_tree(dir);
        // Thaw whatever happened: the attached threads run into their
        // interrupt stops, and a failure is cleaned up by `drop`.
        let thawed = f.write(State::Thawed);
        attached?;
        thawed?;
        pr_info!(
            "Attached {} threads of freezer cgroup {}",
            f.attached.len(),
            dir.display()
        );
        Ok(f)
    }

    /// Threads attached by [`Freezer::freeze_and_attach`]; the seize of the
    /// tree only waits for their stops.
    pub fn attached(&self) -> &[i32] {
        &self.attached
    }

    /// Once the tree is seized: the attached threads that are not part of
    /// it (`in_tree` says which are) are waited for and kept stopped until
    /// the end, as CRIU does; ones that exited are forgotten.
    pub fn hold_bystanders(
        &mut self,
        in_tree: impl Fn(i32) -> bool,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<(), FreezerError> {
        let others: Vec<i32> = self
            .attached
            .iter()
            .copied()
            .filter(|&t| !in_tree(t))
            .collect();
        for tid in others {
            let Some(t) = Pid::from_raw(tid) else {
                continue;
            };
            pr_warn!("Unexpected process {tid} in the freezer cgroup: kept stopped while dumping");
            match wait_stop(t, deadline) {
                Ok(true) => self.bystanders.push(t),
                Ok(false) => self.attached.retain(|&a| a != tid),
                Err(Errno::TIMEDOUT) => {
                    return Err(FreezerError::NoStop {
                        tid,
                        dir: self.dir.display().to_string(),
                        secs: timeout.as_secs(),
                    });
                }
                Err(_) => self.attached.retain(|&a| a != tid),
            }
        }
        self.attached.retain(|a| {
            !self
                .bystanders
                .iter()
                .any(|b| b.as_raw_nonzero().get() == *a)
        });
        Ok(())
    }

    /// The end of the dump, before the tasks of the tree are let go
    /// (detached, so they go on at once): a cgroup frozen before is frozen
    /// again, unless the tasks are about to be killed.
    pub fn before_release(&mut self, killing: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let _undo = crate::fault::Undo::enter();
        if self.was_frozen && !killing {
            match self.write(State::Frozen) {
                Ok(()) => {
                    self.refrozen = true;
                    pr_info!("Freezer cgroup {} frozen again", self.dir.display())
                }
                Err(e) => pr_warn!("Cannot freeze {} again: {e}", self.dir.display()),
            }
        }
    }

    /// Once the tasks are let go: a cgroup frozen again is frozen only when
    /// every one of them has stopped (v1 `FREEZING`, v2 `frozen 0` until
    /// then). The dump ends with it as it was found: this waits for that,
    /// a while at most ([`CLEANUP_WAIT`]), and says so if it is not.
    pub fn wait_refrozen(&mut self) {
        if !std::mem::take(&mut self.refrozen) {
            return;
        }
        let until = Instant::now() + CLEANUP_WAIT;
        loop {
            match self.state() {
                Ok(State::Frozen) => return,
                Ok(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(2)),
                Ok(_) => {
                    return pr_warn!(
                        "Freezer cgroup {} is still freezing after {} ms",
                        self.dir.display(),
                        CLEANUP_WAIT.as_millis()
                    );
                }
                Err(e) => return pr_warn!("Freezer cgroup {}: {e}", self.dir.display()),
            }
        }
    }

    /// Let the bystanders go, and attached threads no seized task took
    /// over (after a failure before the tree was seized).
    fn detach_rest(&mut self) {
        let _undo = crate::fault::Undo::enter();
        for t in std::mem::take(&mut self.bystanders) {
            if let Err(e) = ptrace::detach(t, 0) {
                pr_warn!("Unable to detach from {}: {e}", t.as_raw_nonzero());
            }
        }
        // Those the tree's tasks took over are detached already (ESRCH,
        // or ECHILD from the wait): only ones that stopped are detached.
        for tid in std::mem::take(&mut self.attached) {
            let Some(t) = Pid::from_raw(tid) else {
                continue;
            };
            if ptrace::detach(t, 0).is_err()
                && matches!(wait_stop(t, Instant::now() + CLEANUP_WAIT), Ok(true))
            {
                let _ = ptrace::detach(t, 0);
            }
        }
    }

    /// Attach every thread of `dir` and, recursively, of its sub-cgroups.
    fn attach_tree(&mut self, dir: &Path) -> Result<(), FreezerError> {
        let list = dir.join(match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.threads",
        });
        let text = std::fs::read_to_string(&list).map_err(|source| FreezerError::Io {
            path: list.display().to_string(),
            source,
        })?;
        for tid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let Some(t) = Pid::from_raw(tid) else {
                continue;
            };
            match ptrace::seize(t, ptrace::options::TRACESYSGOOD) {
                Ok(()) => {}
                // Exited meanwhile.
                Err(Errno::SRCH) => continue,
                Err(source) => {
                    return Err(FreezerError::Seize {
                        tid,
                        dir: self.dir.display().to_string(),
                        source,
                    });
                }
            }
            self.attached.push(tid);
            ptrace::interrupt(t).map_err(|source| FreezerError::Seize {
                tid,
                dir: self.dir.display().to_string(),
                source,
            })?;
        }
        let entries = std::fs::read_dir(dir).map_err(|source| FreezerError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                self.attach_tree(&e.path())?;
            }
        }
        Ok(())
    }

    fn control(&self) -> PathBuf {
        self.dir.join(match self.version {
            Version::V1 => "freezer.state",
            Version::V2 => "cgroup.freeze",
        })
    }

    fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FreezerError + '_ {
        move |source| FreezerError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn state(&self) -> Result<State, FreezerError> {
        let path = self.control();
        let text = std::fs::read_to_string(&path).map_err(Self::io_err(&path))?;
        let unknown = |state: &str| FreezerError::UnknownState {
            path: path.display().to_string(),
            state: state.to_string(),
        };
        match (self.version, text.trim()) {
            (Version::V1, "THAWED") | (Version::V2, "0") => Ok(State::Thawed),
            (Version::V1, "FROZEN") => Ok(State::Frozen),
            (Version::V1, "FREEZING") => Ok(State::Freezing),
            (Version::V2, "1") => {
                // Asked to freeze; frozen once `cgroup.events` says so.
                let ev = self.dir.join("cgroup.events");
                let events = std::fs::read_to_string(&ev).map_err(Self::io_err(&ev))?;
                Ok(if events.lines().any(|l| l.trim() == "frozen 1") {
                    State::Frozen
                } else {
                    State::Freezing
                })
            }
            (_, other) => Err(unknown(other)),
        }
    }

    /// A v2 cgroup whose own `cgroup.freeze` is 0 but which `cgroup.events`
    /// says is frozen: frozen by an ancestor.
    fn frozen_by_events(&self) -> Result<bool, FreezerError> {
        if self.version == Version::V1 || self.self_frozen()? {
            return Ok(false);
        }
        let ev = self.dir.join("cgroup.events");
        let events = std::fs::read_to_string(&ev).map_err(Self::io_err(&ev))?;
        Ok(events.lines().any(|l| l.trim() == "frozen 1"))
    }

    /// Frozen by its own control file (v1 `freezer.self_freezing`, v2
    /// `cgroup.freeze`), not only by an ancestor.
    fn self_frozen(&self) -> Result<bool, FreezerError> {
        let path = self.dir.join(match self.version {
            Version::V1 => "freezer.self_freezing",
            Version::V2 => "cgroup.freeze",
        });
        let text = std::fs::read_to_string(&path).map_err(Self::io_err(&path))?;
        Ok(text.trim() == "1")
    }

    fn write(&self, state: State) -> Result<(), FreezerError> {
        let text = match (self.version, state) {
            (Version::V1, State::Frozen) => "FROZEN",
            (Version::V1, _) => "THAWED",
            (Version::V2, State::Frozen) => "1",
            (Version::V2, _) => "0",
        };
        let path = self.control();
        std::fs::write(&path, text).map_err(Self::io_err(&path))
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        // A failed dump: the tasks are let go running, as they were.
        self.before_release(false);
        self.detach_rest();
    }
}

/// Wait for attached thread `t` to stop for our interrupt (signals that
/// come first are delivered). `Ok(false)`: it is gone.
fn wait_stop(t: Pid, deadline: Instant) -> Result<bool, Errno> {
    loop {
        match ptrace::wait_until(t, deadline)? {
            ptrace::WaitStatus::Stopped { event, .. } if event == ptrace::EVENT_STOP => {
                return Ok(true);
            }
            ptrace::WaitStatus::Stopped { sig, event: 0 } => ptrace::cont(t, sig)?,
            ptrace::WaitStatus::Exited(_) | ptrace::WaitStatus::Killed(_) => return Ok(false),
            _ => ptrace::cont(t, 0)?,
        }
    }
}
