//! A thread's seccomp state (CRIU's `restore_seccomp`), the very last
//! thing before `rt_sigreturn`.
//!
//! The thread runs this after the tool's go, while the tool traces it
//! with `PTRACE_O_SUSPEND_SECCOMP`: the filters it installs (and strict
//! mode) take effect only when the tool detaches. So nothing the
//! restorer or the tool still does (`rt_sigreturn`, the injected
//! `munmap` of the region) can be killed or refused by them, whatever
//! they filter. Its no_new_privs and credentials are already back, as the
//! dumped task had them when it installed its filters.

use criu_blob_rt::sys;

use super::{Fail, check, items};
use crate::abi::{self, SeccompArg, SeccompFilterArg};

const SECCOMP_SET_MODE_FILTER: usize = criu_arch::kernel::ptrace::SECCOMP_SET_MODE_FILTER as usize;
const PR_SET_SECCOMP: usize = criu_arch::kernel::prctl::PR_SET_SECCOMP as usize;

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: usize,
}

/// Installs `s`: the filters oldest first (`index`: the filter's place),
/// or strict mode.
pub(crate) fn seccomp(s: &SeccompArg) -> Result<(), Fail> {
    match s.mode {
        abi::SECCOMP_MODE_FILTER => {
            // SAFETY: the tool filled both lists.
            let filters = unsafe { items::<SeccompFilterArg>(&s.filters) };
            let mut at = s.insns.addr as usize;
            let end = at + s.insns.len as usize * 8;
            for (i, f) in filters.iter().enumerate() {
                let next = at + f.len as usize * 8;
                if f.len == 0 || f.len > u32::from(u16::MAX) || next > end {
                    return Err((-22, i as u32)); // EINVAL
                }
                let prog = SockFprog {
                    len: f.len as u16,
                    filter: at,
                };
                let ret = check(
                    // SAFETY: `prog` is live and points at `len`
                    // instructions inside the bootstrap region.
                    unsafe {
                        sys::seccomp(
                            SECCOMP_SET_MODE_FILTER,
                            f.flags as usize,
                            &prog as *const SockFprog as usize,
                        )
                    },
                    i as u32,
                )?;
                // TSYNC answers the TID of a thread it could not sync.
                if ret != 0 {
                    return Err((-16, i as u32)); // EBUSY
                }
                at = next;
            }
            Ok(())
        }
        abi::SECCOMP_MODE_STRICT => {
            // SAFETY: integer arguments only.
            check(
                unsafe { sys::prctl(PR_SET_SECCOMP, abi::SECCOMP_MODE_STRICT as usize, 0, 0, 0) },
                0,
            )
            .map(drop)
        }
        _ => Ok(()),
    }
}
