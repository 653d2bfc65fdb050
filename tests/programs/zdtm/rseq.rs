//! glibc's restartable-sequences registration: glibc (2.35+) registers an
//! rseq area for every thread at start-up, at thread pointer +
//! `__rseq_offset`. After restore the kernel must know the same area with
//! the same length and signature (registering it again fails with EBUSY,
//! where a lost registration would succeed and a different one fail with
//! EINVAL/EPERM), and the kernel must keep the area's cpu_id up to date.
#[path = "lib.rs"]
mod zdtm;

use criu_arch::{nr, syscall4};
use zdtm::ensure;

const EBUSY: isize = 16;

unsafe extern "C" {
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

/// Where glibc's rseq area of this thread is.
fn rseq_area() -> Result<usize, String> {
    let fs = zdtm::thread_pointer()?;
    // SAFETY: glibc's exported constants, set before main.
    let off = unsafe { __rseq_offset };
    Ok(fs.wrapping_add_signed(off))
}

/// `rseq(area, len, 0, RSEQ_SIG)`: its raw result.
fn register(area: usize, len: usize) -> isize {
    // SAFETY: registering glibc's own area of this thread again; if that
    // succeeds (the registration was lost) the area is valid thread memory.
    unsafe { syscall4(nr::RSEQ, area, len, 0, zdtm::RSEQ_SIG) }
}

/// The area's cpu_id field (offset 4), which the kernel updates.
fn cpu_id(area: usize) -> u32 {
    // SAFETY: the area is this thread's rseq area inside its TCB; cpu_id
    // is a naturally aligned u32 the kernel writes on return to user.
    unsafe { std::ptr::read_volatile((area + 4) as *const u32) }
}

fn main() {
    zdtm::run(
        |_| {
            // SAFETY: glibc's exported constant.
            let size = unsafe { __rseq_size };
            ensure(size != 0, || {
                "glibc did not register rseq (tunable off?)".into()
            })?;
            let area = rseq_area()?;
            // glibc registers at least 32 bytes (the original struct rseq).
            let len = [32usize, size as usize, 20]
                .into_iter()
                .find(|&l| register(area, l) == -EBUSY)
                .ok_or("no rseq length gives EBUSY before the dump")?;
            Ok((area, len))
        },
        |_| {},
        |(area, len)| {
            let now = rseq_area()?;
            ensure(now == area, || {
                format!("rseq area moved: {now:#x}, was {area:#x}")
            })?;
            let ret = register(area, len);
            ensure(ret == -EBUSY, || {
                format!("registering the area again gave {ret}, not -EBUSY: the kernel lost it")
            })?;
            // The kernel writes the current CPU into the area on the way
            // back to user space after a migration, preemption or signal.
            // SAFETY: the area is ours; poisoning cpu_id is what rseq's
            // own selftests do to see the kernel rewrite it.
            unsafe { std::ptr::write_volatile((area + 4) as *mut u32, 0xdead_beef) };
            let ncpu = std::thread::available_parallelism().map_or(1024, |n| n.get()) as u32;
            for _ in 0..200 {
                // A signal delivery goes through the rseq update.
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::CHILD,
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
                if cpu_id(area) < ncpu.max(1024) && cpu_id(area) != 0xdead_beef {
                    return Ok(());
                }
            }
            Err(format!(
                "cpu_id not updated by the kernel: {:#x}",
                cpu_id(area)
            ))
        },
    );
}
