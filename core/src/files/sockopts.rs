//! The options every socket kind records (`sk_opts_entry`, CRIU's
//! `dump_socket_opts`/`restore_socket_opts` in `criu/sockets.c`): buffer
//! sizes and their locks, timeouts, `SO_REUSEADDR`/`SO_REUSEPORT`,
//! priority, mark, low-water mark, keepalive, linger, the bound device,
//! the attached classic BPF filter, and the flags of the generic level.
//!
//! Dump reads each option from a `pidfd_getfd` copy; an option the kernel
//! has not got (`ENOPROTOOPT`, older kernels) holds no state and is left
//! out, any other failure is an error naming the option. `SO_PASSCRED` and
//! `SO_PASSSEC` exist only for unix and netlink sockets since Linux 6.16:
//! they are recorded for those alone, as CRIU 4.2 does.
//!
//! Restore sets each option whose value differs from a new socket's (so
//! that defaults the kernel derives from sysctls stay derived).

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{AddressFamily, sockopt};

use crate::files::sockets::SockError;
use crate::images::pb;
use crate::sys::sockopt::{self as so, SOL_SOCKET};

use linux_raw_sys::net as raw;

/// `IFNAMSIZ`: the longest interface name, with its NUL.
const IFNAME_LEN: usize = 16;

fn int(fd: &OwnedFd, level: u32, name: u32, what: &str) -> Result<i32, SockError> {
    so::get_int(fd, level, name).map_err(|e| SockError::sys(what, e))
}

/// An option this kernel may not know: `None` there.
fn maybe_int(fd: &OwnedFd, level: u32, name: u32, what: &str) -> Result<Option<i32>, SockError> {
    match so::get_int(fd, level, name) {
        Ok(v) => Ok(Some(v)),
        Err(Errno::NOPROTOOPT) => Ok(None),
        Err(e) => Err(SockError::sys(what, e)),
    }
}

fn set(fd: &OwnedFd, level: u32, name: u32, what: &str, v: i32) -> Result<(), SockError> {
    so::set_int(fd, level, name, v).map_err(|e| SockError::sys(format!("setting {what} to {v}"), e))
}

/// A classic BPF instruction as CRIU's images hold it: code, jt, jf and k
/// packed into one integer in that order (the same on every arch).
pub fn encode_filter(f: &so::SockFilter) -> u64 {
    (u64::from(f.code) << 48) | (u64::from(f.jt) << 40) | (u64::from(f.jf) << 32) | u64::from(f.k)
}

pub fn decode_filter(v: u64) -> so::SockFilter {
    so::SockFilter {
        code: (v >> 48) as u16,
        jt: (v >> 40) as u8,
        jf: (v >> 32) as u8,
        k: v as u32,
    }
}

/// `SO_SNDTIMEO_OLD`/`SO_RCVTIMEO_OLD`: a `struct timeval` of two longs
/// (on the 64-bit arches we build for it has no y2038 variant, and the
/// `_NEW` names are the same option). Asked for by the old names: qemu-user,
/// which runs the foreign arches' tests, answers the new ones as ints.
const TIMEVAL_LEN: usize = 16;

fn timeout(fd: &OwnedFd, name: u32, what: &str) -> Result<Duration, SockError> {
    let mut b = [0u8; TIMEVAL_LEN];
    let n =
        so::get_bytes(fd, SOL_SOCKET, name, Some(&mut b)).map_err(|e| SockError::sys(what, e))?;
    if n != TIMEVAL_LEN {
        return Err(SockError::Unexpected(format!(
            "{what}: {n} bytes, not a struct timeval"
        )));
    }
    let word = |at: usize| i64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    let (sec, usec) = (word(0), word(8));
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(SockError::Unexpected(format!("{what}: {sec} s {usec} us")));
    }
    Ok(Duration::new(sec as u64, usec as u32 * 1000))
}

fn set_timeout(fd: &OwnedFd, name: u32, d: Duration) -> Result<(), Errno> {
    let mut b = [0u8; TIMEVAL_LEN];
    b[..8].copy_from_slice(&(d.as_secs() as i64).to_ne_bytes());
    b[8..].copy_from_slice(&i64::from(d.subsec_micros()).to_ne_bytes());
    so::set_bytes(fd, SOL_SOCKET, name, &b)
}

/// The options of socket `fd` of address family `family`.
pub fn dump(fd: &OwnedFd, family: AddressFamily) -> Result<pb::SkOptsEntry, SockError> {
    let sol = |name, what| int(fd, SOL_SOCKET, name, what);
    let flag = |name, what| sol(name, what).map(|v| v != 0);
    let snd = timeout(fd, raw::SO_SNDTIMEO_OLD, "SO_SNDTIMEO")?;
    let rcv = timeout(fd, raw::SO_RCVTIMEO_OLD, "SO_RCVTIMEO")?;
    let creds = family == AddressFamily::UNIX || family == AddressFamily::NETLINK;
    let mut dev = [0u8; IFNAME_LEN];
    let n = so::get_bytes(fd, SOL_SOCKET, raw::SO_BINDTODEVICE, Some(&mut dev))
        .map_err(SockError::call("SO_BINDTODEVICE"))?;
    let dev = &dev[..n.min(IFNAME_LEN)];
    let dev = &dev[..dev.iter().position(|&c| c == 0).unwrap_or(dev.len())];
    let filter = so::get_filter(fd).map_err(SockError::call("SO_GET_FILTER"))?;
    let linger = sockopt::socket_linger(fd).map_err(SockError::call("SO_LINGER"))?;
    let mark = sol(raw::SO_MARK, "SO_MARK")? as u32;
    Ok(pb::SkOptsEntry {
        so_sndbuf: sol(raw::SO_SNDBUF, "SO_SNDBUF")? as u32,
        so_rcvbuf: sol(raw::SO_RCVBUF, "SO_RCVBUF")? as u32,
        so_snd_tmo_sec: snd.as_secs(),
        so_snd_tmo_usec: u64::from(snd.subsec_micros()),
        so_rcv_tmo_sec: rcv.as_secs(),
        so_rcv_tmo_usec: u64::from(rcv.subsec_micros()),
        reuseaddr: Some(flag(raw::SO_REUSEADDR, "SO_REUSEADDR")?),
        so_priority: Some(sol(raw::SO_PRIORITY, "SO_PRIORITY")? as u32),
        so_rcvlowat: Some(sol(raw::SO_RCVLOWAT, "SO_RCVLOWAT")? as u32),
        so_mark: (mark != 0).then_some(mark),
        so_passcred: creds
            .then(|| flag(raw::SO_PASSCRED, "SO_PASSCRED"))
            .transpose()?,
        so_passsec: creds
            .then(|| flag(raw::SO_PASSSEC, "SO_PASSSEC"))
            .transpose()?,
        so_dontroute: Some(flag(raw::SO_DONTROUTE, "SO_DONTROUTE")?),
        so_no_check: Some(flag(raw::SO_NO_CHECK, "SO_NO_CHECK")?),
        so_bound_dev: (!dev.is_empty()).then(|| String::from_utf8_lossy(dev).into_owned()),
        so_filter: filter.iter().map(encode_filter).collect(),
        so_reuseport: Some(flag(raw::SO_REUSEPORT, "SO_REUSEPORT")?),
        so_broadcast: Some(flag(raw::SO_BROADCAST, "SO_BROADCAST")?),
        so_keepalive: Some(flag(raw::SO_KEEPALIVE, "SO_KEEPALIVE")?),
        so_oobinline: Some(sol(raw::SO_OOBINLINE, "SO_OOBINLINE")? as u32),
        so_linger: linger.map(|d| d.as_secs() as u32),
        so_buf_lock: maybe_int(fd, SOL_SOCKET, raw::SO_BUF_LOCK, "SO_BUF_LOCK")?.map(|v| v as u32),
        ..Default::default()
    })
}

/// A buffer size `want` as `getsockopt` reports it (the kernel doubles
/// what `setsockopt` is given). Beyond the system's maximum only with
/// CAP_NET_ADMIN (the FORCE option); without it, as close as the plain
/// option allows.
pub fn set_buf(fd: &OwnedFd, send: bool, want: u32) -> Result<(), SockError> {
    let half = (want / 2) as i32;
    let (force, plain, what) = if send {
        (raw::SO_SNDBUFFORCE, raw::SO_SNDBUF, "SO_SNDBUF")
    } else {
        (raw::SO_RCVBUFFORCE, raw::SO_RCVBUF, "SO_RCVBUF")
    };
    match so::set_int(fd, SOL_SOCKET, force, half) {
        Err(Errno::PERM) => set(fd, SOL_SOCKET, plain, what, half),
        r => r.map_err(|e| SockError::sys(format!("setting {what} to {want}"), e)),
    }
}

/// Sets the options of `o` on `fd` (a socket of `family`) where they
/// differ from what it has. Buffer sizes come first (before queued data
/// goes back in), their locks after them (setting a size locks it).
pub fn restore(fd: &OwnedFd, family: AddressFamily, o: &pb::SkOptsEntry) -> Result<(), SockError> {
    let now = dump(fd, family)?;
    restore_buffers(fd, o, &now)?;
    restore_timeouts(fd, o, &now)?;
    restore_ints(fd, o, &now)?;
    restore_flags(fd, o, &now)?;
    restore_linger_device_filter(fd, o, &now)
}

/// Send and receive buffer sizes, then `SO_BUF_LOCK`.
fn restore_buffers(
    fd: &OwnedFd,
    o: &pb::SkOptsEntry,
    now: &pb::SkOptsEntry,
) -> Result<(), SockError> {
    if o.so_sndbuf != 0 && o.so_sndbuf != now.so_sndbuf {
        set_buf(fd, true, o.so_sndbuf)?;
    }
    if o.so_rcvbuf != 0 && o.so_rcvbuf != now.so_rcvbuf {
        set_buf(fd, false, o.so_rcvbuf)?;
    }
    if let Some(lock) = o.so_buf_lock {
        let cur = maybe_int(fd, SOL_SOCKET, raw::SO_BUF_LOCK, "SO_BUF_LOCK")?;
        match cur {
            Some(c) if c as u32 != lock => {
                set(fd, SOL_SOCKET, raw::SO_BUF_LOCK, "SO_BUF_LOCK", lock as i32)?
            }
            None if lock != 0 => {
                return Err(SockError::Refused(
                    "SO_BUF_LOCK: this kernel has not got it".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `SO_SNDTIMEO` and `SO_RCVTIMEO`.
fn restore_timeouts(
    fd: &OwnedFd,
    o: &pb::SkOptsEntry,
    now: &pb::SkOptsEntry,
) -> Result<(), SockError> {
    let tmo = |s: u64, us: u64| Duration::from_secs(s) + Duration::from_micros(us);
    for (t, want, had, what) in [
        (
            raw::SO_SNDTIMEO_OLD,
            tmo(o.so_snd_tmo_sec, o.so_snd_tmo_usec),
            tmo(now.so_snd_tmo_sec, now.so_snd_tmo_usec),
            "SO_SNDTIMEO",
        ),
        (
            raw::SO_RCVTIMEO_OLD,
            tmo(o.so_rcv_tmo_sec, o.so_rcv_tmo_usec),
            tmo(now.so_rcv_tmo_sec, now.so_rcv_tmo_usec),
            "SO_RCVTIMEO",
        ),
    ] {
        if want != had {
            set_timeout(fd, t, want)
                .map_err(|e| SockError::sys(format!("setting {what} to {want:?}"), e))?;
        }
    }
    Ok(())
}

/// The integer options: priority, low-water mark, mark, out-of-band inline.
fn restore_ints(fd: &OwnedFd, o: &pb::SkOptsEntry, now: &pb::SkOptsEntry) -> Result<(), SockError> {
    let ints = [
        (
            o.so_priority,
            now.so_priority,
            raw::SO_PRIORITY,
            "SO_PRIORITY",
        ),
        (
            o.so_rcvlowat,
            now.so_rcvlowat,
            raw::SO_RCVLOWAT,
            "SO_RCVLOWAT",
        ),
        (
            o.so_mark.or(Some(0)),
            now.so_mark.or(Some(0)),
            raw::SO_MARK,
            "SO_MARK",
        ),
        (
            o.so_oobinline,
            now.so_oobinline,
            raw::SO_OOBINLINE,
            "SO_OOBINLINE",
        ),
    ];
    for (want, had, name, what) in ints {
        if let Some(w) = want
            && Some(w) != had
        {
            set(fd, SOL_SOCKET, name, what, w as i32)?;
        }
    }
    Ok(())
}

/// The boolean options.
fn restore_flags(
    fd: &OwnedFd,
    o: &pb::SkOptsEntry,
    now: &pb::SkOptsEntry,
) -> Result<(), SockError> {
    let flags = [
        (
            o.reuseaddr,
            now.reuseaddr,
            raw::SO_REUSEADDR,
            "SO_REUSEADDR",
        ),
        (
            o.so_reuseport,
            now.so_reuseport,
            raw::SO_REUSEPORT,
            "SO_REUSEPORT",
        ),
        (
            o.so_passcred,
            now.so_passcred,
            raw::SO_PASSCRED,
            "SO_PASSCRED",
        ),
        (o.so_passsec, now.so_passsec, raw::SO_PASSSEC, "SO_PASSSEC"),
        (
            o.so_dontroute,
            now.so_dontroute,
            raw::SO_DONTROUTE,
            "SO_DONTROUTE",
        ),
        (
            o.so_no_check,
            now.so_no_check,
            raw::SO_NO_CHECK,
            "SO_NO_CHECK",
        ),
        (
            o.so_broadcast,
            now.so_broadcast,
            raw::SO_BROADCAST,
            "SO_BROADCAST",
        ),
        (
            o.so_keepalive,
            now.so_keepalive,
            raw::SO_KEEPALIVE,
            "SO_KEEPALIVE",
        ),
    ];
    for (want, had, name, what) in flags {
        // An option the socket's family has not got (SO_PASSCRED of an
        // inet socket) is off in the image: nothing to set.
        if let Some(w) = want
            && Some(w) != had
            && (w || had.is_some())
        {
            set(fd, SOL_SOCKET, name, what, i32::from(w))?;
        }
    }
    Ok(())
}

/// `SO_LINGER`, `SO_BINDTODEVICE` and a socket filter.
fn restore_linger_device_filter(
    fd: &OwnedFd,
    o: &pb::SkOptsEntry,
    now: &pb::SkOptsEntry,
) -> Result<(), SockError> {
    if o.so_linger != now.so_linger {
        let l = o.so_linger.map(|s| Duration::from_secs(u64::from(s)));
        sockopt::set_socket_linger(fd, l).map_err(SockError::call("setting SO_LINGER"))?;
    }
    if let Some(dev) = &o.so_bound_dev
        && now.so_bound_dev.as_ref() != Some(dev)
    {
        bind_to_device(fd, dev)?;
    }
    if !o.so_filter.is_empty() && o.so_filter != now.so_filter {
        let prog: Vec<so::SockFilter> = o.so_filter.iter().map(|&v| decode_filter(v)).collect();
        so::attach_filter(fd, &prog).map_err(|e| {
            SockError::sys(
                format!("SO_ATTACH_FILTER of {} instructions", o.so_filter.len()),
                e,
            )
        })?;
    }
    Ok(())
}

/// `SO_BINDTODEVICE` to interface `dev`.
pub fn bind_to_device(fd: &OwnedFd, dev: &str) -> Result<(), SockError> {
    so::set_bytes(fd, SOL_SOCKET, raw::SO_BINDTODEVICE, dev.as_bytes())
        .map_err(|e| SockError::sys(format!("SO_BINDTODEVICE {dev:?}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_keep_their_fields_through_the_image_encoding() {
        let f = so::SockFilter {
            code: 0x06,
            jt: 1,
            jf: 2,
            k: 0xffff,
        };
        let v = encode_filter(&f);
        // What CRIU's image held for `ret #0xffff` with jt 1, jf 2.
        assert_eq!(v, 0x0006_0102_0000_ffff);
        let back = decode_filter(v);
        assert_eq!((back.code, back.jt, back.jf, back.k), (6, 1, 2, 0xffff));
    }

    #[test]
    fn options_set_on_a_socket_read_back_and_restore_onto_a_new_one() {
        use rustix::net::SocketType;
        let new = || rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None).unwrap();
        let a = new();
        if let Err(e) = so::get_filter(&a) {
            // qemu-user, which runs this test for the foreign arches, fails
            // it with EFAULT; the VMs and native runs have a real kernel.
            // Straight to stderr (libtest captures the print macros): a
            // skip shows even when the test passes.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED options_set_on_a_socket_read_back_and_restore_onto_a_new_one: \
                 getsockopt(SO_GET_FILTER) is not emulated here (qemu-user?): {e}"
            );
            return;
        }
        so::set_int(&a, SOL_SOCKET, raw::SO_PRIORITY, 4).unwrap();
        so::set_int(&a, SOL_SOCKET, raw::SO_RCVLOWAT, 3).unwrap();
        so::set_int(&a, SOL_SOCKET, raw::SO_BROADCAST, 1).unwrap();
        set_timeout(&a, raw::SO_RCVTIMEO_OLD, Duration::from_millis(2500)).unwrap();
        sockopt::set_socket_linger(&a, Some(Duration::from_secs(9))).unwrap();
        let o = dump(&a, AddressFamily::INET).unwrap();
        assert_eq!(o.so_passcred, None, "inet sockets record no SO_PASSCRED");
        assert_eq!((o.so_rcv_tmo_sec, o.so_rcv_tmo_usec), (2, 500_000));
        assert_eq!(o.so_linger, Some(9));
        let b = new();
        restore(&b, AddressFamily::INET, &o).unwrap();
        assert_eq!(dump(&b, AddressFamily::INET).unwrap(), o);
    }
}
