//! The vDSO: the program reads the clocks through glibc (which calls the
//! vDSO) all the time. After restore clock_gettime(MONOTONIC) still works
//! and has not gone back, agrees with the raw syscall, time() and
//! gettimeofday() agree with the raw syscall's CLOCK_REALTIME, the
//! `[vdso]` VMA exists and getauxval(AT_SYSINFO_EHDR) points at it.
#[path = "lib.rs"]
mod zdtm;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const AT_SYSINFO_EHDR: u64 = 33;
/// How far the vDSO and the syscall may disagree (they are read one
/// after the other).
const SLACK_NS: i128 = 200_000_000;

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

#[repr(C)]
#[derive(Default)]
struct Timeval {
    sec: i64,
    usec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    fn gettimeofday(tv: *mut Timeval, tz: *mut u8) -> i32;
    fn time(t: *mut i64) -> i64;
    fn getauxval(kind: u64) -> u64;
}

fn ns(ts: Timespec) -> i128 {
    ts.sec as i128 * 1_000_000_000 + ts.nsec as i128
}

/// clock_gettime through glibc (the vDSO).
fn vdso_clock(clock: i32) -> Result<i128, String> {
    let mut ts = Timespec::default();
    // SAFETY: `ts` is a valid timespec to write to.
    let ret = unsafe { clock_gettime(clock, &mut ts) };
    zdtm::ensure(ret == 0, || {
        format!("clock_gettime({clock}) returned {ret}")
    })?;
    Ok(ns(ts))
}

/// clock_gettime as a real syscall.
fn syscall_clock(clock: i32) -> Result<i128, String> {
    let mut ts = Timespec::default();
    // SAFETY: `ts` is a valid timespec to write to.
    let ret = unsafe {
        criu_arch::syscall2(
            criu_arch::nr::CLOCK_GETTIME,
            clock as usize,
            &mut ts as *mut Timespec as usize,
        )
    };
    zdtm::errno(ret, "clock_gettime syscall")?;
    Ok(ns(ts))
}

fn main() {
    zdtm::run(
        |_| {
            let vdso = zdtm::vma_at(auxv_vdso()?)?;
            zdtm::ensure(vdso.path == "[vdso]", || {
                format!("AT_SYSINFO_EHDR is in {:?}, not [vdso]", vdso.path)
            })?;
            vdso_clock(CLOCK_MONOTONIC)
        },
        |last| {
            if let Ok(now) = vdso_clock(CLOCK_MONOTONIC) {
                *last = (*last).max(now);
            }
        },
        |last| {
            let now = vdso_clock(CLOCK_MONOTONIC)?;
            zdtm::ensure(now >= last, || {
                format!("CLOCK_MONOTONIC went back from {last} ns to {now} ns")
            })?;
            let sys = syscall_clock(CLOCK_MONOTONIC)?;
            zdtm::ensure((sys - now).abs() < SLACK_NS, || {
                format!("vDSO CLOCK_MONOTONIC {now} ns, syscall {sys} ns")
            })?;
            // It moves on.
            let start = std::time::Instant::now();
            loop {
                let later = vdso_clock(CLOCK_MONOTONIC)?;
                if later > now {
                    break;
                }
                zdtm::ensure(start.elapsed().as_secs() < 2, || {
                    format!("CLOCK_MONOTONIC stuck at {later} ns")
                })?;
            }
            let real = vdso_clock(CLOCK_REALTIME)?;
            let sys = syscall_clock(CLOCK_REALTIME)?;
            zdtm::ensure((sys - real).abs() < SLACK_NS, || {
                format!("vDSO CLOCK_REALTIME {real} ns, syscall {sys} ns")
            })?;
            let mut tv = Timeval::default();
            // SAFETY: `tv` is a valid timeval; no timezone wanted.
            let ret = unsafe { gettimeofday(&mut tv, std::ptr::null_mut()) };
            zdtm::ensure(ret == 0, || format!("gettimeofday returned {ret}"))?;
            let tod = tv.sec as i128 * 1_000_000_000 + tv.usec as i128 * 1000;
            zdtm::ensure((tod - sys).abs() < SLACK_NS, || {
                format!("gettimeofday {tod} ns, CLOCK_REALTIME syscall {sys} ns")
            })?;
            // SAFETY: time(NULL) writes nothing.
            let t = unsafe { time(std::ptr::null_mut()) };
            zdtm::ensure(
                (t as i128 * 1_000_000_000 - sys).abs() < 2_000_000_000,
                || format!("time() {t}, CLOCK_REALTIME syscall {sys} ns"),
            )?;
            let at = auxv_vdso()?;
            let vma = zdtm::vma_at(at)?;
            zdtm::ensure(vma.path == "[vdso]" && vma.start == at, || {
                format!(
                    "AT_SYSINFO_EHDR {at:#x} is in {:#x}-{:#x} {:?}, not at the start of [vdso]",
                    vma.start, vma.end, vma.path
                )
            })?;
            let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
            zdtm::ensure(maps.matches("[vdso]").count() == 1, || {
                format!("{} [vdso] VMAs", maps.matches("[vdso]").count())
            })
        },
    );
}

/// getauxval(AT_SYSINFO_EHDR): glibc's copy of the vDSO address.
fn auxv_vdso() -> Result<usize, String> {
    // SAFETY: getauxval only reads glibc's saved auxiliary vector.
    let at = unsafe { getauxval(AT_SYSINFO_EHDR) } as usize;
    zdtm::ensure(at != 0, || "no AT_SYSINFO_EHDR".into())?;
    Ok(at)
}
