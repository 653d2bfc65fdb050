//! prctl-level task attributes for the restorer: personality, scheduling
//! policy/priority/nice, child subreaper, parent-death signal,
//! no_new_privs and dumpable, from `core-N.img` and `mm-N.img` (where
//! CRIU keeps them).

use crate::blob::restorer_abi::{
    ATTR_DUMPABLE, ATTR_NO_NEW_PRIVS, ATTR_PDEATH_SIG, ATTR_PERSONALITY, ATTR_SCHED,
    ATTR_SUBREAPER, TaskAttrsArg,
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
    }
    per_thread(&mut a, &t.core);
    match t.mm.dumpable {
        Some(d @ 0..=SUID_DUMP_USER) => {
            a.has |= ATTR_DUMPABLE;
            a.dumpable = d as u32;
        }
        Some(d) => crate::pr_warn!("dumpable {d} cannot be set again; the kernel's default stays"),
        None => {}
    }
    a
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
