//! The plan's signals and timers step: every catchable signal's action,
//! the blocked mask, pending signals, interval and POSIX timers.

use super::{SIGKILL, SIGNAL_COUNT, SIGSTOP};
use crate::blob::restorer_abi::{ItimerArg, PosixTimerArg, SigactionArg, SiginfoArg};
use crate::images::pb;
use crate::restore::RestoreError;
use crate::restore::images::TaskImages;

/// A task's signal state and timers, as the restorer takes them.
pub(super) struct Signals {
    pub sigactions: Vec<SigactionArg>,
    pub itimers: Vec<ItimerArg>,
    pub posix: Vec<PosixTimerArg>,
    /// The main thread's blocked signals.
    pub sigmask: u64,
}

impl Signals {
    pub fn of(t: &TaskImages) -> Signals {
        let tc = t.core.tc.as_ref();
        let (itimers, posix) = timers(tc.and_then(|tc| tc.timers.as_ref()));
        let sigmask = t
            .core
            .thread_core
            .as_ref()
            .and_then(|tc| tc.blk_sigset)
            .or(tc.map(|tc| tc.blk_sigset))
            .unwrap_or(0);
        Signals {
            sigactions: sigactions(tc),
            itimers,
            posix,
            sigmask,
        }
    }
}

/// Signals: every catchable signal gets its dumped action (or SIG_DFL).
fn sigactions(tc: Option<&pb::TaskCoreEntry>) -> Vec<SigactionArg> {
    let dumped: Vec<&pb::SaEntry> = tc
        .map(|tc| tc.sigactions.iter().collect())
        .unwrap_or_default();
    let mut sigs = Vec::new();
    let mut idx = 0;
    for sig in 1..=SIGNAL_COUNT {
        if sig == SIGKILL || sig == SIGSTOP {
            continue;
        }
        let sa = dumped.get(idx);
        idx += 1;
        sigs.push(SigactionArg {
            sig,
            handler: sa.map_or(0, |s| s.sigaction),
            flags: sa.map_or(0, |s| s.flags),
            restorer: sa.map_or(0, |s| s.restorer),
            mask: sa.map_or(0, |s| s.mask),
        });
    }
    sigs
}

/// The interval timers (real, virtual, prof) and the POSIX timers, by id.
fn timers(tm: Option<&pb::TaskTimersEntry>) -> (Vec<ItimerArg>, Vec<PosixTimerArg>) {
    let mut itimers = Vec::new();
    let mut posix = Vec::new();
    let Some(tm) = tm else {
        return (itimers, posix);
    };
    let mut sorted: Vec<&pb::PosixTimerEntry> = tm.posix.iter().collect();
    sorted.sort_by_key(|p| p.it_id);
    for p in sorted {
        posix.push(PosixTimerArg {
            id: p.it_id as i32,
            clock: p.clock_id as i32,
            signo: p.si_signo as i32,
            notify: p.it_sigev_notify as i32,
            sival: p.sival_ptr,
            tid: p.notify_thread_id.unwrap_or(0),
            _pad: 0,
            interval_sec: p.isec,
            interval_nsec: p.insec,
            value_sec: p.vsec,
            value_nsec: p.vnsec,
        });
    }
    for (which, it) in [(0u64, &tm.real), (1, &tm.virt), (2, &tm.prof)] {
        // A periodic ITIMER_REAL that expired while its SIGALRM was
        // pending reads as 0 left (the kernel re-arms it only when the
        // signal is taken); setitimer with a zero value would disarm
        // it for good, so it gets a whole interval, as in CRIU.
        let (value_sec, value_usec) = match (it.vsec, it.vusec) {
            (0, 0) => (it.isec, it.iusec),
            v => v,
        };
        itimers.push(ItimerArg {
            which,
            interval_sec: it.isec,
            interval_usec: it.iusec,
            value_sec,
            value_usec,
        });
    }
    (itimers, posix)
}

/// Pending signals: process-wide ones (`tc.signals_s`) and the thread's own
/// (`thread_core.signals_p`).
pub(super) fn signals_arg(t: &TaskImages) -> Result<Vec<SiginfoArg>, RestoreError> {
    let shared = t.core.tc.as_ref().and_then(|tc| tc.signals_s.as_ref());
    let private = t
        .core
        .thread_core
        .as_ref()
        .and_then(|tc| tc.signals_p.as_ref());
    let file = format!("core-{}.img", t.pstree.pid);
    let mut out = siginfos(shared, 1, &file)?;
    out.extend(siginfos(private, 0, &file)?);
    Ok(out)
}

/// The signals of one dumped queue (`shared`: 1 for the process-wide one).
pub(super) fn siginfos(
    queue: Option<&pb::SignalQueueEntry>,
    shared: u32,
    file: &str,
) -> Result<Vec<SiginfoArg>, RestoreError> {
    let mut out = Vec::new();
    for s in queue.iter().flat_map(|q| q.signals.iter()) {
        let mut info = [0u8; 128];
        if s.siginfo.len() != info.len() {
            return Err(RestoreError::Invalid {
                file: file.to_string(),
                what: format!("a pending siginfo of {} bytes (want 128)", s.siginfo.len()),
            });
        }
        info.copy_from_slice(&s.siginfo);
        let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
        out.push(SiginfoArg {
            shared,
            signo,
            info,
        });
    }
    Ok(out)
}
