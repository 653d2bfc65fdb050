//! Code written at run time runs after `flush_icache` (the blob loader's
//! path): map a page, write a tiny `return 42` function, make it
//! executable, flush, call it. Also checks `sys_mmap` on every arch.

use criu_arch::{flush_icache, nr, sys_mmap, syscall2, syscall3};

#[cfg(target_arch = "x86_64")]
const RET42: &[u8] = &[0xb8, 0x2a, 0, 0, 0, 0xc3]; // mov eax, 42; ret
#[cfg(target_arch = "aarch64")]
const RET42: &[u8] = &[0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6]; // mov w0, #42; ret
#[cfg(target_arch = "powerpc64")]
const RET42: &[u8] = &[0x2a, 0x00, 0x60, 0x38, 0x20, 0x00, 0x80, 0x4e]; // li r3, 42; blr
#[cfg(target_arch = "s390x")]
const RET42: &[u8] = &[0xa7, 0x29, 0x00, 0x2a, 0x07, 0xfe]; // lghi %r2, 42; br %r14

#[test]
fn generated_code_runs_after_flush() {
    const PROT_READ: usize = 1;
    const PROT_WRITE: usize = 2;
    const PROT_EXEC: usize = 4;
    const MAP_PRIVATE: usize = 2;
    const MAP_ANONYMOUS: usize = 0x20;
    let len = 65536;
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        sys_mmap(
            0,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            usize::MAX,
            0,
        )
    };
    assert!(p > 0, "mmap: {p}");
    let p = p as usize;
    // SAFETY: the mapping is ours, writable and larger than RET42.
    unsafe { core::ptr::copy_nonoverlapping(RET42.as_ptr(), p as *mut u8, RET42.len()) };
    // SAFETY: changing protection of our own mapping.
    let r = unsafe { syscall3(nr::MPROTECT, p, len, PROT_READ | PROT_EXEC) };
    assert_eq!(r, 0);
    flush_icache(p, RET42.len());
    // SAFETY: the page holds a complete function with the C ABI.
    let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(p) };
    assert_eq!(f(), 42);
    // SAFETY: unmapping what we mapped.
    assert_eq!(unsafe { syscall2(nr::MUNMAP, p, len) }, 0);
}

/// The target of [`vdso_jump_reaches_its_target_with_the_arguments`].
extern "C" fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// A proxy vDSO symbol's jump (`vdso_jump`) lands on its target with the
/// caller's arguments and return address intact, near (same page) and far
/// (a function of this binary).
#[test]
fn vdso_jump_reaches_its_target_with_the_arguments() {
    use criu_arch::{VDSO_JUMP_LEN, vdso_jump};
    const PROT_READ: usize = 1;
    const PROT_WRITE: usize = 2;
    const PROT_EXEC: usize = 4;
    const MAP_PRIVATE: usize = 2;
    const MAP_ANONYMOUS: usize = 0x20;
    let len = 65536;
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        sys_mmap(
            0,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            usize::MAX,
            0,
        )
    };
    assert!(p > 0, "mmap: {p}");
    let p = p as usize;
    let near = p + 1024;
    let far_jump = p + 256;
    let code: [(usize, &[u8]); 3] = [
        (p, &vdso_jump(near as u64)),
        (near, RET42),
        (far_jump, &vdso_jump(add as *const () as usize as u64)),
    ];
    for (at, bytes) in code {
        assert!(bytes.len() <= 256);
        // SAFETY: inside our writable mapping.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) };
    }
    assert_eq!(vdso_jump(0).len(), VDSO_JUMP_LEN);
    // SAFETY: changing protection of our own mapping.
    let r = unsafe { syscall3(nr::MPROTECT, p, len, PROT_READ | PROT_EXEC) };
    assert_eq!(r, 0);
    flush_icache(p, len);
    // SAFETY: each address starts a jump to a complete C-ABI function.
    let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(p) };
    assert_eq!(f(), 42);
    // SAFETY: as above.
    let g: extern "C" fn(u64, u64) -> u64 = unsafe { core::mem::transmute(far_jump) };
    assert_eq!(g(40, 2), 42);
    assert_eq!(g(u64::MAX - 1, 1), u64::MAX);
    // SAFETY: unmapping what we mapped.
    assert_eq!(unsafe { syscall2(nr::MUNMAP, p, len) }, 0);
}
