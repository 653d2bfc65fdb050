//! The notes of an ELF core file that every 64-bit arch lays out alike
//! (`include/linux/elfcore.h`, `struct elf_prstatus` and `struct
//! elf_prpsinfo` of a 64-bit kernel): `criu coredump` writes them. The
//! register set inside `elf_prstatus` is the arch's `GpRegs`.

use core::mem::{offset_of, size_of};

/// `NT_FILE`: the file mappings of a core file.
pub const NT_FILE: u32 = linux_raw_sys::elf_uapi::NT_FILE;

/// `struct elf_siginfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ElfSiginfo {
    pub signo: i32,
    pub code: i32,
    pub errno: i32,
}

/// `struct elf_prstatus` (NT_PRSTATUS of a core file): one thread's
/// status and its general registers `R` (the arch's `GpRegs`, whose size
/// is a multiple of 8 on every arch, so `fpvalid` and `pad1` end it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ElfPrstatus<R> {
    pub info: ElfSiginfo,
    /// The signal that stopped the thread (0: none).
    pub cursig: i16,
    pub pad0: u16,
    pub sigpend: u64,
    pub sighold: u64,
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    /// User, system, children's user and system time (`timeval`s).
    pub utime: [i64; 2],
    pub stime: [i64; 2],
    pub cutime: [i64; 2],
    pub cstime: [i64; 2],
    pub reg: R,
    pub fpvalid: i32,
    pub pad1: u32,
}
const _: () = assert!(offset_of!(ElfPrstatus<[u64; 27]>, cursig) == 12);
const _: () = assert!(offset_of!(ElfPrstatus<[u64; 27]>, sigpend) == 16);
const _: () = assert!(offset_of!(ElfPrstatus<[u64; 27]>, pid) == 32);
const _: () = assert!(offset_of!(ElfPrstatus<[u64; 27]>, utime) == 48);
const _: () = assert!(offset_of!(ElfPrstatus<[u64; 27]>, reg) == 112);
// x86_64 (27 registers): 336 bytes; aarch64 (34): 392; ppc64 (48): 504.
const _: () = assert!(size_of::<ElfPrstatus<[u64; 27]>>() == 336);
const _: () = assert!(size_of::<ElfPrstatus<[u64; 34]>>() == 392);
const _: () = assert!(size_of::<ElfPrstatus<[u64; 48]>>() == 504);

/// `ELF_PRARGSZ`: bytes of the command line in `elf_prpsinfo`.
pub const ELF_PRARGSZ: usize = 80;

/// `struct elf_prpsinfo` (NT_PRPSINFO of a core file).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfPrpsinfo {
    /// Numeric process state (0 running/sleeping, 3 stopped, 4 zombie).
    pub state: i8,
    /// The state as a letter (`"RSDTZW"[state]`).
    pub sname: u8,
    pub zomb: i8,
    pub nice: i8,
    pub pad0: u32,
    pub flag: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    /// `comm`, NUL-padded.
    pub fname: [u8; 16],
    /// The command line, arguments separated by spaces.
    pub psargs: [u8; ELF_PRARGSZ],
}
const _: () = assert!(offset_of!(ElfPrpsinfo, flag) == 8);
const _: () = assert!(offset_of!(ElfPrpsinfo, uid) == 16);
const _: () = assert!(offset_of!(ElfPrpsinfo, pid) == 24);
const _: () = assert!(offset_of!(ElfPrpsinfo, fname) == 40);
const _: () = assert!(offset_of!(ElfPrpsinfo, psargs) == 56);
const _: () = assert!(size_of::<ElfPrpsinfo>() == 136);

impl Default for ElfPrpsinfo {
    fn default() -> Self {
        ElfPrpsinfo {
            state: 0,
            sname: 0,
            zomb: 0,
            nice: 0,
            pad0: 0,
            flag: 0,
            uid: 0,
            gid: 0,
            pid: 0,
            ppid: 0,
            pgrp: 0,
            sid: 0,
            fname: [0; 16],
            psargs: [0; ELF_PRARGSZ],
        }
    }
}
