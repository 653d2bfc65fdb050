//! Per-task attributes set with prctl and friends: the name (comm), the
//! parent-death signal, dumpable = 0, child subreaper, no_new_privs, a
//! personality flag, and the scheduling policy (SCHED_BATCH) with nice 5.
//! After restore each must read back the same. (The timer slack is not
//! part of CRIU's images, so it is not checked.)
#[path = "lib.rs"]
mod zdtm;

use criu_arch::{nr, syscall1, syscall2, syscall3, syscall5};

const PR_SET_PDEATHSIG: usize = 1;
const PR_GET_PDEATHSIG: usize = 2;
const PR_GET_DUMPABLE: usize = 3;
const PR_SET_DUMPABLE: usize = 4;
const PR_SET_NAME: usize = 15;
const PR_GET_NAME: usize = 16;
const PR_SET_CHILD_SUBREAPER: usize = 36;
const PR_GET_CHILD_SUBREAPER: usize = 37;
const PR_SET_NO_NEW_PRIVS: usize = 38;
const PR_GET_NO_NEW_PRIVS: usize = 39;
const ADDR_NO_RANDOMIZE: usize = 0x0040000;
const ADDR_COMPAT_LAYOUT: usize = 0x0200000;
const SCHED_BATCH: usize = 3;
const PRIO_PROCESS: usize = 0;

const NAME: &[u8; 16] = b"zdtm-attrs-1234\0";
/// SIGWINCH: ignored by default, so the restore tool's exit (it is the
/// restored task's parent for a moment) does no harm when it fires.
const PDEATH_SIG: usize = criu_arch::sig::SIGWINCH;
const NICE: i32 = 5;

fn prctl(op: usize, arg: usize, what: &str) -> Result<usize, String> {
    // SAFETY: integer arguments, or for the name ops a live 16-byte buffer.
    let ret = unsafe { syscall5(nr::PRCTL, op, arg, 0, 0, 0) };
    zdtm::errno(ret, what)
}

/// prctl GET ops that write an int through their argument.
fn prctl_int(op: usize, what: &str) -> Result<i32, String> {
    let mut v: i32 = -1;
    prctl(op, &mut v as *mut i32 as usize, what)?;
    Ok(v)
}

fn personality(p: usize) -> Result<usize, String> {
    // SAFETY: integer argument only.
    zdtm::errno(unsafe { syscall1(nr::PERSONALITY, p) }, "personality")
}

/// Everything compared, read from the kernel.
#[derive(Debug, PartialEq, Eq)]
struct Attrs {
    name: String,
    pdeath_sig: i32,
    dumpable: usize,
    subreaper: i32,
    no_new_privs: usize,
    personality: usize,
    policy: usize,
    nice: i32,
}

fn read() -> Result<Attrs, String> {
    let mut name = [0u8; 16];
    prctl(PR_GET_NAME, name.as_mut_ptr() as usize, "PR_GET_NAME")?;
    // SAFETY: integer arguments only (sched_getscheduler(0),
    // getpriority(PRIO_PROCESS, 0), which returns 20 - nice).
    let (policy, prio) = unsafe {
        (
            syscall1(nr::SCHED_GETSCHEDULER, 0),
            syscall2(nr::GETPRIORITY, PRIO_PROCESS, 0),
        )
    };
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(Attrs {
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
        pdeath_sig: prctl_int(PR_GET_PDEATHSIG, "PR_GET_PDEATHSIG")?,
        dumpable: prctl(PR_GET_DUMPABLE, 0, "PR_GET_DUMPABLE")?,
        subreaper: prctl_int(PR_GET_CHILD_SUBREAPER, "PR_GET_CHILD_SUBREAPER")?,
        no_new_privs: prctl(PR_GET_NO_NEW_PRIVS, 0, "PR_GET_NO_NEW_PRIVS")?,
        personality: personality(0xffff_ffff)?,
        policy: zdtm::errno(policy, "sched_getscheduler")?,
        nice: 20 - zdtm::errno(prio, "getpriority")? as i32,
    })
}

fn setup() -> Result<Attrs, String> {
    prctl(PR_SET_NAME, NAME.as_ptr() as usize, "PR_SET_NAME")?;
    prctl(PR_SET_PDEATHSIG, PDEATH_SIG, "PR_SET_PDEATHSIG")?;
    prctl(PR_SET_CHILD_SUBREAPER, 1, "PR_SET_CHILD_SUBREAPER")?;
    let old = personality(0xffff_ffff)?;
    personality(old | ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT)?;
    let param: i32 = 0;
    // SAFETY: `param` is a live struct sched_param.
    let ret = unsafe {
        syscall3(
            nr::SCHED_SETSCHEDULER,
            0,
            SCHED_BATCH,
            &param as *const i32 as usize,
        )
    };
    zdtm::errno(ret, "sched_setscheduler(SCHED_BATCH)")?;
    // SAFETY: integer arguments only.
    let ret = unsafe { syscall3(nr::SETPRIORITY, PRIO_PROCESS, 0, NICE as usize) };
    zdtm::errno(ret, "setpriority")?;
    prctl(PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")?;
    prctl(PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")?;
    let a = read()?;
    let want = Attrs {
        name: "zdtm-attrs-1234".into(),
        pdeath_sig: PDEATH_SIG as i32,
        dumpable: 0,
        subreaper: 1,
        no_new_privs: 1,
        personality: old | ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT,
        policy: SCHED_BATCH,
        nice: NICE,
    };
    zdtm::ensure(a == want, || format!("setup: {a:?}, want {want:?}"))?;
    Ok(a)
}

fn check(before: Attrs) -> Result<(), String> {
    let now = read()?;
    zdtm::ensure(now == before, || {
        format!("after restore {now:?}, before the dump {before:?}")
    })
}

fn main() {
    zdtm::run(|_| setup(), |_| {}, check);
}
