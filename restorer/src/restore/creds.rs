//! The credentials of a thread: ids, groups, capability sets (ambient
//! and bounding included) and securebits.

use criu_blob_rt::sys;

use super::{Fail, check};
use crate::abi;

/// Restores the credentials (CRIU's `restore_creds`, plus the ambient
/// set). The order matters, each step needing what a later one takes
/// away:
/// 1. keep every capability, effective ones included, across the uid
///    change (SECBIT_NO_SETUID_FIXUP alone: the dumped securebits may hold
///    locks, and are set at step 6);
/// 2. groups, gids, uids, fs ids;
/// 3. the inheritable set, while the bounding set is still whole (a
///    capability dropped from it cannot be added to the inheritable one);
/// 4. the ambient set, which needs each capability permitted and
///    inheritable, and no SECBIT_NO_CAP_AMBIENT_RAISE yet;
/// 5. drop bounding-set capabilities (needs CAP_SETPCAP);
/// 6. the dumped securebits (needs CAP_SETPCAP);
/// 7. the three capability sets, which may drop CAP_SETPCAP (the ambient
///    set stays: it is within the dumped permitted and inheritable sets).
///
/// A step that would change nothing is skipped: setting securebits,
/// groups or the bounding set needs privileges even to set what is
/// already there, and `--unprivileged` restores (where the task has the
/// tool's own credentials) have none of them.
pub(super) fn creds(c: &abi::CredsArg) -> Result<(), Fail> {
    const SECBIT_NO_SETUID_FIXUP: usize = 1 << 2;
    const PR_SET_DUMPABLE: usize = criu_arch::kernel::prctl::PR_SET_DUMPABLE as usize;
    if c.valid == 0 {
        return Ok(());
    }
    // Keep the capabilities across setresuid when it changes the uids
    // (from root to the task's); with the same uids nothing is lost.
    let mut uids = [0u32; 3];
    // SAFETY: getresuid writes three u32s into `uids`.
    unsafe {
        sys::getresuid(
            uids.as_mut_ptr() as usize,
            uids.as_mut_ptr().wrapping_add(1) as usize,
            uids.as_mut_ptr().wrapping_add(2) as usize,
        )
    };
    if uids != [c.uid, c.euid, c.suid] {
        set_securebits(SECBIT_NO_SETUID_FIXUP, 0)?;
    }
    ids(c)?;
    let now = capget();
    if now[2] != c.cap_inh[0] || now[5] != c.cap_inh[1] {
        capset(
            [now[0], now[1], c.cap_inh[0], now[3], now[4], c.cap_inh[1]],
            8,
        )?;
    }
    ambient(c)?;
    bounding(c)?;
    // The final securebits while CAP_SETPCAP is still ours, then the
    // capability sets, which may drop it.
    set_securebits(c.secbits as usize, 5)?;
    capset(
        [
            c.cap_eff[0],
            c.cap_prm[0],
            c.cap_inh[0],
            c.cap_eff[1],
            c.cap_prm[1],
            c.cap_inh[1],
        ],
        6,
    )?;
    // A child of a tool run from a file-capability binary (--unprivileged)
    // starts not dumpable, so not even its own user could trace it (nor
    // the tool cure it). With the task's own credentials in place and the
    // tool's capabilities gone, it is an ordinary task of its user again.
    // (A dumped "not dumpable" state is applied later, with the other
    // task attributes.)
    // SAFETY: integer arguments only (PR_SET_DUMPABLE, 1).
    check(unsafe { sys::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) }, 7)?;
    Ok(())
}

/// Groups, gids and uids (error indices 1 to 3).
fn ids(c: &abi::CredsArg) -> Result<(), Fail> {
    let n = (c.ngroups as usize).min(abi::MAX_GROUPS);
    if !same_groups(&c.groups[..n]) {
        check(
            // SAFETY: `groups` holds `n` live gids.
            unsafe { sys::setgroups(n, c.groups.as_ptr() as usize) },
            1,
        )?;
    }
    // SAFETY: integer arguments only.
    unsafe {
        check(
            sys::setresgid(c.gid as usize, c.egid as usize, c.sgid as usize),
            2,
        )?;
        // setfsgid/setfsuid return the previous value, never an error.
        sys::setfsgid(c.fsgid as usize);
        check(
            sys::setresuid(c.uid as usize, c.euid as usize, c.suid as usize),
            3,
        )?;
        sys::setfsuid(c.fsuid as usize);
    }
    Ok(())
}

/// Whether capability `cap` is set in the two-word set `set`.
fn has(set: &[u32; 2], cap: u32) -> bool {
    set.get((cap / 32) as usize)
        .is_some_and(|w| w & (1 << (cap % 32)) != 0)
}

/// Make the ambient set the dumped one, capability by capability (error
/// index 9).
fn ambient(c: &abi::CredsArg) -> Result<(), Fail> {
    use criu_arch::kernel::prctl::{
        PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_LOWER, PR_CAP_AMBIENT_RAISE,
    };
    const PR_CAP_AMBIENT: usize = criu_arch::kernel::prctl::PR_CAP_AMBIENT as usize;
    const IS_SET: usize = PR_CAP_AMBIENT_IS_SET as usize;
    const RAISE: usize = PR_CAP_AMBIENT_RAISE as usize;
    const LOWER: usize = PR_CAP_AMBIENT_LOWER as usize;
    for cap in 0..=c.cap_last.min(63) {
        let want = has(&c.cap_amb, cap);
        // SAFETY: integer arguments only.
        let now = unsafe { sys::prctl(PR_CAP_AMBIENT, IS_SET, cap as usize, 0, 0) } == 1;
        if want != now {
            let op = if want { RAISE } else { LOWER };
            check(
                // SAFETY: integer arguments only.
                unsafe { sys::prctl(PR_CAP_AMBIENT, op, cap as usize, 0, 0) },
                9,
            )?;
        }
    }
    Ok(())
}

/// Drop from the bounding set what the dumped one lacks (error index 4).
fn bounding(c: &abi::CredsArg) -> Result<(), Fail> {
    const PR_CAPBSET_READ: usize = criu_arch::kernel::prctl::PR_CAPBSET_READ as usize;
    const PR_CAPBSET_DROP: usize = criu_arch::kernel::prctl::PR_CAPBSET_DROP as usize;
    for cap in 0..=c.cap_last.min(63) {
        // SAFETY: integer arguments only.
        let have = unsafe { sys::prctl(PR_CAPBSET_READ, cap as usize, 0, 0, 0) } == 1;
        if have && !has(&c.cap_bnd, cap) {
            check(
                // SAFETY: integer arguments only.
                unsafe { sys::prctl(PR_CAPBSET_DROP, cap as usize, 0, 0, 0) },
                4,
            )?;
        }
    }
    Ok(())
}

const CAP_V3: u32 = criu_arch::kernel::general::_LINUX_CAPABILITY_VERSION_3;

/// This thread's capability sets as two `cap_user_data` structs:
/// effective, permitted, inheritable of word 0, then of word 1.
fn capget() -> [u32; 6] {
    let header: [u32; 2] = [CAP_V3, 0];
    let mut data = [0u32; 6];
    // SAFETY: `header` and `data` are a live cap_user_header and two
    // cap_user_data structs; capget of ourselves cannot fail.
    unsafe { sys::capget(header.as_ptr() as usize, data.as_mut_ptr() as usize) };
    data
}

/// `capset` of this thread (`data` as [`capget`] returns it).
fn capset(data: [u32; 6], index: u32) -> Result<(), Fail> {
    let header: [u32; 2] = [CAP_V3, 0];
    // SAFETY: `header` and `data` are a live cap_user_header and two
    // cap_user_data structs.
    check(
        unsafe { sys::capset(header.as_ptr() as usize, data.as_ptr() as usize) },
        index,
    )
    .map(drop)
}

/// `PR_SET_SECUREBITS` unless they are `bits` already.
fn set_securebits(bits: usize, index: u32) -> Result<(), Fail> {
    const PR_GET_SECUREBITS: usize = criu_arch::kernel::prctl::PR_GET_SECUREBITS as usize;
    const PR_SET_SECUREBITS: usize = criu_arch::kernel::prctl::PR_SET_SECUREBITS as usize;
    // SAFETY: integer arguments only.
    if unsafe { sys::prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) } == bits as isize {
        return Ok(());
    }
    // SAFETY: integer arguments only.
    check(
        unsafe { sys::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) },
        index,
    )
    .map(drop)
}

/// Whether the task's supplementary groups are `want` already.
fn same_groups(want: &[u32]) -> bool {
    let mut now = [0u32; abi::MAX_GROUPS];
    // SAFETY: getgroups writes at most MAX_GROUPS gids into `now`.
    let n = unsafe { sys::getgroups(abi::MAX_GROUPS, now.as_mut_ptr() as usize) };
    n >= 0 && now.get(..n as usize) == Some(want)
}
