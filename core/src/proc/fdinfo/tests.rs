use super::*;
use crate::proc::flock::LockKind;

#[test]
fn plain_file_with_lock() {
    let i = parse(b"pos:\t42\nflags:\t0102002\nmnt_id:\t24\nino:\t3\nlock:\t1: FLOCK  ADVISORY  WRITE 77 fe:00:1234 0 EOF\n").unwrap();
    assert_eq!(
        (i.pos, i.flags, i.mnt_id, i.ino),
        (42, 0o102002, Some(24), Some(3))
    );
    assert_eq!(i.locks.len(), 1);
    assert_eq!(i.locks[0].kind, LockKind::Flock);
}

#[test]
fn eventfd() {
    let i = parse(b"pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\neventfd-count:                5\neventfd-id: 3\neventfd-semaphore: 1\n").unwrap();
    assert_eq!(
        i.eventfd,
        Some(EventfdInfo {
            count: 5,
            id: Some(3),
            semaphore: Some(true)
        })
    );
}

#[test]
fn epoll() {
    let i = parse(b"pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\ntfd:        5 events:       19 data:       deadbeef0005  pos:0 ino:41b sdev:f\ntfd:        7 events:        1 data:                7\n").unwrap();
    assert_eq!(i.epoll_targets.len(), 2);
    assert_eq!(
        i.epoll_targets[0],
        EpollTarget {
            tfd: 5,
            events: 0x19,
            data: 0xdeadbeef0005,
            pos: Some(0),
            ino: Some(0x41b),
            sdev: Some(0xf)
        }
    );
    assert_eq!(i.epoll_targets[1].pos, None);
}

#[test]
fn signalfd_and_timerfd() {
    let i = parse(b"pos:\t0\nflags:\t02004002\nmnt_id:\t15\nsigmask:\t0000000000004a02\n").unwrap();
    assert_eq!(i.signalfd_sigmask, Some(0x4a02));
    let i = parse(b"pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1\nclockid: 1\nticks: 3\nsettime flags: 01\nit_value: (0, 49406829)\nit_interval: (1, 500)\n").unwrap();
    assert_eq!(
        i.timerfd,
        Some(TimerfdInfo {
            clockid: 1,
            ticks: 3,
            settime_flags: 1,
            it_value: (0, 49406829),
            it_interval: (1, 500)
        })
    );
    let e = parse(b"pos:\t0\nflags:\t02\nticks: 3\n").unwrap_err();
    assert_eq!(e.line, 3);
}

#[test]
fn inotify_and_fanotify() {
    let i = parse(b"pos:\t0\nflags:\t00\nmnt_id:\t15\ninotify wd:1 ino:1a sdev:800001 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:1a0000009c7ed1d0\ninotify wd:2 ino:2 sdev:3 mask:4 ignored_mask:0\n").unwrap();
    assert_eq!(i.inotify_watches.len(), 2);
    let w = &i.inotify_watches[0];
    assert_eq!((w.wd, w.ino, w.sdev, w.mask), (1, 0x1a, 0x800001, 0xfff));
    let h = w.fhandle.as_ref().unwrap();
    assert_eq!((h.bytes, h.handle_type), (8, 1));
    assert_eq!(h.handle, [0x1a, 0, 0, 0, 0x9c, 0x7e, 0xd1, 0xd0]);
    assert_eq!(i.inotify_watches[1].fhandle, None);

    let i = parse(b"pos:\t0\nflags:\t00\nfanotify flags:10 event-flags:0\nfanotify mnt_id:12 mflags:0 mask:3b ignored_mask:0\nfanotify ino:4f969 sdev:800013 mflags:0 mask:3b ignored_mask:40000000 fhandle-bytes:8 fhandle-type:1 f_handle:69f90400c275b5b4\n").unwrap();
    assert_eq!(
        i.fanotify,
        Some(FanotifyInfo {
            flags: 0x10,
            event_flags: 0
        })
    );
    assert_eq!(
        i.fanotify_marks[0].target,
        FanotifyTarget::Mount { mnt_id: 0x12 }
    );
    assert!(matches!(
        i.fanotify_marks[1].target,
        FanotifyTarget::Inode { ino: 0x4f969, .. }
    ));
}

#[test]
fn bad_and_truncated() {
    assert_eq!(parse(b"").unwrap_err().error, ParseError::Missing("pos"));
    assert_eq!(
        parse(b"pos:\t1\n").unwrap_err().error,
        ParseError::Missing("flags")
    );
    assert!(parse(b"pos:\tx\nflags:\t0\n").is_err());
    assert!(parse(b"pos:\t0\nflags:\t9\n").is_err());
    assert!(parse(b"pos:\t0\nflags:\t0\ntfd: 5 events: 1\n").is_err());
    assert!(parse(b"pos:\t0\nflags:\t0\ninotify wd:1 ino:1 sdev:1 mask:1 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:abc\n").is_err());
    assert!(parse(b"pos:\t0\nflags:\t0\nit_value: (1 2)\n").is_err());
    // Unknown keys (pidfd's Pid:, tty-index, …) are ignored.
    assert!(parse(b"pos:\t0\nflags:\t0\nPid:\t12\ntty-index:\t3\n").is_ok());
    let full = b"pos:\t0\nflags:\t02\nmnt_id:\t15\nclockid: 1\nticks: 3\nsettime flags: 01\nit_value: (0, 4)\nit_interval: (1, 5)\ntfd: 5 events: 19 data: 5 pos:0 ino:41b sdev:f\n";
    for n in 0..full.len() {
        let _ = parse(&full[..n]);
    }
}

#[test]
fn pidfd() {
    // A process in a nested PID namespace: the last NSpid is its own.
    let i =
        parse(b"pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t2158\nPid:\t4242\nNSpid:\t4242\t7\n")
            .unwrap();
    assert_eq!(
        i.pidfd,
        Some(PidfdInfo {
            pid: 4242,
            nspid: Some(7)
        })
    );
    // Reaped: Pid -1 and no NSpid line.
    let i = parse(b"pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t2158\nPid:\t-1\n").unwrap();
    assert_eq!(
        i.pidfd,
        Some(PidfdInfo {
            pid: -1,
            nspid: None
        })
    );
}
