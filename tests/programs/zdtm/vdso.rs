//! The vDSO: the program reads the clocks through glibc (which calls the
//! vDSO) all the time. After restore clock_gettime(MONOTONIC) still works
//! and has not gone back, agrees with the raw syscall, time() and
//! gettimeofday() agree with the raw syscall's CLOCK_REALTIME, the
//! `[vdso]` VMA exists and getauxval(AT_SYSINFO_EHDR) points at it.
//!
//! `proxy`: the restore is to keep the dumped vDSO as a proxy (the tests
//! force it): then AT_SYSINFO_EHDR must point at that proxy instead, an
//! anonymous `r-xp` mapping starting with the dumped ELF header, the one
//! `[vdso]` (this kernel's, elsewhere) must start with CRIU's mark
//! ("CRIUvDSO"), and the clocks, read through glibc's pointers into the
//! proxy, must still work.
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
        |args| {
            let vdso = zdtm::vma_at(auxv_vdso()?)?;
            zdtm::ensure(vdso.path == "[vdso]", || {
                format!("AT_SYSINFO_EHDR is in {:?}, not [vdso]", vdso.path)
            })?;
            let proxy = args.rest.iter().any(|a| a == "proxy");
            Ok((vdso_clock(CLOCK_MONOTONIC)?, proxy))
        },
        |(last, _)| {
            if let Ok(now) = vdso_clock(CLOCK_MONOTONIC) {
                *last = (*last).max(now);
            }
        },
        |(last, proxy)| {
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
            if proxy {
                return check_proxy(at, &vma);
            }
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

/// The vDSO at `at` (in `vma`) is the dumped one kept as a proxy, and
/// this kernel's `[vdso]` carries CRIU's mark.
fn check_proxy(at: usize, vma: &zdtm::Vma) -> Result<(), String> {
    zdtm::ensure(
        vma.start == at && vma.path.is_empty() && vma.perms == "r-xp",
        || {
            format!(
                "AT_SYSINFO_EHDR {at:#x} is in {:#x}-{:#x} {} {:?}, not at the start of \
                 an anonymous r-xp proxy",
                vma.start, vma.end, vma.perms, vma.path
            )
        },
    )?;
    let mem = std::fs::File::open("/proc/self/mem").map_err(|e| e.to_string())?;
    let read = |addr: usize| -> Result<[u8; 8], String> {
        let mut b = [0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(&mem, &mut b, addr as u64)
            .map_err(|e| format!("reading {addr:#x}: {e}"))?;
        Ok(b)
    };
    let head = read(at)?;
    zdtm::ensure(head[..4] == *b"\x7fELF", || {
        format!("the proxy starts with {head:02x?}, not an ELF header")
    })?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let rt: Vec<&str> = maps.lines().filter(|l| l.ends_with("[vdso]")).collect();
    zdtm::ensure(rt.len() == 1, || format!("[vdso] VMAs: {rt:?}"))?;
    let start = rt[0].split('-').next().unwrap_or("");
    let start = usize::from_str_radix(start, 16).map_err(|e| e.to_string())?;
    let mark = read(start)?;
    // CRIU's signature word ("CRIUvDSO" in little-endian memory).
    zdtm::ensure(mark == 0x4f53_4476_5549_5243u64.to_ne_bytes(), || {
        format!("[vdso] at {start:#x} starts with {mark:02x?}, not CRIU's mark")
    })
}

/// getauxval(AT_SYSINFO_EHDR): glibc's copy of the vDSO address.
fn auxv_vdso() -> Result<usize, String> {
    // SAFETY: getauxval only reads glibc's saved auxiliary vector.
    let at = unsafe { getauxval(AT_SYSINFO_EHDR) } as usize;
    zdtm::ensure(at != 0, || "no AT_SYSINFO_EHDR".into())?;
    Ok(at)
}
