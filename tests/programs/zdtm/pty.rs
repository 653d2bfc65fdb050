//! Pseudo-terminals opened by the program itself (`/dev/ptmx` and its
//! `/dev/pts/N`), the program being their session's leader:
//!
//! - pty A: custom termios (raw, odd control characters) and window size,
//!   bytes queued both ways (slave → master and master → slave, with CR,
//!   LF and high bytes in them), the slave the controlling terminal;
//! - pty B: packet mode on the master, locked again after its slave was
//!   opened, a few bytes queued for the master.
//!
//! After restore: same indices and paths, same termios and window size,
//! exactly the queued bytes in each direction, both ends still connected,
//! pty A still the controlling terminal (`TIOCGSID`, `/proc/self/stat`
//! `tty_nr` and `tpgid`), pty B still locked and in packet mode.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};

use linux_raw_sys::general::{termios, winsize};
use linux_raw_sys::ioctl as io;
use rustix::fs::{Mode, OFlags};
use zdtm::ensure;

struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    index: u32,
}

struct State {
    a: Pty,
    b: Pty,
    termios: termios,
    winsize: winsize,
    to_master: Vec<u8>,
    to_slave: Vec<u8>,
    packet_bytes: Vec<u8>,
    /// `/dev/console`, a character device that stays a regular file.
    console: Option<OwnedFd>,
}

/// `ioctl(fd, req, arg)`.
fn ioctl(fd: &OwnedFd, req: u32, arg: usize, what: &str) -> Result<usize, String> {
    // SAFETY: `arg` is either an integer or points to a live value of the
    // type the request reads or writes (the callers below).
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_raw_fd() as usize,
            req as usize,
            arg,
        )
    };
    zdtm::errno(r, what)
}

fn get_int(fd: &OwnedFd, req: u32, what: &str) -> Result<i32, String> {
    let mut v: i32 = 0;
    ioctl(fd, req, &mut v as *mut i32 as usize, what)?;
    Ok(v)
}

fn set_int(fd: &OwnedFd, req: u32, v: i32, what: &str) -> Result<(), String> {
    ioctl(fd, req, &v as *const i32 as usize, what).map(drop)
}

fn tcgets(fd: &OwnedFd) -> Result<termios, String> {
    // SAFETY: plain integers; zero is a valid termios.
    let mut t: termios = unsafe { std::mem::zeroed() };
    ioctl(fd, io::TCGETS, &mut t as *mut termios as usize, "TCGETS")?;
    Ok(t)
}

fn get_winsize(fd: &OwnedFd) -> Result<winsize, String> {
    let mut w = winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    ioctl(
        fd,
        io::TIOCGWINSZ,
        &mut w as *mut winsize as usize,
        "TIOCGWINSZ",
    )?;
    Ok(w)
}

fn open(path: &str, flags: OFlags) -> Result<OwnedFd, String> {
    rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("open {path}: {e}"))
}

/// A new pty; the slave becomes our controlling terminal if we have none.
fn new_pty(noctty: bool) -> Result<Pty, String> {
    let master = open("/dev/ptmx", OFlags::RDWR | OFlags::NOCTTY)?;
    set_int(&master, io::TIOCSPTLCK, 0, "unlock")?;
    let index = get_int(&master, io::TIOCGPTN, "TIOCGPTN")? as u32;
    let extra = if noctty {
        OFlags::NOCTTY
    } else {
        OFlags::empty()
    };
    let slave = open(&format!("/dev/pts/{index}"), OFlags::RDWR | extra)?;
    Ok(Pty {
        master,
        slave,
        index,
    })
}

fn write_all(fd: &OwnedFd, data: &[u8]) -> Result<(), String> {
    let mut off = 0;
    while off < data.len() {
        off += rustix::io::write(fd, &data[off..]).map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

fn setup(_: &zdtm::Args) -> Result<State, String> {
    let a = new_pty(false)?;
    let mut t = tcgets(&a.slave)?;
    t.c_iflag = 0;
    t.c_oflag = 0;
    t.c_lflag = 0;
    t.c_cc[0] = 0x05; // VINTR
    t.c_cc[4] = 0x06; // VEOF
    t.c_cc[5] = 0; // VTIME
    t.c_cc[6] = 1; // VMIN
    ioctl(
        &a.slave,
        io::TCSETS,
        &t as *const termios as usize,
        "TCSETS",
    )?;
    let termios = tcgets(&a.slave)?;
    let w = winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 640,
        ws_ypixel: 480,
    };
    ioctl(
        &a.master,
        io::TIOCSWINSZ,
        &w as *const winsize as usize,
        "TIOCSWINSZ",
    )?;
    let to_master: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
    let to_slave: Vec<u8> = (0..700u32).map(|i| (i * 13 % 256) as u8).collect();
    write_all(&a.slave, &to_master)?;
    write_all(&a.master, &to_slave)?;

    let b = new_pty(true)?;
    set_int(&b.master, io::TIOCPKT, 1, "TIOCPKT")?;
    // Pty B keeps the default (cooked) termios: ONLCR makes the
    // master read CR LF.
    write_all(&b.slave, b"pkt\n")?;
    let packet_bytes = b"pkt\r\n".to_vec();
    set_int(&b.master, io::TIOCSPTLCK, 1, "lock")?;

    // Not every machine lets us open the console: then it is not tested.
    let console = open("/dev/console", OFlags::WRONLY | OFlags::NOCTTY).ok();
    Ok(State {
        a,
        b,
        termios,
        winsize: w,
        to_master,
        to_slave,
        packet_bytes,
        console,
    })
}

/// Reads exactly `n` bytes (the queue must hold them).
fn read_n(fd: &OwnedFd, n: usize, what: &str) -> Result<Vec<u8>, String> {
    // Bytes just written reach the reader's queue asynchronously.
    let mut avail = 0;
    for _ in 0..200 {
        avail = get_int(fd, io::FIONREAD, "FIONREAD")? as usize;
        if avail >= n {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    ensure(avail == n, || {
        format!("{what}: {avail} bytes queued, want {n}")
    })?;
    let mut buf = vec![0u8; n];
    let mut off = 0;
    while off < n {
        match rustix::io::read(fd, &mut buf[off..]) {
            Ok(0) => return Err(format!("{what}: EOF after {off} bytes")),
            Ok(k) => off += k,
            Err(e) => return Err(format!("{what}: read after {off} bytes: {e}")),
        }
    }
    Ok(buf)
}

fn stat_fields() -> Result<Vec<i64>, String> {
    let s = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    let rest = &s[s.rfind(')').ok_or("no ) in stat")? + 2..];
    Ok(rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(-1))
        .collect())
}

fn check_pty(p: &Pty, name: &str) -> Result<(), String> {
    let n = get_int(&p.master, io::TIOCGPTN, "TIOCGPTN")? as u32;
    ensure(n == p.index, || {
        format!("{name}: master index {n}, was {}", p.index)
    })?;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", p.slave.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    let want = format!("/dev/pts/{}", p.index);
    ensure(link.to_str() == Some(want.as_str()), || {
        format!("{name}: slave is {}, want {want}", link.display())
    })
}

fn check(s: State) -> Result<(), String> {
    let verdict = check_state(&s);
    // Closing pty A's master would hang up our controlling terminal (and
    // SIGHUP us) before the verdict is written: the fds go at exit.
    std::mem::forget(s);
    verdict
}

fn check_state(s: &State) -> Result<(), String> {
    check_pty(&s.a, "pty A")?;
    check_pty(&s.b, "pty B")?;
    let t = tcgets(&s.a.slave)?;
    let same = t.c_iflag == s.termios.c_iflag
        && t.c_oflag == s.termios.c_oflag
        && t.c_cflag == s.termios.c_cflag
        && t.c_lflag == s.termios.c_lflag
        && t.c_cc == s.termios.c_cc;
    ensure(same, || format!("termios {t:?}, was {:?}", s.termios))?;
    let w = get_winsize(&s.a.slave)?;
    ensure(
        (w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel)
            == (
                s.winsize.ws_row,
                s.winsize.ws_col,
                s.winsize.ws_xpixel,
                s.winsize.ws_ypixel,
            ),
        || format!("window size {w:?}, was {:?}", s.winsize),
    )?;
    let got = read_n(&s.a.master, s.to_master.len(), "master of A")?;
    ensure(got == s.to_master, || {
        "master of A: other bytes queued".into()
    })?;
    let got = read_n(&s.a.slave, s.to_slave.len(), "slave of A")?;
    ensure(got == s.to_slave, || {
        "slave of A: other bytes queued".into()
    })?;
    // Still connected, both ways.
    write_all(&s.a.master, b"ping")?;
    ensure(read_n(&s.a.slave, 4, "ping")? == b"ping", || "ping".into())?;
    write_all(&s.a.slave, b"pong")?;
    ensure(read_n(&s.a.master, 4, "pong")? == b"pong", || "pong".into())?;
    // Our controlling terminal.
    let me = std::process::id() as i32;
    let sid = get_int(&s.a.slave, io::TIOCGSID, "TIOCGSID on pty A")?;
    ensure(sid == me, || format!("pty A's session is {sid}, want {me}"))?;
    let st = rustix::fs::fstat(&s.a.slave).map_err(|e| e.to_string())?;
    let f = stat_fields()?;
    // After state: ppid pgrp session tty_nr tpgid.
    ensure(f[3] as u64 == st.st_rdev, || {
        format!("tty_nr {:#x}, pty A is {:#x}", f[3], st.st_rdev)
    })?;
    ensure(f[4] == i64::from(me), || {
        format!("tpgid {}, want {me}", f[4])
    })?;
    // pty B: packet mode, locked, the packet's bytes.
    ensure(get_int(&s.b.master, io::TIOCGPKT, "TIOCGPKT")? == 1, || {
        "pty B lost packet mode".into()
    })?;
    ensure(
        get_int(&s.b.master, io::TIOCGPTLCK, "TIOCGPTLCK")? == 1,
        || "pty B is unlocked".into(),
    )?;
    let mut buf = vec![0u8; 64];
    let k = rustix::io::read(&s.b.master, &mut buf).map_err(|e| format!("read B: {e}"))?;
    ensure(buf[0] == 0 && buf[1..k] == s.packet_bytes[..], || {
        format!("pty B's master read {:?}", &buf[..k])
    })?;
    if let Some(c) = &s.console {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", c.as_raw_fd()))
            .map_err(|e| e.to_string())?;
        let st = rustix::fs::fstat(c).map_err(|e| e.to_string())?;
        ensure(
            link.to_str() == Some("/dev/console") && st.st_rdev == (5 << 8 | 1),
            || format!("console fd is {} ({:#x})", link.display(), st.st_rdev),
        )?;
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
