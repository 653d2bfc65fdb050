//! Building `core-<pid>.img` from what /proc, ptrace and the parasite said.

use crate::blob::parasite_abi::{Creds, ItimersArgs, PosixTimer, SigactsArgs, ThreadArgs};
use crate::images::pb;
use crate::proc::timers::PosixTimer as ProcTimer;

/// `task_state` values (criu/include/task-entries.h / `TASK_*`).
pub const TASK_ALIVE: u32 = 1;
pub const TASK_STOPPED: u32 = 3;

/// NUL-terminated name from a fixed buffer.
pub fn comm_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

pub fn creds_entry(c: &Creds) -> pb::CredsEntry {
    // CRIU stores as many capability words as the kernel's last cap needs.
    let words = (c.cap_last as usize).div_ceil(32).clamp(1, 2);
    let n = (c.ngroups as usize).min(c.groups.len());
    pb::CredsEntry {
        uid: c.uids[0],
        euid: c.uids[1],
        suid: c.uids[2],
        fsuid: c.uids[3],
        gid: c.gids[0],
        egid: c.gids[1],
        sgid: c.gids[2],
        fsgid: c.gids[3],
        cap_inh: c.cap_inh[..words].to_vec(),
        cap_prm: c.cap_prm[..words].to_vec(),
        cap_eff: c.cap_eff[..words].to_vec(),
        cap_bnd: c.cap_bnd[..words].to_vec(),
        cap_amb: c.cap_amb[..words].to_vec(),
        secbits: c.secbits,
        groups: c.groups[..n].to_vec(),
        no_new_privs: Some(c.no_new_privs),
        ..Default::default()
    }
}

pub fn sa_entries(acts: &SigactsArgs) -> Vec<pb::SaEntry> {
    acts.acts
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let sig = i + 1;
            sig != criu_arch::sig::SIGKILL && sig != criu_arch::sig::SIGSTOP
        })
        .map(|(_, a)| pb::SaEntry {
            sigaction: a.handler,
            flags: a.flags,
            restorer: a.restorer,
            mask: a.mask,
            compat_sigaction: Some(false),
            mask_extended: None,
        })
        .collect()
}

pub fn timers_entry(it: &ItimersArgs, posix: &[(ProcTimer, PosixTimer)]) -> pb::TaskTimersEntry {
    let itimer = |t: &crate::blob::parasite_abi::Itimerval| pb::ItimerEntry {
        isec: t.interval_sec as u64,
        iusec: t.interval_usec as u64,
        vsec: t.value_sec as u64,
        vusec: t.value_usec as u64,
    };
    pb::TaskTimersEntry {
        real: itimer(&it.timers[0]),
        virt: itimer(&it.timers[1]),
        prof: itimer(&it.timers[2]),
        posix: posix
            .iter()
            .map(|(p, t)| pb::PosixTimerEntry {
                it_id: p.id as u32,
                clock_id: p.clock_id as u32,
                si_signo: p.signo as u32,
                it_sigev_notify: p.sigev_notify as u32,
                sival_ptr: p.sival_ptr,
                overrun: t.overrun as u32,
                isec: t.interval_sec as u64,
                insec: t.interval_nsec as u64,
                vsec: t.value_sec as u64,
                vnsec: t.value_nsec as u64,
                notify_thread_id: (p.notify_pid != 0).then_some(p.notify_pid),
            })
            .collect(),
    }
}

pub fn sas_entry(t: &ThreadArgs) -> pb::ThreadSasEntry {
    pb::ThreadSasEntry {
        ss_sp: t.sas_sp,
        ss_size: t.sas_size,
        ss_flags: t.sas_flags as u32,
    }
}

/// Why `/proc/PID/limits` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("bad limit {value:?}: {source}")]
    Value {
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("bad limits line {0:?}")]
    Line(String),
    #[error("{0} limits instead of 16")]
    Count(usize),
}

/// `/proc/PID/limits` into 16 `rlimit_entry`s (RLIMIT_CPU..RLIMIT_RTTIME,
/// the order the kernel prints them in).
pub fn parse_limits(text: &str) -> Result<Vec<pb::RlimitEntry>, LimitsError> {
    let value = |v: &str| -> Result<u64, LimitsError> {
        if v == "unlimited" {
            Ok(u64::MAX)
        } else {
            v.parse().map_err(|source| LimitsError::Value {
                value: v.to_string(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        // "Max cpu time   unlimited   unlimited   seconds": the name has
        // spaces, the two values are the first numeric/unlimited words.
        let words: Vec<&str> = line.split_whitespace().collect();
        let vals: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| *w == "unlimited" || w.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        if vals.len() < 2 {
            return Err(LimitsError::Line(line.to_string()));
        }
        out.push(pb::RlimitEntry {
            cur: value(vals[0])?,
            max: value(vals[1])?,
        });
    }
    if out.len() != 16 {
        return Err(LimitsError::Count(out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_of_self() {
        let text = std::fs::read_to_string("/proc/self/limits").unwrap();
        let l = parse_limits(&text).unwrap();
        assert_eq!(l.len(), 16);
        assert_eq!(comm_string(b"ab\0cd"), "ab");
    }
}
