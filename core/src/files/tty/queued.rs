//! The bytes queued in a pty, in both directions: read at dump (which
//! consumes them) and written back into the other end when the dump ends
//! (the tasks may go on), with the line discipline raw meanwhile.

use std::os::fd::OwnedFd;

use super::{TtyDump, pts_name};
use crate::sys::tty as sys;

use linux_raw_sys::general::{EXTPROC, IXON};

/// Queued bytes kept per terminal side (CRIU's limit).
const DATA_LIMIT: usize = 16384;

/// Reads what is queued for reading on `fd` without blocking (the count
/// from `FIONREAD`, readiness from `poll`), dropping packet mode's leading
/// byte of each read.
pub(super) fn read_queue(fd: &OwnedFd, packet: bool) -> Vec<u8> {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut out = Vec::new();
    while out.len() < DATA_LIMIT {
        let n = sys::get_int(fd, sys::FIONREAD).unwrap_or(0);
        if n <= 0 {
            break;
        }
        let mut pfd = [PollFd::new(fd, PollFlags::IN)];
        if !matches!(
            poll(&mut pfd, Some(&rustix::time::Timespec::default())),
            Ok(1)
        ) || !pfd[0].revents().contains(PollFlags::IN)
        {
            break;
        }
        let want = (n as usize).min(DATA_LIMIT - out.len()) + usize::from(packet);
        let mut buf = vec![0u8; want];
        match rustix::io::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) if packet => {
                // A status packet (non-zero first byte) carries no data.
                if buf[0] == 0 {
                    out.extend_from_slice(&buf[1..k]);
                }
            }
            Ok(k) => out.extend_from_slice(&buf[..k]),
        }
    }
    out
}

impl Drop for TtyDump {
    /// The queued data goes back where it was read from (written into the
    /// other end): the tasks may go on, and for a killed tree it does no
    /// harm.
    fn drop(&mut self) {
        // Raw while the bytes go back, so that the line discipline neither
        // translates nor echoes them (the tasks are still frozen).
        let mut saved = Vec::new();
        for d in &self.data {
            if let Some(e) = self.ends.iter().find(|e| e.info_id == d.tty_id)
                && !saved.iter().any(|(i, _, _)| *i == e.index)
                && let Ok(t) = sys::tcgets(&e.own)
            {
                // A packet-mode master reports changes of IXON and
                // EXTPROC: those stay.
                let keep = if self.ends.iter().any(|o| o.index == e.index && o.packet) {
                    (IXON, EXTPROC)
                } else {
                    (0, 0)
                };
                let mut raw = t;
                raw.c_iflag &= keep.0;
                raw.c_oflag = 0;
                raw.c_lflag &= keep.1;
                if sys::tcsets(&e.own, &raw).is_ok() {
                    saved.push((e.index, &e.own, t));
                }
            }
        }
        self.write_back();
        for (_, fd, t) in saved {
            let _ = sys::tcsets(fd, &t);
        }
    }
}

impl TtyDump {
    fn write_back(&self) {
        for d in &self.data {
            let Some(from) = self.ends.iter().find(|e| e.info_id == d.tty_id) else {
                continue;
            };
            let Some(other) = self
                .ends
                .iter()
                .find(|e| e.index == from.index && e.master != from.master)
            else {
                continue;
            };
            let mut off = 0;
            while off < d.data.len() {
                match rustix::io::write(&other.own, &d.data[off..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => off += n,
                }
            }
            if off < d.data.len() {
                crate::pr_warn!(
                    "{}: {} queued bytes could not be put back",
                    pts_name(from),
                    d.data.len() - off
                );
            }
        }
    }
}
