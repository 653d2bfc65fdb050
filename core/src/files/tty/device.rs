//! What a terminal's device number says: which end of a pty it is, its
//! pty index, or which other terminal (`/dev/tty`, `/dev/console`, a
//! virtual console) it is; and the ids `tty-info.img` gives each side.

use std::os::unix::fs::MetadataExt;

use crate::images::pb;

/// `TTYAUX_MAJOR`: `/dev/tty` (0), `/dev/console` (1), `/dev/ptmx` (2).
const TTYAUX_MAJOR: u32 = 5;
const PTMX_MINOR: u32 = 2;
/// `UNIX98_PTY_MASTER_MAJOR`, `UNIX98_PTY_SLAVE_MAJOR`, and how many
/// majors each may span (`UNIX98_PTY_MAJOR_COUNT`).
const PTY_MASTER_MAJOR: u32 = 128;
const PTY_SLAVE_MAJOR: u32 = 136;
const PTY_MAJOR_COUNT: u32 = 8;
/// `TTY_MAJOR`: virtual consoles are its minors 1-63.
const TTY_MAJOR: u32 = 4;
/// CRIU's driver indices of the other terminals (its tty-info id is the
/// index times two).
const CONSOLE_INDEX: u32 = 1002;
const VT_INDEX: u32 = 1004;
const CTTY_INDEX: u32 = 1006;

/// Which end of a pty a device number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtySide {
    Master,
    /// With the pts index.
    Slave(u32),
}

/// `major`/`minor` of a device number as the kernel encodes it in stat.
pub fn major_minor(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// The pty end of character device `rdev`, if it is one.
pub fn pty_side(rdev: u64) -> Option<PtySide> {
    let (major, minor) = major_minor(rdev);
    if (major == TTYAUX_MAJOR && minor == PTMX_MINOR)
        || (PTY_MASTER_MAJOR..PTY_MASTER_MAJOR + PTY_MAJOR_COUNT).contains(&major)
    {
        return Some(PtySide::Master);
    }
    if (PTY_SLAVE_MAJOR..PTY_SLAVE_MAJOR + PTY_MAJOR_COUNT).contains(&major) {
        return Some(PtySide::Slave((major - PTY_SLAVE_MAJOR) * 256 + minor));
    }
    None
}

/// Is `meta` (a stat of an fd) a pty end?
pub fn is_pty(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && pty_side(meta.rdev()).is_some()
}

/// The type and CRIU's driver index of a terminal that is no pty end but
/// that CRIU dumps as a `TTY`: `/dev/console`, `/dev/tty`, a virtual
/// console.
pub fn other_terminal(rdev: u64) -> Option<(pb::TtyType, u32)> {
    match major_minor(rdev) {
        (TTYAUX_MAJOR, 1) => Some((pb::TtyType::Console, CONSOLE_INDEX)),
        (TTYAUX_MAJOR, 0) => Some((pb::TtyType::Ctty, CTTY_INDEX)),
        (TTY_MAJOR, 1..=63) => Some((pb::TtyType::Vt, VT_INDEX)),
        _ => None,
    }
}

/// Is `meta` (a stat of an fd) a terminal dumped as a `TTY` entry? Not
/// a virtual console: CRIU's images of one are read, but our dump
/// refuses it (`crate::dump::files`), as nothing here tests that its
/// state comes back.
pub fn is_tty(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device()
        && (pty_side(meta.rdev()).is_some()
            || other_terminal(meta.rdev()).is_some_and(|(ty, _)| ty != pb::TtyType::Vt))
}

/// The `tty_info_entry` id of side `master` of pty `index`.
pub fn info_id(index: u32, master: bool) -> u32 {
    (index << 1) + u32::from(master)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_name_the_pty_ends() {
        // /dev/ptmx 5:2, /dev/pts/3 136:3, /dev/pts/300 137:44, /dev/tty 5:0,
        // /dev/console 5:1.
        assert_eq!(pty_side(0x502), Some(PtySide::Master));
        assert_eq!(pty_side(0x8803), Some(PtySide::Slave(3)));
        assert_eq!(pty_side(0x892c), Some(PtySide::Slave(300)));
        assert_eq!(pty_side(0x500), None);
        assert_eq!(pty_side(0x501), None);
        // A minor above 255 (new encoding): 136:1000.
        let rdev = (1000 & 0xff) | (136 << 8) | ((1000 & !0xff) << 12);
        assert_eq!(major_minor(rdev), (136, 1000));
        assert_eq!(pty_side(rdev), Some(PtySide::Slave(1000)));
    }

    #[test]
    fn info_ids_pair_slave_and_master() {
        assert_eq!(info_id(3, false), 6);
        assert_eq!(info_id(3, true), 7);
    }
}
