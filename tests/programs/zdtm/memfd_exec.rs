//! A memfd holding a script (`#!` + the system's `true`), kept open
//! read-write without `FD_CLOEXEC` and with `O_APPEND`, plus a read-only
//! descriptor of it opened through /proc, a private read-write mapping of
//! that read-only descriptor and a shared read-write mapping of the memfd
//! (CRIU's memfd04 and memfd05). Before the dump and after restore,
//! `execveat(memfd, "", AT_EMPTY_PATH)` runs the script: after restore
//! nothing may hold the memfd open for writing other than the original
//! `memfd_create`d description (else: ETXTBSY). Both descriptors keep
//! their flags and positions, each mapping holds the memfd with the mode
//! it had (`map_files` link `rw` for the shared one, `r-` for the private
//! one), and the fd and the shared mapping are still one object.
#[path = "lib.rs"]
mod zdtm;

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use criu_arch::nr;
use zdtm::{MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, page};

const AT_EMPTY_PATH: usize = 0x1000;
const F_GETFD: usize = 1;
const F_GETFL: usize = 3;
const O_ACCMODE: usize = 3;
const O_RDONLY: usize = 0;
const O_RDWR: usize = 2;
/// The same on every arch this project runs on (asm-generic; ppc64 and
/// s390x do not override it).
const O_APPEND: usize = 0o2000;

struct State {
    fd: OwnedFd,
    ro: OwnedFd,
    script_len: u64,
    shared: usize,
    private: usize,
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}

/// The script: `#!` and the first `true` found.
fn script() -> Result<String, String> {
    ["/bin/true", "/usr/bin/true"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| format!("#!{p}\n"))
        .ok_or_else(|| "no /bin/true or /usr/bin/true".to_string())
}

fn fcntl(fd: &OwnedFd, cmd: usize) -> Result<usize, String> {
    // SAFETY: F_GETFD/F_GETFL only read the descriptor's flags.
    let ret = unsafe { criu_arch::syscall3(nr::FCNTL, fd.as_raw_fd() as usize, cmd, 0) };
    zdtm::errno(ret, "fcntl")
}

/// `execveat(fd, "", AT_EMPTY_PATH)` in a child: its wait status (0 when
/// the script ran and exited 0).
fn exec_fd(fd: &OwnedFd) -> Result<i32, String> {
    let arg0 = CString::new("true").unwrap();
    let argv = [arg0.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<std::ffi::c_char>()];
    let empty = CString::new("").unwrap();
    // SAFETY: a plain fork of this single-threaded program; the child only
    // makes raw syscalls with pointers prepared before the fork.
    let pid = unsafe { zdtm::fork(0) }?;
    if pid == 0 {
        // SAFETY: NUL-terminated argv/envp arrays and path, live here.
        let ret = unsafe {
            criu_arch::syscall5(
                nr::EXECVEAT,
                fd.as_raw_fd() as usize,
                empty.as_ptr() as usize,
                argv.as_ptr() as usize,
                envp.as_ptr() as usize,
                AT_EMPTY_PATH,
            )
        };
        // SAFETY: ends the child with the errno execveat failed with.
        unsafe { criu_arch::syscall1(nr::EXIT_GROUP, (-ret) as usize) };
        unreachable!("exit_group returned");
    }
    let mut status: i32 = 0;
    // SAFETY: wait4 writes one int into `status`, live for the call.
    let ret = unsafe {
        criu_arch::syscall4(
            nr::WAIT4,
            pid as usize,
            std::ptr::from_mut(&mut status) as usize,
            0,
            0,
        )
    };
    zdtm::errno(ret, "wait4")?;
    Ok(status)
}

fn exec_ok(fd: &OwnedFd, when: &str) -> Result<(), String> {
    let status = exec_fd(fd)?;
    zdtm::ensure(status == 0, || {
        format!(
            "execveat(memfd) {when}: wait status {status:#x} (the child exits with \
             execveat's errno; 26 is ETXTBSY)"
        )
    })
}

/// Owner permission bits of the `map_files` link of the page at `addr`.
fn link_mode(addr: usize) -> Result<u32, String> {
    let link = format!("/proc/self/map_files/{:x}-{:x}", addr, addr + page());
    let m = std::fs::symlink_metadata(&link).map_err(|e| format!("{link}: {e}"))?;
    Ok(m.mode() & 0o600)
}

fn setup(_: &zdtm::Args) -> Result<State, String> {
    let text = script()?;
    // No MFD_CLOEXEC: the descriptor is inherited across exec (memfd04).
    let fd = rustix::fs::memfd_create("zdtm-exec", rustix::fs::MemfdFlags::empty())
        .map_err(|e| format!("memfd_create: {e}"))?;
    rustix::fs::ftruncate(&fd, page() as u64).map_err(|e| format!("ftruncate: {e}"))?;
    let n = rustix::io::write(&fd, text.as_bytes()).map_err(|e| format!("write: {e}"))?;
    zdtm::ensure(n == text.len(), || format!("short write: {n}"))?;
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::APPEND)
        .map_err(|e| format!("F_SETFL O_APPEND: {e}"))?;
    let ro = rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("reopen read-only: {e}"))?;
    let private = zdtm::mmap(
        0,
        page(),
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE,
        ro.as_raw_fd(),
        0,
    )?;
    let shared = zdtm::mmap(
        0,
        page(),
        PROT_READ | PROT_WRITE,
        MAP_SHARED,
        fd.as_raw_fd(),
        0,
    )?;
    // A copied-on-write page of the private mapping.
    // SAFETY: our private mapping, one page, read-write.
    let mem = unsafe { zdtm::region(private, page()) };
    mem[page() - 1] = b'P';
    exec_ok(&fd, "before the dump")?;
    Ok(State {
        fd,
        ro,
        script_len: text.len() as u64,
        shared,
        private,
    })
}

fn check(s: State) -> Result<(), String> {
    let fd_flags = fcntl(&s.fd, F_GETFD)?;
    zdtm::ensure(fd_flags == 0, || {
        format!("F_GETFD of the memfd is {fd_flags}, want 0 (no FD_CLOEXEC)")
    })?;
    let fl = fcntl(&s.fd, F_GETFL)?;
    zdtm::ensure(fl & O_ACCMODE == O_RDWR && fl & O_APPEND != 0, || {
        format!("F_GETFL of the memfd is {fl:#o}, want O_RDWR|O_APPEND")
    })?;
    let fl = fcntl(&s.ro, F_GETFL)?;
    zdtm::ensure(fl & O_ACCMODE == O_RDONLY, || {
        format!("F_GETFL of the read-only descriptor is {fl:#o}")
    })?;
    let pos = rustix::fs::seek(&s.fd, rustix::fs::SeekFrom::Current(0))
        .map_err(|e| format!("lseek: {e}"))?;
    zdtm::ensure(pos == s.script_len, || {
        format!("memfd position {pos}, want {}", s.script_len)
    })?;
    zdtm::expect_vma("shared mapping", s.shared, page(), "rw-s")?;
    zdtm::expect_vma("private mapping", s.private, page(), "rw-p")?;
    for (what, addr, want) in [("shared", s.shared, 0o600), ("private", s.private, 0o400)] {
        let mode = link_mode(addr)?;
        zdtm::ensure(mode == want, || {
            format!("{what} mapping holds the memfd with mode {mode:o}, want {want:o}")
        })?;
    }
    // SAFETY: our private mapping, one page, read-write.
    let private = unsafe { zdtm::region(s.private, page()) };
    zdtm::ensure(private[page() - 1] == b'P' && private[0] == b'#', || {
        "the private mapping lost its own page or the memfd's contents".into()
    })?;
    // SAFETY: our shared mapping, one page, read-write.
    let shared = unsafe { zdtm::region(s.shared, page()) };
    shared[100] = b'M';
    let mut got = [0u8];
    rustix::io::pread(&s.fd, &mut got, 100).map_err(|e| format!("pread: {e}"))?;
    zdtm::ensure(got[0] == b'M', || {
        "a write to the shared mapping does not reach the memfd".into()
    })?;
    exec_ok(&s.fd, "after restore")
}
