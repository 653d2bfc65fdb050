//! The mounts of a namespace as a checked tree, in mount order (parents
//! before children, siblings by mount id, as CRIU sorts them), and where
//! each one's contents come from at restore ([`Source`]). Both the dump
//! (to refuse what could not come back) and the restore (from images
//! that may be damaged or hand-made) build it.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use crate::images::pb;

use super::{MntError, ext_key, fresh};

/// The base a mount's root path is taken relative to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    /// The namespace's root mount: `--root` at restore.
    Root,
    /// An external mount, by key.
    External(String),
    /// A filesystem mounted fresh (the mount of it with the shortest
    /// root stands for it: index into [`Tree::mounts`]).
    Fresh(usize),
}

/// Where a mount's contents come from: `base`, at `sub` below the path
/// the base's mount has as its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub base: Base,
    pub sub: PathBuf,
}

#[derive(Debug)]
pub struct Tree {
    /// Parents before children; the root first.
    pub mounts: Vec<pb::MntEntry>,
    /// Index of each mount's parent in `mounts` (the root's is itself).
    pub parent: Vec<usize>,
    pub source: Vec<Source>,
}

/// `path` split into normal components; `None` if it is not absolute or
/// has `.`/`..` parts (image paths are the kernel's, which never do).
fn components(path: &str) -> Option<Vec<&str>> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return None;
    }
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(s) => out.push(s.to_str()?),
            _ => return None,
        }
    }
    Some(out)
}

/// `inner` below `outer` (both absolute): the relative rest.
pub fn below(outer: &str, inner: &str) -> Option<PathBuf> {
    let (o, i) = (components(outer)?, components(inner)?);
    if i.len() < o.len() || i[..o.len()] != o[..] {
        return None;
    }
    Some(i[o.len()..].iter().collect())
}

impl Tree {
    /// Checks `entries` (as read from `file`) and orders them. Every
    /// mount but one has its parent among them; mount points are
    /// absolute and below their parent's.
    pub fn new(entries: Vec<pb::MntEntry>, file: &str) -> Result<Tree, MntError> {
        let bad = |what: String| MntError::Invalid {
            file: file.to_string(),
            what,
        };
        if entries.is_empty() {
            return Err(bad("no mounts".into()));
        }
        let mut by_id: HashMap<u32, usize> = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            if by_id.insert(e.mnt_id, i).is_some() {
                return Err(bad(format!("mount id {} appears twice", e.mnt_id)));
            }
            if components(&e.mountpoint).is_none() {
                return Err(bad(format!(
                    "mount {} has mount point {:?}, not a plain absolute path",
                    e.mnt_id, e.mountpoint
                )));
            }
        }
        let roots: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                let e = &entries[i];
                e.parent_mnt_id == e.mnt_id || !by_id.contains_key(&e.parent_mnt_id)
            })
            .collect();
        let [root] = roots[..] else {
            return Err(bad(format!(
                "{} mounts have no parent among the namespace's mounts (one root expected)",
                roots.len()
            )));
        };
        if entries[root].mountpoint != "/" {
            return Err(bad(format!(
                "the root mount {} is at {:?}, not at /",
                entries[root].mnt_id, entries[root].mountpoint
            )));
        }
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if i != root {
                children.entry(by_id[&e.parent_mnt_id]).or_default().push(i);
            }
        }
        for c in children.values_mut() {
            c.sort_by_key(|&i| entries[i].mnt_id);
        }
        // Depth first from the root: a mount comes after its parent, and
        // siblings in mount-id order (the order they were mounted in).
        let mut order = Vec::with_capacity(entries.len());
        let mut stack = vec![root];
        let mut seen = HashSet::new();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            order.push(i);
            if let Some(c) = children.get(&i) {
                stack.extend(c.iter().rev());
            }
        }
        if order.len() != entries.len() {
            return Err(bad(format!(
                "{} mounts are not reachable from the root mount (a cycle of parents)",
                entries.len() - order.len()
            )));
        }
        let pos: HashMap<usize, usize> = order.iter().enumerate().map(|(p, &i)| (i, p)).collect();
        let mut slots: Vec<Option<pb::MntEntry>> = entries.into_iter().map(Some).collect();
        let mounts: Vec<pb::MntEntry> = order
            .iter()
            .map(|&i| slots[i].take().expect("each index once"))
            .collect();
        let parent: Vec<usize> = mounts
            .iter()
            .enumerate()
            .map(|(p, e)| {
                if p == 0 {
                    0
                } else {
                    pos[&by_id[&e.parent_mnt_id]]
                }
            })
            .collect();
        for (p, e) in mounts.iter().enumerate().skip(1) {
            let up = &mounts[parent[p]];
            if below(&up.mountpoint, &e.mountpoint).is_none() {
                return Err(bad(format!(
                    "mount {} at {} is not below its parent {} at {}",
                    e.mnt_id, e.mountpoint, up.mnt_id, up.mountpoint
                )));
            }
        }
        let source = sources(&mounts).map_err(|(i, why)| {
            bad(format!(
                "mount {} at {}: {why}",
                mounts[i].mnt_id, mounts[i].mountpoint
            ))
        })?;
        Ok(Tree {
            mounts,
            parent,
            source,
        })
    }

    /// Mounts whose contents come (directly or through a bind) from a
    /// filesystem of a type in `late`, or that sit below one: they can
    /// only be made once the tree's namespaces exist.
    pub fn late(&self, late: impl Fn(u32) -> bool) -> Vec<bool> {
        let mut out = vec![false; self.mounts.len()];
        for i in 1..self.mounts.len() {
            let from_late = match self.source[i].base {
                Base::Fresh(f) => late(self.mounts[f].fstype),
                _ => false,
            };
            out[i] = from_late || out[self.parent[i]];
        }
        out
    }
}

/// Each mount's [`Source`], or the index of one that has none and why.
fn sources(mounts: &[pb::MntEntry]) -> Result<Vec<Source>, (usize, String)> {
    let root = &mounts[0];
    // Device -> (base, the root path the base stands for).
    let mut bases: HashMap<u32, (Base, String)> = HashMap::new();
    bases.insert(root.root_dev, (Base::Root, root.root.clone()));
    // A filesystem mounted fresh once, whole: every mount of it is a bind
    // of some path of that one, which stands for it: the mount showing
    // most of it (mount ids are reused, so the first in mount order may
    // be a bind of a subdirectory).
    let mut whole: HashMap<u32, usize> = HashMap::new();
    for (i, e) in mounts.iter().enumerate().skip(1) {
        if fresh(e.fstype) && ext_key(e).is_none() && e.root_dev != root.root_dev {
            let best = whole.entry(e.root_dev).or_insert(i);
            if e.root.len() < mounts[*best].root.len() {
                *best = i;
            }
        }
    }
    for (dev, i) in whole {
        bases
            .entry(dev)
            .or_insert((Base::Fresh(i), "/".to_string()));
    }
    // An external mount gives its filesystem to the other mounts of it
    // only where nothing mounted fresh does (runc declares its binds of
    // /dev/null over proc files external, the /dev tmpfs being whole).
    for e in mounts.iter().skip(1) {
        if let Some(key) = ext_key(e) {
            bases
                .entry(e.root_dev)
                .or_insert((Base::External(key.to_string()), e.root.clone()));
        }
    }
    let mut out = Vec::with_capacity(mounts.len());
    out.push(Source {
        base: Base::Root,
        sub: PathBuf::new(),
    });
    for (i, e) in mounts.iter().enumerate().skip(1) {
        if let Some(key) = ext_key(e) {
            out.push(Source {
                base: Base::External(key.to_string()),
                sub: PathBuf::new(),
            });
            continue;
        }
        let Some((base, base_root)) = bases.get(&e.root_dev) else {
            let fs = e
                .fsname
                .clone()
                .unwrap_or_else(|| format!("type {}", e.fstype));
            return Err((
                i,
                format!(
                    "its filesystem ({fs}, device {}) is neither the root's, nor external, \
                     nor one criu mounts again",
                    dev_str(e.root_dev)
                ),
            ));
        };
        let Some(sub) = below(base_root, &e.root) else {
            return Err((
                i,
                format!(
                    "its root {} is outside {} that the namespace's mount of device {} shows",
                    e.root,
                    base_root,
                    dev_str(e.root_dev)
                ),
            ));
        };
        out.push(Source {
            base: base.clone(),
            sub,
        });
    }
    Ok(out)
}

/// `major:minor` of a kernel-internal device number.
pub fn dev_str(dev: u32) -> String {
    format!("{}:{}", dev >> 20, dev & 0xfffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u32, parent: u32, fstype: u32, dev: u32, root: &str, mp: &str) -> pb::MntEntry {
        pb::MntEntry {
            fstype,
            mnt_id: id,
            root_dev: dev,
            parent_mnt_id: parent,
            flags: 0,
            root: root.into(),
            mountpoint: mp.into(),
            source: "x".into(),
            options: String::new(),
            ..Default::default()
        }
    }

    #[test]
    fn orders_parents_first_and_finds_sources() {
        // As CRIU writes them: children first.
        let t = Tree::new(
            vec![
                m(109, 106, 5, 50, "/d", "/mnt"),
                m(108, 106, 5, 50, "/", "/tmp"),
                m(107, 106, 1, 49, "/", "/proc"),
                m(106, 50, 0, 0xfe00000, "/tmp/mx/root", "/"),
            ],
            "mountpoints-12.img",
        )
        .unwrap();
        let ids: Vec<u32> = t.mounts.iter().map(|e| e.mnt_id).collect();
        assert_eq!(ids, [106, 107, 108, 109]);
        assert_eq!(t.source[1].base, Base::Fresh(1));
        // The tmpfs's whole mount stands for it; /mnt binds /d.
        assert_eq!(t.source[2].base, Base::Fresh(2));
        assert_eq!(t.source[3].base, Base::Fresh(2));
        assert_eq!(t.source[3].sub, PathBuf::from("d"));
        assert_eq!(t.late(|f| f == 1), [false, true, false, false]);
    }

    #[test]
    fn the_whole_mount_stands_for_its_filesystem_whatever_the_ids() {
        // The bind of /d got a lower (reused) id than the tmpfs itself.
        let t = Tree::new(
            vec![
                m(30, 2, 5, 50, "/", "/tmp"),
                m(20, 2, 5, 50, "/d", "/mnt"),
                m(2, 1, 0, 0xfe00000, "/r", "/"),
            ],
            "f",
        )
        .unwrap();
        let ids: Vec<u32> = t.mounts.iter().map(|e| e.mnt_id).collect();
        assert_eq!(ids, [2, 20, 30]);
        assert_eq!(t.source[1].base, Base::Fresh(2));
        assert_eq!(t.source[1].sub, PathBuf::from("d"));
        assert_eq!(t.source[2].base, Base::Fresh(2));
    }

    #[test]
    fn a_disk_mount_that_is_not_the_roots_is_refused() {
        let e = Tree::new(
            vec![
                m(2, 1, 0, 0xfe00000, "/r", "/"),
                m(3, 2, 0, 0x800001, "/", "/data"),
            ],
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mount 3 at /data") && e.contains("8:1"), "{e}");
        // Of the root's device, below its root: a bind of --root.
        let t = Tree::new(
            vec![
                m(2, 1, 0, 0xfe00000, "/r", "/"),
                m(3, 2, 0, 0xfe00000, "/r/a/b", "/data"),
            ],
            "f",
        )
        .unwrap();
        assert_eq!(t.source[1].base, Base::Root);
        assert_eq!(t.source[1].sub, PathBuf::from("a/b"));
        // Outside its root: refused.
        assert!(
            Tree::new(
                vec![
                    m(2, 1, 0, 0xfe00000, "/r", "/"),
                    m(3, 2, 0, 0xfe00000, "/etc/hosts", "/etc/hosts"),
                ],
                "f",
            )
            .is_err()
        );
    }

    #[test]
    fn damaged_trees_are_refused() {
        let two_roots = vec![m(2, 1, 0, 1, "/", "/"), m(3, 9, 5, 2, "/", "/t")];
        assert!(Tree::new(two_roots, "f").is_err());
        let cycle = vec![
            m(2, 1, 0, 1, "/", "/"),
            m(3, 4, 5, 2, "/", "/a"),
            m(4, 3, 5, 2, "/", "/a/b"),
        ];
        assert!(Tree::new(cycle, "f").is_err());
        let dotdot = vec![m(2, 1, 0, 1, "/", "/"), m(3, 2, 5, 2, "/", "/a/../b")];
        assert!(Tree::new(dotdot, "f").is_err());
        let outside = vec![
            m(2, 1, 0, 1, "/", "/"),
            m(3, 2, 5, 2, "/", "/a"),
            m(4, 3, 5, 3, "/", "/b"),
        ];
        assert!(Tree::new(outside, "f").is_err());
        let dup = vec![m(2, 1, 0, 1, "/", "/"), m(2, 2, 5, 2, "/", "/a")];
        assert!(Tree::new(dup, "f").is_err());
        assert!(Tree::new(vec![], "f").is_err());
    }
}
