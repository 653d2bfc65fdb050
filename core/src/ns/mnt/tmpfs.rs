//! The contents of a tmpfs mount, as CRIU keeps them: a gzip-compressed
//! tar archive per tmpfs superblock, `tmpfs-dev-N.tar.gz.img` (N is the
//! superblock's device number in the kernel's encoding, see
//! [`image_name`]). CRIU runs GNU tar for both halves:
//!
//! - dump: `tar --create --gzip --no-unquote --no-wildcards
//!   --one-file-system --check-links --preserve-permissions --sparse
//!   --numeric-owner --directory /proc/self/fd/N .`
//! - restore: `tar --extract --gzip --no-unquote --no-wildcards
//!   --directory MOUNTPOINT` (as root, so owners and modes are kept).
//!
//! [`dump`] writes what that `tar --create` writes: a GNU-format archive
//! whose names start with `./` (the root itself is `./`), numeric owners
//! only, whole-second modification times, GNU "old" sparse entries (type
//! `S`) for files with holes, one entry per inode and hard-link entries
//! (type `1`) for its other names, FIFOs and device nodes; sockets are
//! left out with a warning, and the mounts below the root are not entered.
//! It adds what CRIU's tar leaves out: extended attributes of the `user.`,
//! `trusted.` and `security.` namespaces, as PAX `SCHILY.xattr.NAME`
//! records (what `tar --xattrs` writes; GNU tar without `--xattrs` skips
//! them silently, so CRIU's restore still takes these archives).
//!
//! [`restore`] extracts such an archive, or one GNU tar wrote, into a fresh
//! tmpfs the way `tar --extract` does as root, but treats the archive as
//! hostile: every path is resolved below the root with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`), one
//! component at a time, and leaves are made with the `*at` calls that do
//! not follow symlinks; `..` and absolute names are refused; memory stays
//! bounded (file data is streamed through one buffer; long names, PAX
//! headers and sparse maps have fixed limits; one small record per
//! directory is kept for its mode and time, as GNU tar keeps). The tar
//! crate's own reader holds long names and PAX headers of any length in
//! memory, so the archive is walked here (`read.rs`, `write.rs`), with the
//! crate's header types for the fields.
//!
//! Where this differs from GNU tar: a restore refuses (GNU tar strips or
//! follows) absolute names, `..` and symlinks on a path; it refuses the
//! PAX sparse format (`tar --posix`/`--xattrs` on sparse files), which
//! CRIU's tar does not write; a dump archives modification times before
//! 1970 as 0, and no POSIX ACLs (`system.` attributes). Owners are the
//! ids the calling thread sees: to get what CRIU's tar, run in the
//! dumped tree's user namespace, writes, dump from a process in that
//! namespace (or map the ids).

mod dump;
mod read;
mod restore;
mod write;

use rustix::io::Errno;

pub use dump::dump;
pub use restore::restore;

/// The kernel's encoding of a device number (CRIU's `MKKDEV`: major in the
/// bits above 20, minor below), which is how CRIU keeps a mount's `s_dev`
/// (the `root_dev` of its `mnt` image entry) and names tmpfs archives.
pub fn kdev(major: u32, minor: u32) -> u64 {
    (u64::from(major) << 20) | u64::from(minor & 0xf_ffff)
}

/// The kernel encoding ([`kdev`]) of a device number as `stat` returns it
/// (`st_dev` of a file on the mount).
pub fn kdev_of(st_dev: u64) -> u64 {
    kdev(rustix::fs::major(st_dev), rustix::fs::minor(st_dev))
}

/// The image file CRIU 4.1.1 writes for the tmpfs whose superblock has
/// device `s_dev`, in the kernel encoding CRIU keeps (see [`kdev`]; from
/// `/proc/PID/mountinfo`'s `MAJOR:MINOR` or a `stat`'s `st_dev` use
/// [`kdev`] / [`kdev_of`] first): `tmpfs-dev-45.tar.gz.img` for `0:45`.
pub fn image_name(s_dev: u64) -> String {
    crate::images::Kind::TmpfsDev.file_name(s_dev)
}

/// The name older CRIU versions used, by mount id (`tmpfs-ID.tar.gz.img`):
/// CRIU's restore falls back to it when the `tmpfs-dev-N` image is missing.
pub fn legacy_image_name(mnt_id: u64) -> String {
    crate::images::Kind::TmpfsImg.file_name(mnt_id)
}

/// What a dump archived or a restore extracted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TmpfsStats {
    /// Directories, the root included.
    pub dirs: u64,
    /// Regular files (each inode once).
    pub files: u64,
    /// Of those, the ones kept as GNU sparse entries.
    pub sparse_files: u64,
    pub symlinks: u64,
    /// Extra names of an inode already archived (hard-link entries).
    pub hard_links: u64,
    pub fifos: u64,
    /// Character and block device nodes.
    pub devices: u64,
    /// File data archived or written, holes left out.
    pub data_bytes: u64,
    /// Extended attributes archived or set.
    pub xattrs: u64,
    /// Dump: sockets left out (GNU tar's "socket ignored").
    pub sockets_skipped: u64,
    /// Dump: mount points of other mounts below the root, archived as
    /// empty entries of their kind without entering them.
    pub other_mounts: u64,
    /// Dump: inodes with names outside the tree (GNU tar's
    /// `--check-links` warning "Missing links").
    pub missing_links: u64,
}

/// What went wrong dumping or restoring tmpfs contents. Restore errors name
/// the archive entry (`./a/b`, or the header's byte offset before a name is
/// known).
#[derive(Debug, thiserror::Error)]
pub enum TmpfsError {
    #[error("dumping tmpfs contents: {path}: {what}: {source}")]
    Dump {
        path: String,
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("dumping tmpfs contents: {path}: {what}")]
    Changed { path: String, what: String },
    #[error("dumping tmpfs contents: writing the archive: {source}")]
    Write {
        #[source]
        source: std::io::Error,
    },
    #[error("restoring tmpfs contents: reading the archive at byte {offset} ({entry}): {source}")]
    Read {
        entry: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "restoring tmpfs contents: the archive ends at byte {offset}, in the middle of {entry}"
    )]
    Truncated { entry: String, offset: u64 },
    #[error("restoring tmpfs contents: {entry}: {what}")]
    Malformed { entry: String, what: String },
    #[error("restoring tmpfs contents: {entry}: refused: {why}")]
    Unsafe { entry: String, why: String },
    #[error("restoring tmpfs contents: {entry}: {what}: {source}")]
    Restore {
        entry: String,
        what: &'static str,
        #[source]
        source: Errno,
    },
}

/// Longest name (GNU long name or link target, PAX `path`/`linkpath`) a
/// restore takes: far beyond `PATH_MAX`, small enough to hold.
pub const MAX_NAME: u64 = 64 << 10;
/// Largest PAX extended header a restore takes (extended attributes are at
/// most 64 KiB a value, 64 KiB of names a file).
pub const MAX_PAX: u64 = 4 << 20;
/// Most data segments of one sparse file a restore takes (16 bytes each).
pub const MAX_SPARSE_SEGMENTS: usize = 1 << 20;

/// The extended attribute namespaces archived and restored (GNU tar's
/// `--xattrs-include='*'` minus `system.`, which holds POSIX ACLs that GNU
/// tar keeps apart with `--acls`).
pub(crate) fn xattr_wanted(name: &[u8]) -> bool {
    [&b"user."[..], b"trusted.", b"security."]
        .iter()
        .any(|p| name.starts_with(p) && name.len() > p.len())
}

/// A name as an error message shows it.
pub(crate) fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_follow_criu() {
        // What CRIU 4.1.1 wrote for a tmpfs at 0:45 (s_dev 0x2d).
        assert_eq!(image_name(kdev(0, 45)), "tmpfs-dev-45.tar.gz.img");
        assert_eq!(image_name(0x2d), "tmpfs-dev-45.tar.gz.img");
        // Minors above 255 are where the kernel and the user-space
        // encodings part: kdev keeps the minor whole in the low 20 bits.
        assert_eq!(kdev(0, 300), 300);
        assert_eq!(kdev_of(rustix::fs::makedev(0, 300)), 300);
        assert_ne!(rustix::fs::makedev(0, 300), 300);
        assert_eq!(kdev(8, 1), (8 << 20) | 1);
        assert_eq!(kdev_of(rustix::fs::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(
            image_name(kdev(259, 0x12345)),
            format!("tmpfs-dev-{}.tar.gz.img", (259u64 << 20) | 0x12345)
        );
        assert_eq!(legacy_image_name(78), "tmpfs-78.tar.gz.img");
    }

    #[test]
    fn xattr_namespaces() {
        assert!(xattr_wanted(b"user.foo"));
        assert!(xattr_wanted(b"trusted.overlay.opaque"));
        assert!(xattr_wanted(b"security.capability"));
        assert!(!xattr_wanted(b"system.posix_acl_access"));
        assert!(!xattr_wanted(b"user."));
        assert!(!xattr_wanted(b"userfoo"));
        assert!(!xattr_wanted(b""));
    }
}
