//! Per-task state only ptrace reads: the robust futex list, x86 TLS
//! entries, rseq, the syscall a stop is at, seccomp filters and hardware
//! breakpoints.

use std::mem::size_of;

use linux_raw_sys::ptrace as raw;
use rustix::io::Errno;
use rustix::process::Pid;

use super::ptrace;

/// `get_robust_list(pid)`: the head of the task's robust futex list and the
/// length the task registered.
pub fn get_robust_list(pid: Pid) -> Result<(u64, u64), Errno> {
    let mut head: u64 = 0;
    let mut len: u64 = 0;
    // SAFETY: the kernel stores one pointer-sized word through each of the
    // two pointers, both to our locals.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::GET_ROBUST_LIST,
            pid.as_raw_nonzero().get() as usize,
            &mut head as *mut u64 as usize,
            &mut len as *mut u64 as usize,
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    Ok((head, len))
}

/// `PTRACE_GET_THREAD_AREA` (x86): the `struct user_desc` of GDT TLS entry
/// `index` as four words (entry_number, base_addr, limit, flag bits).
#[cfg(target_arch = "x86_64")]
pub fn get_thread_area(pid: Pid, index: u32) -> Result<[u32; 4], Errno> {
    use raw::PTRACE_GET_THREAD_AREA;
    let mut desc = [0u32; 4];
    // SAFETY: the kernel writes one 16-byte user_desc to our local.
    unsafe {
        ptrace(
            PTRACE_GET_THREAD_AREA,
            pid,
            index as usize,
            desc.as_mut_ptr() as usize,
        )?
    };
    Ok(desc)
}

/// `struct ptrace_rseq_configuration`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqConfig {
    pub rseq_abi_pointer: u64,
    pub rseq_abi_size: u32,
    pub signature: u32,
    pub flags: u32,
    pub pad: u32,
}
const _: () = assert!(size_of::<RseqConfig>() == 24);

/// `PTRACE_GET_RSEQ_CONFIGURATION` (Linux 5.13+): the task's registered rseq
/// area; `rseq_abi_pointer == 0` when none.
pub fn get_rseq_config(pid: Pid) -> Result<RseqConfig, Errno> {
    use raw::PTRACE_GET_RSEQ_CONFIGURATION;
    let mut conf = RseqConfig::default();
    // SAFETY: the kernel writes at most `addr` (= 24) bytes to our local.
    unsafe {
        ptrace(
            PTRACE_GET_RSEQ_CONFIGURATION,
            pid,
            size_of::<RseqConfig>(),
            &mut conf as *mut RseqConfig as usize,
        )?
    };
    Ok(conf)
}

/// [`get_rseq_config`] for dumping: `None` only where the kernel predates
/// the request (before Linux 5.13 it answers `EIO` to an unknown request);
/// on a newer kernel a failure is a failure, not "no rseq".
pub fn rseq_config_for_dump(pid: Pid) -> Result<Option<RseqConfig>, Errno> {
    match get_rseq_config(pid) {
        Ok(c) => Ok(Some(c)),
        Err(Errno::IO) if !kernel_at_least(5, 13) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// What `PTRACE_GET_SYSCALL_INFO` says about a syscall stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallInfo {
    /// Entering syscall `nr`; `ip` is the address after the syscall
    /// instruction.
    Entry { nr: u64, ip: u64 },
    /// Leaving a syscall with result `rval` (`-errno` on failure).
    Exit { rval: i64 },
    /// Not a syscall stop (or a seccomp stop).
    Other,
}

const _: () = assert!(size_of::<raw::ptrace_syscall_info>() == 88);
const _: () = assert!(std::mem::offset_of!(raw::ptrace_syscall_info, instruction_pointer) == 8);
const _: () = assert!(std::mem::offset_of!(raw::ptrace_syscall_info, __bindgen_anon_1) == 24);

/// `PTRACE_GET_SYSCALL_INFO` (Linux 5.3): whether the tracee stopped at a
/// syscall's entry or exit, and with what. The struct is read as words:
/// `op` is byte 0, the instruction pointer word 1, and the union (entry
/// `nr` or exit `rval`) starts at word 3.
pub fn get_syscall_info(pid: Pid) -> Result<SyscallInfo, Errno> {
    let mut words = [0u64; 11];
    // SAFETY: the kernel writes at most `size` (88) bytes into our local
    // buffer of exactly that size.
    unsafe {
        ptrace(
            raw::PTRACE_GET_SYSCALL_INFO,
            pid,
            size_of_val(&words),
            words.as_mut_ptr() as usize,
        )?
    };
    let op = words[0].to_ne_bytes()[0] as u32;
    Ok(match op {
        raw::PTRACE_SYSCALL_INFO_ENTRY => SyscallInfo::Entry {
            nr: words[3],
            ip: words[1],
        },
        raw::PTRACE_SYSCALL_INFO_EXIT => SyscallInfo::Exit {
            rval: words[3] as i64,
        },
        _ => SyscallInfo::Other,
    })
}

/// `PTRACE_SECCOMP_GET_FILTER` with no buffer: the number of instructions
/// of the tracee's seccomp filter `index` (0 is the oldest, the first
/// installed; `ENOENT` past the newest).
pub fn seccomp_filter_len(pid: Pid, index: usize) -> Result<usize, Errno> {
    // SAFETY: with a NULL buffer the kernel only returns the length.
    unsafe { ptrace(raw::PTRACE_SECCOMP_GET_FILTER, pid, index, 0) }
}

/// Most instructions of one classic-BPF program (`BPF_MAXINSNS`).
const BPF_MAXINSNS: usize = 4096;

/// `PTRACE_SECCOMP_GET_FILTER`: the instructions of the tracee's seccomp
/// filter `index` (numbered as [`seccomp_filter_len`]), each
/// `struct sock_filter` as its 8 native-order bytes.
pub fn seccomp_filter(pid: Pid, index: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u64; BPF_MAXINSNS];
    // SAFETY: the kernel writes at most BPF_MAXINSNS 8-byte instructions
    // (a filter is never longer) into our buffer of that many words.
    let n = unsafe {
        ptrace(
            raw::PTRACE_SECCOMP_GET_FILTER,
            pid,
            index,
            buf.as_mut_ptr() as usize,
        )?
    };
    buf.truncate(n.min(BPF_MAXINSNS));
    Ok(buf.iter().flat_map(|w| w.to_ne_bytes()).collect())
}

/// `PTRACE_SECCOMP_GET_METADATA`: the `SECCOMP_FILTER_FLAG_*` flags the
/// tracee's filter `index` was installed with (those the kernel keeps:
/// LOG).
pub fn seccomp_filter_flags(pid: Pid, index: usize) -> Result<u64, Errno> {
    let mut meta = raw::seccomp_metadata {
        filter_off: index as u64,
        flags: 0,
    };
    // SAFETY: the kernel reads filter_off from and writes flags into our
    // local, whose size it is given.
    unsafe {
        ptrace(
            raw::PTRACE_SECCOMP_GET_METADATA,
            pid,
            size_of::<raw::seccomp_metadata>(),
            &mut meta as *mut raw::seccomp_metadata as usize,
        )?
    };
    Ok(meta.flags)
}

/// x86: offset of `u_debugreg[0]` in the kernel's `struct user`
/// (`arch/x86/include/asm/user_64.h`), the address `PTRACE_POKEUSER`
/// takes for debug register N at `+ 8 * N`.
#[cfg(target_arch = "x86_64")]
const X86_DEBUGREG_OFFSET: usize = 848;

/// Whether a hardware breakpoint can be armed in the tracee: x86 writes
/// an execute breakpoint at `addr` into DR0/DR7 (`PTRACE_POKEUSER`) and
/// reads DR7 back, then disarms it; arm64 asks how many breakpoint slots
/// `NT_ARM_HW_BREAK` has. Other arches: `Ok(false)` (CRIU uses hardware
/// breakpoints only on these two).
pub fn hw_breakpoint_works(pid: Pid, addr: u64) -> Result<bool, Errno> {
    #[cfg(target_arch = "x86_64")]
    {
        let dr = |n: usize| X86_DEBUGREG_OFFSET + 8 * n;
        // DR7: L0 (local enable of DR0), RW0 = 00 (execute), LEN0 = 00.
        const DR7_L0: usize = 1;
        // SAFETY: POKEUSER of a debug register slot of the tracee's
        // `struct user`; no memory of ours is touched.
        unsafe { ptrace(raw::PTRACE_POKEUSR, pid, dr(0), addr as usize)? };
        // SAFETY: as above, DR7.
        unsafe { ptrace(raw::PTRACE_POKEUSR, pid, dr(7), DR7_L0)? };
        let mut dr7 = 0usize;
        // SAFETY: PEEKUSER through the raw syscall stores one word at
        // `data`, which points to `dr7`, a live usize of ours.
        let peeked = unsafe {
            ptrace(
                raw::PTRACE_PEEKUSR,
                pid,
                dr(7),
                &mut dr7 as *mut usize as usize,
            )
        };
        // SAFETY: POKEUSER of DR7 in the tracee only (disarms it).
        let _ = unsafe { ptrace(raw::PTRACE_POKEUSR, pid, dr(7), 0) };
        peeked?;
        Ok(dr7 & DR7_L0 == DR7_L0)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let _ = addr;
        // struct user_hwdebug_state: dbg_info (u32; low byte: slots), pad,
        // then 16 slots of {addr u64, ctrl u32, pad u32}.
        let regs = super::get_optional_regset(pid, linux_raw_sys::elf_uapi::NT_ARM_HW_BREAK, 264)?;
        Ok(regs.is_some_and(|r| r.len() >= 4 && r[0] > 0))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (pid, addr);
        Ok(false)
    }
}
