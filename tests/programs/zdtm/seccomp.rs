//! A task under a seccomp filter (one that allows everything, installed
//! with no_new_privs). Dump does not handle seccomp yet and must refuse
//! the task before touching it; the program then finds its filter and
//! no_new_privs still in place and its state unchanged.
#[path = "lib.rs"]
mod zdtm;

use criu_arch::{nr, syscall3, syscall5};
use zdtm::{ensure, errno};

const PR_SET_NO_NEW_PRIVS: usize = 38;
const PR_GET_NO_NEW_PRIVS: usize = 39;
const SECCOMP_SET_MODE_FILTER: usize = 1;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// `struct sock_filter` (in native byte order).
#[repr(C)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

fn status(field: &str) -> Result<String, String> {
    let text = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no {field} in status"))
}

fn main() {
    zdtm::run(
        |_| {
            errno(
                // SAFETY: integer arguments only.
                unsafe { syscall5(nr::PRCTL, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
                "PR_SET_NO_NEW_PRIVS",
            )?;
            // One instruction: return SECCOMP_RET_ALLOW.
            let insn = SockFilter {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k: SECCOMP_RET_ALLOW,
            };
            let prog = SockFprog {
                len: 1,
                filter: &insn,
            };
            errno(
                // SAFETY: `prog` points at one live sock_filter for the call.
                unsafe {
                    syscall3(
                        nr::SECCOMP,
                        SECCOMP_SET_MODE_FILTER,
                        0,
                        &prog as *const SockFprog as usize,
                    )
                },
                "seccomp",
            )?;
            Ok(())
        },
        |_| {},
        |()| {
            ensure(status("Seccomp:")? == "2", || {
                "seccomp filter mode lost".into()
            })?;
            ensure(status("Seccomp_filters:")? == "1", || {
                "filter count changed".into()
            })?;
            // SAFETY: integer arguments only.
            let nnp = unsafe { syscall5(nr::PRCTL, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
            ensure(nnp == 1, || format!("no_new_privs is {nnp}"))
        },
    );
}
