//! Pointer authentication (arm64): before the dump the program signs a
//! pointer with the APIA key (`pacia`) and a value with the generic key
//! (`pacga`), each with 16 modifiers (the pointer's PAC field may be only 7
//! bits: one signature alone could match by chance); after restore the
//! same operations must give the same signatures, and the signed pointers
//! must authenticate (`autia`) back to the original. They do only if the task got its own keys back: a
//! restored task is forked from the tool, whose keys are other random
//! ones. Needs a CPU with address and generic authentication (the harness
//! skips otherwise).
#[path = "lib.rs"]
mod zdtm;

#[cfg(not(target_arch = "aarch64"))]
fn main() {
    eprintln!("zdtm_pac runs on aarch64 only");
    std::process::exit(2);
}

#[cfg(target_arch = "aarch64")]
fn main() {
    arm::main();
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::zdtm;

    /// The value signed, a pointer into this program.
    static TARGET: u64 = 0x5eed;
    /// The first modifier (context) of the signatures.
    const MODIFIER: u64 = 0x1234_5678_9abc_def0;
    /// How many modifiers (`MODIFIER + i`) each value is signed with.
    const SIGNATURES: u64 = 16;
    const HWCAP_PACA: usize = 1 << 30;
    const HWCAP_PACG: usize = 1 << 31;

    /// `pacia x0, x1`: `ptr` with its APIA signature.
    fn pacia(ptr: u64, modifier: u64) -> u64 {
        let out: u64;
        // SAFETY: PACIA only computes; the CPU has it (checked in setup).
        unsafe {
            std::arch::asm!(".inst 0xdac10020", inout("x0") ptr => out, in("x1") modifier,
                options(pure, nomem, nostack))
        };
        out
    }

    /// `autia x0, x1`: the pointer back if the signature matches.
    fn autia(signed: u64, modifier: u64) -> u64 {
        let out: u64;
        // SAFETY: AUTIA only computes; it is called only on a pointer whose
        // signature was just checked (with FPAC a mismatch would trap).
        unsafe {
            std::arch::asm!(".inst 0xdac11020", inout("x0") signed => out, in("x1") modifier,
                options(pure, nomem, nostack))
        };
        out
    }

    /// `pacga x0, x0, x1`: the generic-key signature of `value`.
    fn pacga(value: u64, modifier: u64) -> u64 {
        let out: u64;
        // SAFETY: PACGA only computes; the CPU has it (checked in setup).
        unsafe {
            std::arch::asm!(".inst 0x9ac13000", inout("x0") value => out, in("x1") modifier,
                options(pure, nomem, nostack))
        };
        out
    }

    /// `ptr`'s APIA and generic signatures with each modifier.
    fn signatures(ptr: u64) -> Vec<(u64, u64)> {
        (0..SIGNATURES)
            .map(|i| (pacia(ptr, MODIFIER + i), pacga(ptr, MODIFIER + i)))
            .collect()
    }

    pub fn main() {
        zdtm::run(
            |_| {
                let caps = rustix::param::linux_hwcap().0;
                zdtm::ensure(caps & HWCAP_PACA != 0 && caps & HWCAP_PACG != 0, || {
                    "no pointer authentication (HWCAP_PACA/PACG) on this CPU".into()
                })?;
                let ptr = &TARGET as *const u64 as u64;
                let sigs = signatures(ptr);
                zdtm::ensure(sigs.iter().any(|s| s.0 != ptr), || {
                    format!("pacia left {ptr:#x} unsigned with every modifier (APIA key disabled?)")
                })?;
                Ok((ptr, sigs))
            },
            |_| {},
            |(ptr, before)| {
                for (i, (now, was)) in signatures(ptr).into_iter().zip(before).enumerate() {
                    zdtm::ensure(now == was, || {
                        format!(
                            "signatures of {ptr:#x} with modifier {i}: {:#x}/{:#x}, \
                             before the dump {:#x}/{:#x} (APIA/generic)",
                            now.0, now.1, was.0, was.1
                        )
                    })?;
                    let back = autia(was.0, MODIFIER + i as u64);
                    zdtm::ensure(back == ptr, || {
                        format!("autia with modifier {i} gives {back:#x}, want {ptr:#x}")
                    })?;
                }
                Ok(())
            },
        );
    }
}
