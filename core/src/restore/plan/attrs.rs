//! The plan's task attributes: credentials, rlimits, name, rseq, the
//! robust futex list and the alternate signal stack, per thread.

use crate::blob::restorer_abi::MAX_GROUPS;
use crate::blob::restorer_abi::{CredsArg, RawSyscall, RlimitArg, RseqArg};
use crate::images::pb;
use crate::restore::RestoreError;
use crate::restore::images::TaskImages;
use crate::restore::regs;

/// The thread's alternate signal stack comes back with rt_sigreturn. (A
/// disabled one stays disabled: the frame already says so.)
pub(super) fn set_altstack(frame: &mut regs::Frame, core: &pb::CoreEntry) {
    let sas = core.thread_core.as_ref().and_then(|tc| tc.sas.as_ref());
    if let Some(sas) =
        sas.filter(|s| s.ss_flags & criu_arch::SS_DISABLE as u32 == 0 && s.ss_size != 0)
    {
        frame.frame.set_altstack(criu_arch::StackT {
            sp: sas.ss_sp,
            flags: sas.ss_flags as i32,
            _pad: 0,
            size: sas.ss_size,
        });
    }
}

/// `set_robust_list(head, len)` of a thread that had one (glibc registers
/// it in every thread; the kernel walks it when the thread exits).
pub(super) fn robust_list_call(core: &pb::CoreEntry) -> Vec<RawSyscall> {
    match core.thread_core.as_ref() {
        Some(tc) if tc.futex_rla != 0 => vec![RawSyscall {
            nr: criu_arch::nr::SET_ROBUST_LIST as u64,
            args: [tc.futex_rla, u64::from(tc.futex_rla_len), 0, 0, 0, 0],
        }],
        _ => Vec::new(),
    }
}

/// A thread's dumped credentials (`thread_core.creds`) for the restorer.
pub(super) fn creds_arg(core: &pb::CoreEntry, file: &str) -> Result<CredsArg, RestoreError> {
    let Some(c) = core.thread_core.as_ref().and_then(|tc| tc.creds.as_ref()) else {
        return Ok(CredsArg::default());
    };
    check_lsm_label(c, file)?;
    if c.groups.len() > MAX_GROUPS {
        return Err(RestoreError::Unsupported(format!(
            "{file}: {} supplementary groups (at most {MAX_GROUPS} are restored)",
            c.groups.len()
        )));
    }
    let two = |v: &[u32]| {
        [
            v.first().copied().unwrap_or(0),
            v.get(1).copied().unwrap_or(0),
        ]
    };
    let mut groups = [0u32; MAX_GROUPS];
    groups[..c.groups.len()].copy_from_slice(&c.groups);
    let cap_last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    Ok(CredsArg {
        valid: 1,
        uid: c.uid,
        euid: c.euid,
        suid: c.suid,
        fsuid: c.fsuid,
        gid: c.gid,
        egid: c.egid,
        sgid: c.sgid,
        fsgid: c.fsgid,
        secbits: c.secbits,
        ngroups: c.groups.len() as u32,
        groups,
        cap_eff: two(&c.cap_eff),
        cap_prm: two(&c.cap_prm),
        cap_inh: two(&c.cap_inh),
        cap_bnd: two(&c.cap_bnd),
        cap_amb: two(&c.cap_amb),
        cap_last,
    })
}

/// The restorer does not set LSM labels: a restored task keeps criu's.
/// A label in the images (`creds.lsm_profile`, `lsm_sockcreate`) that is
/// not criu's own would be lost, so it is refused.
fn check_lsm_label(c: &pb::CredsEntry, file: &str) -> Result<(), RestoreError> {
    use crate::proc::lsm::{Lsm, profile_for_image};
    let lsm = Lsm::active();
    let ours = crate::proc::ProcDir::open_self()
        .and_then(|me| me.lsm_label(lsm))
        .ok()
        .flatten()
        .and_then(|l| profile_for_image(lsm, &l));
    if let Some(p) = &c.lsm_profile
        && Some(p) != ours.as_ref()
    {
        return Err(RestoreError::Unsupported(format!(
            "{file}: the task ran under the LSM label {p:?} ({}), which a restore cannot \
             set yet (criu runs under {:?})",
            lsm.name(),
            ours.unwrap_or_default()
        )));
    }
    if let Some(p) = c.lsm_sockcreate.as_ref().filter(|p| !p.is_empty()) {
        return Err(RestoreError::Unsupported(format!(
            "{file}: the task creates its sockets under the LSM label {p:?}, which a \
             restore cannot set yet"
        )));
    }
    Ok(())
}

/// The dumped rlimits, indexed by resource number.
pub(super) fn rlimits_arg(t: &TaskImages) -> Vec<RlimitArg> {
    let Some(rl) = t.core.tc.as_ref().and_then(|tc| tc.rlimits.as_ref()) else {
        return Vec::new();
    };
    rl.rlimits
        .iter()
        .enumerate()
        .map(|(i, r)| RlimitArg {
            resource: i as u64,
            cur: r.cur,
            max: r.max,
        })
        .collect()
}

/// The task name, NUL-terminated within 16 bytes (the kernel's TASK_COMM_LEN).
pub(super) fn comm_arg(core: &pb::CoreEntry) -> [u8; 16] {
    let name = core
        .thread_core
        .as_ref()
        .and_then(|tc| tc.comm.as_deref())
        .or(core.tc.as_ref().map(|tc| tc.comm.as_str()))
        .unwrap_or("");
    let mut comm = [0u8; 16];
    for (d, s) in comm.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    comm
}

/// The task's own rseq area, registered again right before it resumes.
pub(super) fn rseq_arg(core: &pb::CoreEntry) -> RseqArg {
    match core
        .thread_core
        .as_ref()
        .and_then(|tc| tc.rseq_entry.as_ref())
    {
        Some(r) if r.rseq_abi_pointer != 0 => RseqArg {
            addr: r.rseq_abi_pointer,
            len: r.rseq_abi_size,
            sig: r.signature,
        },
        _ => RseqArg::default(),
    }
}
