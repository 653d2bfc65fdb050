//! Cgroups at dump: each task's set, and the directories of the tree's
//! own cgroups with their properties, as CRIU writes them in
//! `cgroup.img`.
//!
//! Sets are numbered as CRIU numbers them: [`TOOL_SET`] is the dumping
//! criu's own membership, the others from 2 in tree order. A tree wholly
//! in criu's cgroups gets no `cgroup.img` (CRIU writes none either).
//!
//! Directories, per hierarchy: the root task's cgroup (its path below the
//! hierarchy's root, `""` for the root itself) with its properties, and
//! below it the tree's own cgroups. When the root task has a cgroup of
//! its own (not criu's), every cgroup below it is recorded; when it shares
//! criu's, only those on the way to a cgroup some task of the tree is in
//! (criu's cgroup holds whatever else runs beside it, not the tree's).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::{
    Hierarchy, MAX_DIRS, TOOL_SET, V1_COMMON, V2_COMMON, find, perms_only, properties,
    v2_properties,
};
use crate::images::pb;
use crate::proc::cgroup::CgroupLine;
use crate::{pr_debug, pr_info};

/// Why a tree's cgroups cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(
        "thread {tid} of task {pid} is in cgroup {theirs} of {hierarchy}, its task in \
         {ours}: threads in cgroups of their own cannot be dumped yet"
    )]
    Thread {
        pid: i32,
        tid: i32,
        hierarchy: String,
        theirs: String,
        ours: String,
    },
    #[error(
        "task {pid} is in cgroup {path} of {hierarchy}, which criu does not see mounted: \
         its cgroups cannot be read"
    )]
    NotMounted {
        pid: i32,
        hierarchy: String,
        path: String,
    },
    #[error("cgroup {path} of {hierarchy} is outside what criu's mount of it shows")]
    Outside { hierarchy: String, path: String },
    #[error("reading cgroup directory {dir}: {source}")]
    Read {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the tree's cgroups hold more than {MAX_DIRS} directories")]
    TooMany,
    #[error(
        "task {pid} is in cgroup {outside} of {hierarchy}, which its own cgroup namespace \
         shows as {inside}: the namespace's root cannot be told (it is {why})"
    )]
    NsRoot {
        pid: i32,
        hierarchy: String,
        outside: String,
        inside: String,
        why: &'static str,
    },
    #[error(
        "task {pid} is in cgroup {path} of {hierarchy}, outside the root task's cgroup \
         namespace (whose root there is {prefix}): it cannot be restored in it"
    )]
    OutsideNs {
        pid: i32,
        hierarchy: String,
        path: String,
        prefix: String,
    },
    #[error("reading the cgroups of task {pid} from inside its cgroup namespace: {reason}")]
    Inside { pid: i32, reason: String },
}

/// `cpu,cpuacct` or `cgroup v2`, for messages.
pub fn hierarchy_label(name: &str) -> String {
    if name.is_empty() {
        "cgroup v2".into()
    } else {
        format!("the {name} hierarchy")
    }
}

/// A membership: (hierarchy name as CRIU writes it, path), sorted by name.
type Key = Vec<(String, String)>;

fn key(lines: &[CgroupLine]) -> Key {
    let mut k: Key = lines
        .iter()
        .map(|l| (l.controllers.join(","), l.path.display().to_string()))
        .collect();
    k.sort();
    k
}

/// A set: its membership with each hierarchy's cgroup namespace prefix
/// (see [`cgns_prefixes`]), sorted by name.
type SetKey = Vec<(String, String, Option<u32>)>;

/// Each hierarchy's root of the cgroup namespace of task `pid`, which is
/// its own (not criu's): the head of the task's path as criu sees it
/// (`outside`) above the path the task sees itself (`inside`, relative to
/// its namespace's root); `/` where the namespace's root is the
/// hierarchy's.
pub fn cgns_roots(
    pid: i32,
    outside: &[CgroupLine],
    inside: &[CgroupLine],
) -> Result<HashMap<String, String>, CollectError> {
    let mut out = HashMap::new();
    for o in outside {
        let name = o.controllers.join(",");
        let ext = o.path.display().to_string();
        let refuse = |inside: String, why| CollectError::NsRoot {
            pid,
            hierarchy: hierarchy_label(&name),
            outside: ext.clone(),
            inside,
            why,
        };
        let Some(i) = inside.iter().find(|i| i.controllers == o.controllers) else {
            return Err(refuse("nothing".into(), "not shown from inside"));
        };
        let int = i.path.display().to_string();
        if int == "/.." || int.starts_with("/../") {
            return Err(refuse(int, "above the namespace's root"));
        }
        let root = if ext == int {
            "/".to_string()
        } else if int == "/" {
            ext.clone()
        } else {
            match ext.strip_suffix(int.as_str()) {
                Some(p) if !p.is_empty() && !p.ends_with('/') => p.to_string(),
                _ => return Err(refuse(int, "not a suffix of the path criu sees")),
            }
        };
        out.insert(name, root);
    }
    Ok(out)
}

/// A set member's `cgns_prefix` (as CRIU records it): the length of the
/// namespace's root `root` at the head of `path`, 0 for the hierarchy's
/// root (where CRIU writes nothing, and so loses such a namespace);
/// `None` if `path` is not below `root`.
pub fn prefix_len(path: &str, root: &str) -> Option<u32> {
    if root == "/" {
        return Some(0);
    }
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/'))
        .then(|| u32::try_from(root.len()).ok())
        .flatten()
}

/// The namespace's root a `cgns_prefix` names in `path` (`/` for 0);
/// `None` if it is not a component boundary of `path`.
pub fn prefix_path(path: &str, prefix: u32) -> Option<&str> {
    let n = prefix as usize;
    if n == 0 {
        return Some("/");
    }
    let head = path.get(..n)?;
    let rest = &path[n..];
    (head.starts_with('/') && (rest.is_empty() || rest.starts_with('/'))).then_some(head)
}

/// `/proc/PID/cgroup` of task `pid` as the task itself sees it: read by a
/// thread of ours that entered the task's cgroup namespace first (the
/// paths the file shows are relative to the reader's namespace's root).
pub fn inside_view(pid: i32) -> Result<Vec<CgroupLine>, CollectError> {
    let err = |reason: String| CollectError::Inside { pid, reason };
    let link = format!("/proc/{pid}/ns/cgroup");
    let ns = std::fs::File::open(&link).map_err(|e| err(format!("opening {link}: {e}")))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsFd;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::ControlGroup),
            )
            .map_err(|e| err(format!("entering {link}: {e}")))?;
            crate::proc::ProcDir::open(pid)
                .and_then(|p| p.cgroup())
                .map_err(|e| err(e.to_string()))
        })
        .join()
        .unwrap_or_else(|_| Err(err("the reading thread panicked".into())))
    })
}

/// Compare a thread's membership with its task's.
pub fn check_thread(
    pid: i32,
    tid: i32,
    task: &[CgroupLine],
    thread: &[CgroupLine],
) -> Result<(), CollectError> {
    let (a, b) = (key(task), key(thread));
    if a == b {
        return Ok(());
    }
    let (name, theirs) = b
        .iter()
        .find(|x| !a.contains(x))
        .cloned()
        .unwrap_or_default();
    let ours = a
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| "none".into(), |(_, p)| p.clone());
    Err(CollectError::Thread {
        pid,
        tid,
        hierarchy: hierarchy_label(&name),
        theirs,
        ours,
    })
}

/// The set key of task `pid` in cgroups `lines`, with the root task's
/// cgroup namespace roots `cgns` (see [`cgns_roots`]: every task of the
/// tree is in that namespace, and must be below its root).
fn set_key(
    pid: i32,
    lines: &[CgroupLine],
    cgns: &HashMap<String, String>,
) -> Result<SetKey, CollectError> {
    key(lines)
        .into_iter()
        .map(|(name, path)| {
            let Some(root) = cgns.get(&name) else {
                return Ok((name, path, None));
            };
            match prefix_len(&path, root) {
                Some(n) => Ok((name, path, Some(n))),
                None => Err(CollectError::OutsideNs {
                    pid,
                    hierarchy: hierarchy_label(&name),
                    path,
                    prefix: root.clone(),
                }),
            }
        })
        .collect()
}

/// The tree's sets and `cgroup.img`.
#[derive(Debug, Default)]
pub struct Sets {
    /// Each task's set id.
    pub by_pid: HashMap<i32, u32>,
    /// `None` when every task is in criu's cgroups.
    pub image: Option<pb::CgroupEntry>,
}

impl Sets {
    /// The set of task `pid` (criu's for a task not recorded: a zombie).
    pub fn of(&self, pid: i32) -> u32 {
        self.by_pid.get(&pid).copied().unwrap_or(TOOL_SET)
    }
}

/// Is the hierarchy of `l` one of `only` (`--cgroup-dump-controller`:
/// a controller's name, `unified` for v2; none given: every one)?
fn dumped(l: &CgroupLine, only: &[String]) -> bool {
    only.is_empty()
        || only.iter().any(|o| {
            l.controllers.iter().any(|c| c == o) || (l.controllers.is_empty() && o == "unified")
        })
}

/// Number the sets of `tasks` (the root first) and record the tree's
/// cgroup directories, of the hierarchies in `only` (every one if empty);
/// `cgns`: the roots of the root task's own cgroup namespace (empty if
/// it is in criu's), recorded in every set as CRIU does.
pub fn build(
    tool: &[CgroupLine],
    tasks: &[(i32, Vec<CgroupLine>)],
    hs: &[Hierarchy],
    only: &[String],
    cgns: &HashMap<String, String>,
) -> Result<Sets, CollectError> {
    let keep = |lines: &[CgroupLine]| -> Vec<CgroupLine> {
        lines.iter().filter(|l| dumped(l, only)).cloned().collect()
    };
    let tool = &keep(tool)[..];
    let tasks: &[(i32, Vec<CgroupLine>)] =
        &tasks.iter().map(|(p, l)| (*p, keep(l))).collect::<Vec<_>>();
    let tool_key: SetKey = key(tool).into_iter().map(|(n, p)| (n, p, None)).collect();
    let mut ids: Vec<(SetKey, u32)> = Vec::new();
    let mut by_pid = HashMap::with_capacity(tasks.len());
    let mut next = TOOL_SET + 1;
    for (pid, lines) in tasks {
        let k = set_key(*pid, lines, cgns)?;
        let id = if k == tool_key {
            TOOL_SET
        } else if let Some((_, id)) = ids.iter().find(|(x, _)| *x == k) {
            *id
        } else {
            ids.push((k.clone(), next));
            next += 1;
            next - 1
        };
        by_pid.insert(*pid, id);
    }
    if ids.is_empty() {
        return Ok(Sets {
            by_pid,
            image: None,
        });
    }
    if by_pid.values().any(|&id| id == TOOL_SET) {
        ids.push((tool_key.clone(), TOOL_SET));
    }
    ids.sort_by_key(|(_, id)| *id);
    let sets = ids
        .iter()
        .map(|(k, id)| pb::CgSetEntry {
            id: *id,
            ctls: k
                .iter()
                .map(|(name, path, cgns_prefix)| pb::CgMemberEntry {
                    name: name.clone(),
                    path: path.clone(),
                    cgns_prefix: *cgns_prefix,
                })
                .collect(),
        })
        .collect();
    let (root_pid, root_lines) = &tasks[0];
    let mut count = 0usize;
    let mut controllers = Vec::new();
    let mut root_lines = root_lines.clone();
    root_lines.sort_by_key(|l| l.controllers.join(","));
    for line in &root_lines {
        let name = line.controllers.join(",");
        let h = find(hs, &name).ok_or_else(|| CollectError::NotMounted {
            pid: *root_pid,
            hierarchy: hierarchy_label(&name),
            path: line.path.display().to_string(),
        })?;
        let top = &line.path;
        let rel = top.strip_prefix("/").unwrap_or(top);
        let mut entry = dir_entry(h, top, &rel.display().to_string(), &mut count)?;
        let own = tool_key
            .iter()
            .all(|(n, p, _)| *n != name || Path::new(p) != top);
        if own {
            walk(h, top, &mut entry, &mut count)?;
        } else {
            for (_, lines) in tasks {
                let Some(l) = lines.iter().find(|l| l.controllers.join(",") == name) else {
                    continue;
                };
                if let Ok(below) = l.path.strip_prefix(top)
                    && below.components().next().is_some()
                {
                    insert(h, top, &mut entry, below, &mut count)?;
                }
            }
        }
        controllers.push(pb::CgControllerEntry {
            // CRIU names v2 with one empty controller name (and refuses
            // an entry without any).
            cnames: if h.is_v2() {
                vec![String::new()]
            } else {
                line.controllers.clone()
            },
            dirs: vec![entry],
            is_threaded: Some(!h.is_v2()),
        });
    }
    pr_info!(
        "cgroups: {} sets, {count} directories of {} hierarchies recorded",
        ids.len(),
        controllers.len()
    );
    Ok(Sets {
        by_pid,
        image: Some(pb::CgroupEntry { sets, controllers }),
    })
}

fn perms(md: &std::fs::Metadata) -> pb::CgroupPerms {
    pb::CgroupPerms {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
    }
}

/// The entry of cgroup `path` of `h`, named `name`, with its properties.
fn dir_entry(
    h: &Hierarchy,
    path: &Path,
    name: &str,
    count: &mut usize,
) -> Result<pb::CgroupDirEntry, CollectError> {
    *count += 1;
    if *count > MAX_DIRS {
        return Err(CollectError::TooMany);
    }
    let dir = h.dir_of(path).ok_or_else(|| CollectError::Outside {
        hierarchy: hierarchy_label(&h.name()),
        path: path.display().to_string(),
    })?;
    let read_err = |source| CollectError::Read {
        dir: dir.clone(),
        source,
    };
    let md = std::fs::metadata(&dir).map_err(read_err)?;
    let mut names: Vec<&str> = Vec::new();
    if h.is_v2() {
        names.extend(V2_COMMON);
        let ctls = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        for c in ctls.split_whitespace() {
            names.extend(v2_properties(c));
        }
    } else {
        for c in &h.controllers {
            names.extend(properties(c));
        }
        names.extend(V1_COMMON);
    }
    let mut props = Vec::with_capacity(names.len());
    for n in names {
        let file = dir.join(n);
        let Ok(fmd) = std::fs::metadata(&file) else {
            pr_debug!("cgroup property {} does not exist here", file.display());
            continue;
        };
        let value = if perms_only(n) {
            String::new()
        } else {
            match std::fs::read_to_string(&file) {
                Ok(v) => v.trim_end_matches('\n').to_owned(),
                // Write-only or refused (a property of another kernel
                // version): nothing to restore.
                Err(e) => {
                    pr_debug!("cgroup property {}: {e}", file.display());
                    continue;
                }
            }
        };
        props.push(pb::CgroupPropEntry {
            name: n.to_owned(),
            value,
            perms: Some(perms(&fmd)),
        });
    }
    Ok(pb::CgroupDirEntry {
        dir_name: name.to_owned(),
        children: Vec::new(),
        properties: props,
        dir_perms: Some(perms(&md)),
    })
}

/// Every cgroup below `path` into `entry`, recursively.
fn walk(
    h: &Hierarchy,
    path: &Path,
    entry: &mut pb::CgroupDirEntry,
    count: &mut usize,
) -> Result<(), CollectError> {
    let dir = h.dir_of(path).unwrap_or_default();
    let read_err = |source| CollectError::Read {
        dir: dir.clone(),
        source,
    };
    let mut subdirs: Vec<String> = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(read_err)? {
        let e = e.map_err(read_err)?;
        if e.file_type().map_err(read_err)?.is_dir() {
            subdirs.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    subdirs.sort();
    for name in subdirs {
        let sub = path.join(&name);
        let mut child = dir_entry(h, &sub, &name, count)?;
        walk(h, &sub, &mut child, count)?;
        entry.children.push(child);
    }
    Ok(())
}

/// The cgroups from `top` down to `top/below` into `entry` (those not
/// there yet).
fn insert(
    h: &Hierarchy,
    top: &Path,
    entry: &mut pb::CgroupDirEntry,
    below: &Path,
    count: &mut usize,
) -> Result<(), CollectError> {
    let mut at = entry;
    let mut path = top.to_path_buf();
    for c in below.components() {
        let Component::Normal(name) = c else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        path.push(&name);
        let i = match at.children.iter().position(|d| d.dir_name == name) {
            Some(i) => i,
            None => {
                at.children.push(dir_entry(h, &path, &name, count)?);
                at.children.len() - 1
            }
        };
        at = &mut at.children[i];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::cgroup::parse;

    #[test]
    fn sets_are_numbered_after_criu_own() {
        let tool = parse(b"2:pids:/\n0::/a\n").unwrap();
        let t1 = parse(b"2:pids:/x\n0::/a/b\n").unwrap();
        let t2 = parse(b"2:pids:/\n0::/a\n").unwrap();
        // No hierarchies: the directories cannot be read, which only the
        // image part needs; the numbering is checked without it.
        let s = build(
            &tool,
            &[(7, tool.clone()), (8, t2.clone())],
            &[],
            &[],
            &HashMap::new(),
        )
        .unwrap();
        assert!(s.image.is_none());
        assert_eq!((s.of(7), s.of(8), s.of(99)), (TOOL_SET, TOOL_SET, TOOL_SET));
        let e = build(
            &tool,
            &[(7, t1.clone()), (8, t2.clone())],
            &[],
            &[],
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(matches!(e, CollectError::NotMounted { pid: 7, .. }), "{e}");
        // Only v2 dumped: the pids difference is not recorded.
        let t3 = parse(b"2:pids:/x\n0::/a\n").unwrap();
        let only = ["unified".to_string()];
        let s = build(&tool, &[(7, t3), (8, t2)], &[], &only, &HashMap::new()).unwrap();
        assert!(s.image.is_none());
    }

    #[test]
    fn cgns_roots_are_the_heads_above_the_inside_view() {
        let outside = parse(b"8:pids:/a/b/c\n4:memory:/m\n0::/x\n").unwrap();
        let inside = parse(b"8:pids:/c\n4:memory:/\n0::/x\n").unwrap();
        let r = cgns_roots(7, &outside, &inside).unwrap();
        assert_eq!(r["pids"], "/a/b");
        assert_eq!(r["memory"], "/m");
        // Same path both ways: the namespace's root is the hierarchy's.
        assert_eq!(r[""], "/");
        // A path seen above the namespace's root, or not a suffix.
        let bad = parse(b"8:pids:/../d\n4:memory:/\n0::/x\n").unwrap();
        let e = cgns_roots(7, &outside, &bad).unwrap_err().to_string();
        assert!(e.contains("above the namespace's root"), "{e}");
        let bad = parse(b"8:pids:/bc\n4:memory:/\n0::/x\n").unwrap();
        assert!(cgns_roots(7, &outside, &bad).is_err());
        // Lengths as CRIU records them, and back.
        assert_eq!(prefix_len("/a/b/c", "/a/b"), Some(4));
        assert_eq!(prefix_len("/a/b", "/a/b"), Some(4));
        assert_eq!(prefix_len("/a/bc", "/a/b"), None);
        assert_eq!(prefix_len("/z", "/"), Some(0));
        assert_eq!(prefix_path("/a/b/c", 4), Some("/a/b"));
        assert_eq!(prefix_path("/a/b/c", 0), Some("/"));
        assert_eq!(prefix_path("/a/b/c", 3), None);
        assert_eq!(prefix_path("/a", 9), None);
        // Every set carries the prefix; a task outside the root is named.
        let tool = parse(b"8:pids:/\n").unwrap();
        let roots = HashMap::from([("pids".to_string(), "/a/b".to_string())]);
        let root = parse(b"8:pids:/a/b/c\n").unwrap();
        let other = parse(b"8:pids:/q\n").unwrap();
        let e = build(&tool, &[(7, root), (8, other)], &[], &[], &roots)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("task 8 is in cgroup /q of the pids hierarchy, outside"),
            "{e}"
        );
    }

    #[test]
    fn a_thread_elsewhere_is_named() {
        let task = parse(b"2:pids:/x\n0::/a\n").unwrap();
        let thread = parse(b"2:pids:/x\n0::/a/t\n").unwrap();
        assert!(check_thread(1, 1, &task, &task).is_ok());
        let e = check_thread(1, 2, &task, &thread).unwrap_err().to_string();
        assert!(
            e.contains("thread 2 of task 1 is in cgroup /a/t of cgroup v2"),
            "{e}"
        );
        assert!(e.contains("its task in /a"), "{e}");
    }
}
