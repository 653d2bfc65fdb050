//! Kernel constants come from linux-raw-sys, never copied by hand (per
//! arch they differ: ppc64's `SO_RCVLOWAT` is 16, and 18 is its
//! `SO_RCVTIMEO`). Two kinds of test, run natively and under each
//! foreign target's qemu-user:
//!
//! - behaviour: the socket options dump reads are the options the kernel
//!   (or qemu, which translates the target's numbers) takes them for;
//! - source: no `const` in core, the parasite or the restorer gives a
//!   kernel-named constant a number of its own, except in
//!   `core/src/sys/kconst.rs` (the few linux-raw-sys lacks, from generic
//!   headers) and the short list below.

#[path = "common/skipping.rs"]
mod skipping;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use criu_core::sys::sockopt as so;
use rustix::net::{AddressFamily, SocketType};

fn unix_socket() -> OwnedFd {
    rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap()
}

#[test]
fn socket_option_numbers_are_this_targets() {
    let raw = |n: u32| n;
    assert_eq!(so::SOL_SOCKET, raw(linux_raw_sys::net::SOL_SOCKET));
    assert_eq!(so::SO_RCVLOWAT, raw(linux_raw_sys::net::SO_RCVLOWAT));
    assert_eq!(so::SO_PEEK_OFF, raw(linux_raw_sys::net::SO_PEEK_OFF));
    assert_eq!(so::SO_PRIORITY, raw(linux_raw_sys::net::SO_PRIORITY));
    assert_eq!(so::SO_PASSSEC, raw(linux_raw_sys::net::SO_PASSSEC));
    if cfg!(target_arch = "powerpc64") {
        // The bug this file exists for: 18 is SO_RCVTIMEO on ppc64.
        assert_eq!(so::SO_RCVLOWAT, 16);
    }
}

/// The receive timeout's raw bytes, read through the target's own
/// `SO_RCVTIMEO` number (rustix asks for `SO_RCVTIMEO_NEW`, which
/// Debian 12's qemu-aarch64 answers with 4 bytes where rustix insists
/// on 16, a qemu bug and not what this test is about).
fn rcvtimeo(sk: &OwnedFd) -> (usize, [u8; 16]) {
    let mut buf = [0u8; 16];
    let len = so::get_bytes(
        sk,
        so::SOL_SOCKET,
        linux_raw_sys::net::SO_RCVTIMEO,
        Some(&mut buf),
    )
    .expect("getsockopt(SO_RCVTIMEO)");
    (len, buf)
}

/// `SO_RCVLOWAT` set through our number reads back through it and leaves
/// the receive timeout alone. With ppc64's numbers mixed up (18 is
/// `SO_RCVTIMEO` there), qemu-ppc64le or a ppc64 kernel would take the
/// int for a timeval and fail, or change the timeout.
#[test]
fn rcvlowat_is_rcvlowat() {
    let sk = unix_socket();
    let before = rcvtimeo(&sk);
    so::set_int(&sk, so::SOL_SOCKET, so::SO_RCVLOWAT, 7).expect("set SO_RCVLOWAT");
    assert_eq!(
        so::get_int(&sk, so::SOL_SOCKET, so::SO_RCVLOWAT).unwrap(),
        7
    );
    let after = rcvtimeo(&sk);
    assert_eq!(before, after, "setting SO_RCVLOWAT changed SO_RCVTIMEO");
    // The other options dump reads: each a readable int.
    for opt in [
        so::SO_PRIORITY,
        so::SO_PASSSEC,
        so::SO_DONTROUTE,
        so::SO_NO_CHECK,
    ] {
        so::get_int(&sk, so::SOL_SOCKET, opt).unwrap();
    }
    assert_eq!(
        so::get_int(&sk, so::SOL_SOCKET, so::SO_PEEK_OFF).unwrap(),
        -1
    );
}

/// Names that look like kernel constants and may have a literal value:
/// what linux-raw-sys does not export (each with its header), and names
/// of our own that share a kernel prefix.
const ALLOWED: &[&str] = &[
    "SECBIT_NO_SETUID_FIXUP", // linux/securebits.h: not in linux-raw-sys
    "RSEQ_FLAG_UNREGISTER",   // linux/rseq.h: not in linux-raw-sys
    "SCM_MAX_FD",             // include/net/scm.h: kernel-internal, no uapi
    "FL_POSIX",               // /proc/locks kinds (our own numbering)
    "FL_FLOCK",
    "FL_OFD",
];

/// Our own names that merely share a kernel prefix: sizes of structures
/// (pinned by layout asserts beside them) and counts.
fn own_name(name: &str) -> bool {
    name.ends_with("_SIZE") || name.ends_with("_LEN") || name.ends_with("_COUNT")
}

/// Prefixes of kernel constant names (socket, netlink, ptrace, prctl,
/// clone, mmap, signal, futex, tty, file, errno, ...).
const KERNEL_PREFIXES: &[&str] = &[
    "SO_",
    "SOL_",
    "SCM_",
    "SOCK_",
    "AF_",
    "PF_",
    "IPPROTO_",
    "TCP_",
    "NLM_",
    "NLMSG_",
    "RTM_",
    "IFLA_",
    "NETNSA_",
    "UDIAG_",
    "UNIX_DIAG_",
    "PTRACE_",
    "PR_",
    "ARCH_",
    "CLONE_",
    "MAP_",
    "PROT_",
    "MREMAP_",
    "MADV_",
    "F_",
    "O_",
    "SIG",
    "SA_",
    "FUTEX_",
    "TIOC",
    "TCGETS",
    "TCSETS",
    "IN_",
    "EPOLL",
    "SPLICE_",
    "SECCOMP_",
    "CAP_",
    "HWCAP_",
    "RSEQ_",
    "SECBIT_",
    "PRIO_",
    "LINUX_CAPABILITY_",
    "AT_",
    "STATX_",
    "MFD_",
    "TFD_",
    "SFD_",
    "EFD_",
    "E2BIG",
    "EINVAL",
    "EIO",
    "EINTR",
    "EPERM",
    "ENOENT",
    "EAGAIN",
    "ESRCH",
    "EEXIST",
    "ENOSYS",
    "EFAULT",
    "MS_",
    "MNT_",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `NAME` and the value text of a `const NAME: T = VALUE;` line whose
/// value starts with a digit or a minus and a digit (a literal).
fn literal_const(line: &str) -> Option<(&str, &str)> {
    let l = line.trim_start();
    let l = l
        .strip_prefix("pub(crate) ")
        .or_else(|| l.strip_prefix("pub(super) "))
        .or_else(|| l.strip_prefix("pub "))
        .unwrap_or(l);
    let rest = l.strip_prefix("const ")?;
    let (name, rest) = rest.split_once(':')?;
    let (_, value) = rest.split_once('=')?;
    let value = value.trim().trim_end_matches(';').trim();
    let digits = value.trim_start_matches('-').trim_start_matches('(');
    digits
        .chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| (name.trim(), value))
}

#[test]
fn no_hand_copied_kernel_constants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("core/src").is_dir() {
        // The VMs carry the test binaries, not the sources; the scan is
        // the same on every arch and runs natively and under qemu-user.
        return skipping::skip(
            "no_hand_copied_kernel_constants",
            "the sources are not here (a VM): the scan runs natively",
        );
    }
    let mut files = Vec::new();
    for dir in ["core/src", "parasite/src", "restorer/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    // kconst.rs holds what linux-raw-sys lacks; magic.rs CRIU's image
    // magics (SIGACT, TCP_STREAM, ...: not kernel constants).
    let skip = [
        root.join("core/src/sys/kconst.rs"),
        root.join("core/src/images/magic.rs"),
    ];
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !skip.contains(f)) {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let Some((name, value)) = literal_const(line) else {
                continue;
            };
            if KERNEL_PREFIXES.iter().any(|p| name.starts_with(p))
                && !ALLOWED.contains(&name)
                && !own_name(name)
            {
                let rel = f.strip_prefix(root).unwrap_or(f);
                found.push(format!("{}:{}: {name} = {value}", rel.display(), i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "kernel constants with hand-written values (take them from linux-raw-sys, \
         or add the missing ones to core/src/sys/kconst.rs):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_sees_a_hand_copied_constant() {
    // The scanner must catch what the ppc64 bug looked like.
    assert_eq!(
        literal_const("pub const SO_RCVLOWAT: u32 = 18;"),
        Some(("SO_RCVLOWAT", "18"))
    );
    assert_eq!(
        literal_const("    const EINVAL: isize = -22;"),
        Some(("EINVAL", "-22"))
    );
    assert_eq!(
        literal_const("const SO_RCVLOWAT: u32 = raw::SO_RCVLOWAT;"),
        None
    );
}
