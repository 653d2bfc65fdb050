//! The little that infection needs from /proc: the task's state and pending
//! signals (`status`) and where its first executable mapping starts (`maps`).

use super::error::{InfectError, StatusError};
use crate::sys::ptrace::SigSet;

/// Fields of `/proc/PID/status` that decide whether and how to infect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskStatus {
    /// The state letter: `R`, `S`, `D`, `T` (stopped), `t` (traced), `Z`, ...
    pub state: char,
    /// Signals pending for this thread.
    pub sig_pending: SigSet,
    /// Signals pending for the whole process.
    pub shared_pending: SigSet,
    /// Blocked signals.
    pub blocked: SigSet,
    /// Seccomp mode (0 = none).
    pub seccomp: u32,
    /// Number of threads.
    pub threads: u32,
    /// The task's tracer (0: none).
    pub tracer: u32,
}

impl TaskStatus {
    /// Parse the text of `/proc/PID/status`.
    pub fn parse(text: &str) -> Result<TaskStatus, StatusError> {
        let mut st = TaskStatus::default();
        let mut seen_state = false;
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let bad = |source| StatusError::Value {
                key: key.to_string(),
                value: value.to_string(),
                source,
            };
            let hex = |v: &str| u64::from_str_radix(v, 16).map_err(bad);
            let dec = |v: &str| v.parse::<u32>().map_err(bad);
            match key {
                "State" => {
                    st.state = value.chars().next().ok_or(StatusError::EmptyState)?;
                    seen_state = true;
                }
                "SigPnd" => st.sig_pending = hex(value)?,
                "ShdPnd" => st.shared_pending = hex(value)?,
                "SigBlk" => st.blocked = hex(value)?,
                "Seccomp" => st.seccomp = dec(value)?,
                "Threads" => st.threads = dec(value)?,
                "TracerPid" => st.tracer = dec(value)?,
                _ => {}
            }
        }
        if !seen_state {
            return Err(StatusError::NoState);
        }
        Ok(st)
    }

    /// Read and parse `/proc/PID/status`.
    pub fn read(pid: i32) -> Result<TaskStatus, InfectError> {
        let text = read_proc(pid, "status")?;
        TaskStatus::parse(&text).map_err(|source| InfectError::Status { pid, source })
    }

    /// Whether `sig` is pending for the thread or the process.
    pub fn is_pending(&self, sig: i32) -> bool {
        let bit = 1u64 << (sig - 1);
        (self.sig_pending | self.shared_pending) & bit != 0
    }
}

fn read_proc(pid: i32, file: &'static str) -> Result<String, InfectError> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            InfectError::Dead { pid }
        } else {
            InfectError::Proc {
                pid,
                file,
                source: e,
            }
        }
    })
}

/// Smallest mapping CRIU accepts for the syscall stub (`PARASITE_START_AREA_MIN`).
const EXEC_AREA_MIN: u64 = 4096;

/// Find the start of the first executable mapping of at least
/// [`EXEC_AREA_MIN`] bytes in the text of `/proc/PID/maps`, skipping the
/// kernel-provided ones (`[vdso]`, `[vsyscall]`, `[uprobes]`): patching the
/// vDSO would be seen by every task sharing it.
pub fn parse_exec_start(maps: &str) -> Option<u64> {
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        // offset, device, inode, then the optional path.
        let path = fields.nth(3).unwrap_or("");
        if perms.as_bytes().get(2) != Some(&b'x') || path.starts_with('[') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        if end.saturating_sub(start) >= EXEC_AREA_MIN {
            return Some(start);
        }
    }
    None
}

/// Where to place injected syscall stubs in task `pid`.
pub fn exec_start(pid: i32) -> Result<u64, InfectError> {
    let maps = read_proc(pid, "maps")?;
    parse_exec_start(&maps).ok_or(InfectError::NoExecArea { pid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let text = "Name:\tsleep\nState:\tT (stopped)\nThreads:\t1\nSigQ:\t0/1\n\
                    SigPnd:\t0000000000000000\nShdPnd:\t0000000000000104\n\
                    SigBlk:\t0000000000010000\nSeccomp:\t2\n";
        let st = TaskStatus::parse(text).unwrap();
        assert_eq!(st.state, 'T');
        assert_eq!(st.threads, 1);
        assert_eq!(st.shared_pending, 0x104);
        assert_eq!(st.blocked, 0x10000);
        assert_eq!(st.seccomp, 2);
        assert!(st.is_pending(3));
        assert!(st.is_pending(9));
        assert!(!st.is_pending(5));
        assert!(TaskStatus::parse("Name:\tx\n").is_err());
        assert!(TaskStatus::parse("State:\tR\nSigPnd:\tzz\n").is_err());
    }

    #[test]
    fn exec_start_skips_special_and_small() {
        let maps = "\
5555000000-5555001000 r--p 00000000 08:01 12 /bin/x
5555001000-5555001800 r-xp 00001000 08:01 12 /bin/x
7fff0000-7fff2000 r-xp 00000000 00:00 0 [vdso]
7fff4000-7fff8000 r-xp 00000000 08:01 13 /lib/libc.so.6
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]
";
        assert_eq!(parse_exec_start(maps), Some(0x7fff4000));
        assert_eq!(parse_exec_start("7f-80 r--p 0 0:0 0\n"), None);
        let anon = "10000-20000 r-xp 00000000 00:00 0\n";
        assert_eq!(parse_exec_start(anon), Some(0x10000));
    }
}
