//! prctl-level task attributes for the restorer: personality, scheduling
//! policy/priority/nice, child subreaper, parent-death signal,
//! no_new_privs, dumpable, the THP-disable flag, membarrier
//! registrations, oom_score_adj and loginuid, from `core-N.img` and
//! `mm-N.img` (where CRIU keeps them).

use crate::blob::restorer_abi::{
    ATTR_DUMPABLE, ATTR_LOGINUID, ATTR_MEMBARRIER, ATTR_NO_NEW_PRIVS, ATTR_OOM_SCORE_ADJ,
    ATTR_PDEATH_SIG, ATTR_PERSONALITY, ATTR_SCHED, ATTR_SUBREAPER, ATTR_THP_DISABLE, TaskAttrsArg,
};

use super::images::TaskImages;
use crate::images::pb;

/// `SUID_DUMP_USER`: the highest value `PR_SET_DUMPABLE` accepts (2,
/// "root only", is set by the kernel alone and cannot be given back).
const SUID_DUMP_USER: i32 = 1;

/// The attributes the images carry, each with its `ATTR_*` bit.
pub fn arg(t: &TaskImages) -> TaskAttrsArg {
    let mut a = TaskAttrsArg::default();
    if let Some(tc) = t.core.tc.as_ref() {
        a.has |= ATTR_PERSONALITY;
        a.personality = crate::images::personality::from_image(tc.personality);
        if tc.child_subreaper == Some(true) {
            a.has |= ATTR_SUBREAPER;
            a.child_subreaper = 1;
        }
        if let Some(mask) = tc.membarrier_registration_mask.filter(|&m| m != 0) {
            a.has |= ATTR_MEMBARRIER;
            a.membarrier = mask;
        }
        // Written only when it differs from the tool's (which the task
        // inherits: its children are forked before it writes its own): an
        // --unprivileged restore's task cannot open its /proc files yet.
        if let Some(adj) = tc.oom_score_adj
            && own_oom_score_adj() != Some(adj)
        {
            a.has |= ATTR_OOM_SCORE_ADJ;
            a.oom_score_adj = decimal(i64::from(adj));
        }
        // Written only when it differs from the tool's (which the task
        // inherits): changing a set loginuid needs CAP_AUDIT_CONTROL.
        // An unset one on a host without audit support is as good as
        // unset.
        let own = own_loginuid();
        if let Some(uid) = tc.loginuid
            && own != Some(uid)
            && !(own.is_none() && uid == u32::MAX)
        {
            a.has |= ATTR_LOGINUID;
            a.loginuid = decimal(i64::from(uid));
        }
    }
    if let Some(off) = t.mm.thp_disabled {
        // Always set: the task inherits the tool's flag.
        a.has |= ATTR_THP_DISABLE;
        a.thp_disabled = u32::from(off);
    }
    per_thread(&mut a, &t.core);
    match t.mm.dumpable {
        Some(d @ 0..=SUID_DUMP_USER) => {
            a.has |= ATTR_DUMPABLE;
            a.dumpable = d as u32;
        }
        // SUID_DUMP_ROOT (a setuid program under fs.suid_dumpable=2) is
        // the kernel's to set: as CRIU does, the task falls back to "not
        // dumpable", which keeps its /proc files and memory from its user
        // as 2 does (the credentials' step leaves it dumpable otherwise).
        Some(d) => {
            crate::pr_warn!("dumpable {d} cannot be set again; the task is made not dumpable");
            a.has |= ATTR_DUMPABLE;
            a.dumpable = 0;
        }
        None => {}
    }
    a
}

/// The tool's own loginuid (which a restored task inherits); `None`
/// without audit support (no such file). An unset one reads as
/// `(uid_t)-1`, as the image stores it.
fn own_loginuid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The tool's own oom_score_adj (which a restored task inherits).
fn own_oom_score_adj() -> Option<i32> {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// `v` as NUL-padded decimal text.
fn decimal(v: i64) -> [u8; 12] {
    let mut out = [0u8; 12];
    let text = v.to_string();
    let n = text.len().min(out.len());
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

/// The attributes of one non-leader thread (each thread has its own
/// scheduling, parent-death signal and no_new_privs).
pub fn thread_arg(core: &pb::CoreEntry) -> TaskAttrsArg {
    let mut a = TaskAttrsArg::default();
    per_thread(&mut a, core);
    a
}

/// The attributes kept per thread, from its `thread_core`.
fn per_thread(a: &mut TaskAttrsArg, core: &pb::CoreEntry) {
    let Some(th) = core.thread_core.as_ref() else {
        return;
    };
    if let (Some(policy), Some(nice)) = (th.sched_policy, th.sched_nice) {
        a.has |= ATTR_SCHED;
        a.sched_policy = policy;
        a.sched_prio = th.sched_prio.unwrap_or(0);
        a.sched_nice = nice;
    }
    if let Some(sig) = th.pdeath_sig.filter(|&s| s != 0) {
        a.has |= ATTR_PDEATH_SIG;
        a.pdeath_sig = sig;
    }
    if th
        .creds
        .as_ref()
        .and_then(|c| c.no_new_privs)
        .is_some_and(|n| n != 0)
    {
        a.has |= ATTR_NO_NEW_PRIVS;
    }
}
