//! Which fds of the dumped tree share one open file description (dup,
//! inherited across fork, passed over a socket), so that they get one
//! file id (CRIU's `kcmp-ids.c`).
//!
//! Fds are grouped by what one open file description holds for all its
//! fds (the inode, position and status flags, from fdinfo: a hash map),
//! and within a group kept sorted in the order kcmp gives the kernel's file
//! pointers: finding an fd's description is a binary search of kcmp calls,
//! so the whole tree costs O(n log n) comparisons (and, as fds of
//! different descriptions mostly differ in position or flags, about one
//! each) instead of one kcmp against every fd seen before. Where kcmp
//! gives no order (it has none, or it fails), the group is searched
//! linearly.

use std::collections::{HashMap, HashSet};

use rustix::process::Pid;

use crate::sys::kcmp::{KcmpOrder, KcmpType, kcmp};

/// One fd already given a file id.
#[derive(Clone, Copy, Debug)]
struct Seen {
    pid: i32,
    fd: i32,
    id: u32,
}

/// The fds of one inode.
#[derive(Debug, Default)]
struct Group {
    /// In kcmp order while `sorted`, else in the order seen.
    fds: Vec<Seen>,
    sorted: bool,
}

/// Where a new fd goes, from [`FileIds::find`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// An earlier fd has the same open file: its id.
    Shared(u32),
    /// A new open file; pass this to [`FileIds::insert`].
    New(Slot),
}

/// A place in an inode's group (opaque outside this module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    at: Option<usize>,
}

/// What every fd of one open file description shows alike in its fdinfo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FdKey {
    /// The inode (0 when fdinfo does not say).
    pub ino: u64,
    pub pos: i64,
    /// Status flags, without the per-fd `O_CLOEXEC`.
    pub flags: u32,
}

/// Every fd of the dump given a file id so far.
#[derive(Debug, Default)]
pub struct FileIds {
    by_ino: HashMap<FdKey, Group>,
    /// Tasks whose fds were seen, in the order first seen.
    pids: Vec<i32>,
    pid_set: HashSet<i32>,
}

/// kcmp of fd `fd` of `pid` with a seen fd: `None` when it fails.
fn compare(pid: i32, fd: i32, s: &Seen) -> Option<KcmpOrder> {
    let (a, b) = (Pid::from_raw(pid)?, Pid::from_raw(s.pid)?);
    kcmp(a, b, KcmpType::File, fd as u32, s.fd as u32).ok()
}

impl FileIds {
    /// Is fd `fd` of task `pid`, whose description shows `key`, an open
    /// file seen before?
    pub fn find(&mut self, pid: i32, fd: i32, ino: FdKey) -> Lookup {
        let g = self.by_ino.entry(ino).or_insert_with(|| Group {
            fds: Vec::new(),
            sorted: true,
        });
        if g.sorted {
            let (mut lo, mut hi) = (0, g.fds.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match compare(pid, fd, &g.fds[mid]) {
                    Some(KcmpOrder::Equal) => return Lookup::Shared(g.fds[mid].id),
                    Some(KcmpOrder::Less) => hi = mid,
                    Some(KcmpOrder::Greater) => lo = mid + 1,
                    // No order: this group is searched linearly from now on.
                    Some(KcmpOrder::Unordered) | None => {
                        g.sorted = false;
                        break;
                    }
                }
            }
            if g.sorted {
                return Lookup::New(Slot { at: Some(lo) });
            }
        }
        match g
            .fds
            .iter()
            .find(|s| compare(pid, fd, s) == Some(KcmpOrder::Equal))
        {
            Some(s) => Lookup::Shared(s.id),
            None => Lookup::New(Slot { at: None }),
        }
    }

    /// Records fd `fd` of `pid` (showing `key`) as file `id`; `slot` from
    /// [`FileIds::find`] for a new open file, `None` for one found shared.
    pub fn insert(&mut self, pid: i32, fd: i32, ino: FdKey, id: u32, slot: Option<Slot>) {
        if self.pid_set.insert(pid) {
            self.pids.push(pid);
        }
        // An fd sharing an open file seen before adds nothing to search.
        let Some(slot) = slot else { return };
        let g = self.by_ino.entry(ino).or_default();
        let s = Seen { pid, fd, id };
        match slot.at {
            Some(at) if g.sorted && at <= g.fds.len() => g.fds.insert(at, s),
            _ => {
                g.sorted = false;
                g.fds.push(s);
            }
        }
    }

    /// The tasks whose fds were seen, in order.
    pub fn pids(&self) -> &[i32] {
        &self.pids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn dups_share_an_id_and_other_opens_do_not() {
        let pid = std::process::id() as i32;
        let path = std::env::temp_dir().join(format!("file-ids-{pid}"));
        std::fs::write(&path, b"x").unwrap();
        // Many open files of one inode, each dup'ed once.
        let files: Vec<std::fs::File> = (0..40)
            .map(|_| std::fs::File::open(&path).unwrap())
            .collect();
        let dups: Vec<std::os::fd::OwnedFd> =
            files.iter().map(|f| rustix::io::dup(f).unwrap()).collect();
        let ino = FdKey {
            ino: 7,
            ..FdKey::default()
        };
        let mut ids = FileIds::default();
        for (i, f) in files.iter().enumerate() {
            let Lookup::New(slot) = ids.find(pid, f.as_raw_fd(), ino) else {
                panic!("open {i} found shared");
            };
            ids.insert(pid, f.as_raw_fd(), ino, i as u32 + 1, Some(slot));
        }
        for (i, d) in dups.iter().enumerate().rev() {
            assert_eq!(
                ids.find(pid, d.as_raw_fd(), ino),
                Lookup::Shared(i as u32 + 1)
            );
        }
        assert_eq!(ids.pids(), &[pid]);
        let _ = std::fs::remove_file(&path);
    }
}
