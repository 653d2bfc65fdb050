//! What a client that is not full root may ask for, checked before
//! anything is done: the tasks it may dump, the images it may restore, the
//! directories it may use. Each refusal is a [`Denied`] naming who asked,
//! what, and why.
//!
//! These checks come on top of the worker running with the client's
//! rights ([`super::client`]), where the kernel refuses the same things
//! (a ptrace, an open, a `setresuid`) halfway through; here they are
//! refused before any task is seized or forked, with the reason.

use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::io::Errno;
use rustix::thread::CapabilitySet;

use super::client::{CAP_SYS_PTRACE, Client, userns_of};
use crate::images::Kind;
use crate::images::pb;
use crate::images::typed::ImageDir;
use crate::proc::ProcDir;
use crate::proc::status::Status;

/// A request the client has no right to make.
#[derive(Debug, thiserror::Error)]
#[error("{who} may not {what}: {why}")]
pub struct Denied {
    /// `client PID (uid UID)`.
    pub who: String,
    pub what: String,
    pub why: String,
}

impl Denied {
    fn new(client: &Client, what: impl Into<String>, why: impl Into<String>) -> Denied {
        Denied {
            who: client.who(),
            what: what.into(),
            why: why.into(),
        }
    }

    pub fn errno(&self) -> i32 {
        Errno::PERM.raw_os_error()
    }
}

fn ids(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join("/")
}

/// Whether the client could `PTRACE_SEIZE` the task (or thread) `proc`
/// itself, by the kernel's rules (`__ptrace_may_access` with
/// `PTRACE_MODE_ATTACH_REALCREDS`, then `cap_ptrace_access_check`): its
/// real uid and gid equal to the task's real, effective and saved ones,
/// the task dumpable and in the client's user namespace with no permitted
/// capability the client lacks; or CAP_SYS_PTRACE in that namespace.
/// CAP_CHECKPOINT_RESTORE alone lets nobody trace another user's task, so
/// it does not count here. `None` when it could; else why not.
fn ptrace_refusal(client: &Client, proc: &ProcDir, st: &Status) -> Option<String> {
    let ns = userns_of(proc);
    let same_ns = matches!((ns, client.userns), (Ok(a), Some(b)) if a == b);
    if same_ns && client.cap_eff & CAP_SYS_PTRACE != 0 {
        return None;
    }
    let (uid, gid) = (client.uid[0], client.gid[0]);
    if st.uid[..3].iter().any(|&u| u != uid) {
        return Some(format!(
            "it runs as uid {} (real/effective/saved), the client as uid {uid}, and the \
             client lacks CAP_SYS_PTRACE",
            ids(&st.uid[..3])
        ));
    }
    if st.gid[..3].iter().any(|&g| g != gid) {
        return Some(format!(
            "it runs as gid {} (real/effective/saved), the client as gid {gid}, and the \
             client lacks CAP_SYS_PTRACE",
            ids(&st.gid[..3])
        ));
    }
    // /proc/PID belongs to the task's euid/egid only while it is dumpable.
    match rustix::fs::fstat(proc.fd()) {
        Ok(meta) if meta.st_uid == st.uid[1] && meta.st_gid == st.gid[1] => {}
        Ok(_) => {
            return Some(
                "it is not dumpable (it changed credentials, ran a set-uid or \
                 file-capability program, or cleared PR_SET_DUMPABLE)"
                    .into(),
            );
        }
        Err(e) => return Some(format!("its /proc directory can't be read: {e}")),
    }
    match ns {
        Ok(_) if same_ns => {}
        Ok(ino) => {
            return Some(format!(
                "it lives in user namespace {ino}, the client in {}; the service only \
                 dumps tasks of the client's own user namespace for it",
                client
                    .userns
                    .map_or("an unknown one".into(), |n| n.to_string())
            ));
        }
        Err(e) => return Some(format!("its user namespace can't be read: {e}")),
    }
    let extra = st.cap_prm & !client.cap_prm;
    if extra != 0 {
        return Some(format!(
            "it holds capabilities the client lacks (permitted {:#x}, the client's {:#x})",
            st.cap_prm, client.cap_prm
        ));
    }
    None
}

/// Checks that the client could trace every task and thread of the tree
/// rooted at `root` as it is now, before anything is seized (`what`:
/// "dump", "pre-dump").
pub fn may_dump(client: &Client, root: i32, what: &str) -> Result<(), Denied> {
    if client.full {
        return Ok(());
    }
    for pid in crate::dump::preflight::walk(root) {
        let denied = |why: String| Denied::new(client, format!("{what} task {pid}"), why);
        let proc = match ProcDir::open(pid) {
            Ok(p) => p,
            // Gone: if it was the root, the dump says so itself.
            Err(_) if pid != root => continue,
            Err(e) => return Err(denied(format!("it can't be looked at: {e}"))),
        };
        let threads = proc.threads().unwrap_or_else(|_| vec![pid]);
        for tid in threads {
            let Ok(task) = proc.task(tid) else { continue };
            let st = task
                .status()
                .map_err(|e| denied(format!("its status can't be read: {e}")))?;
            if let Some(why) = ptrace_refusal(client, &task, &st) {
                let why = if tid == pid {
                    why
                } else {
                    format!("its thread {tid}: {why}")
                };
                return Err(denied(why));
            }
        }
    }
    Ok(())
}

/// A 64-bit capability set from an image's two 32-bit words.
fn caps(words: &[u32]) -> u64 {
    words
        .iter()
        .take(2)
        .enumerate()
        .fold(0, |acc, (i, w)| acc | u64::from(*w) << (32 * i))
}

/// Why the client could not give a task the credentials `c` itself.
fn creds_refusal(client: &Client, c: &pb::CredsEntry) -> Option<String> {
    let uids = [c.uid, c.euid, c.suid, c.fsuid];
    if let Some(u) = uids.iter().find(|u| !client.uid.contains(u)) {
        return Some(format!(
            "they give it uid {u} (uids {}), and the client has only uids {}",
            ids(&uids),
            ids(&client.uid)
        ));
    }
    let gids = [c.gid, c.egid, c.sgid, c.fsgid];
    if let Some(g) = gids.iter().find(|g| !client.gid.contains(g)) {
        return Some(format!(
            "they give it gid {g} (gids {}), and the client has only gids {}",
            ids(&gids),
            ids(&client.gid)
        ));
    }
    if let Some(g) = c.groups.iter().find(|g| !client.in_group(**g)) {
        return Some(format!(
            "they give it the supplementary group {g}, which the client is not in"
        ));
    }
    let own = client.cap_prm;
    for (name, set, limit) in [
        ("permitted", caps(&c.cap_prm), own),
        ("effective", caps(&c.cap_eff), own),
        ("inheritable", caps(&c.cap_inh), own | client.cap_inh),
        ("ambient", caps(&c.cap_amb), own),
        ("bounding", caps(&c.cap_bnd), client.cap_bnd),
    ] {
        let extra = set & !limit;
        if extra != 0 {
            return Some(format!(
                "they give it {name} capabilities {extra:#x} that the client lacks \
                 ({name} {set:#x})"
            ));
        }
    }
    None
}

/// Checks the credentials of every task and thread in the images at
/// `dir` (`core-TID.img`) against the client's, before anything is forked.
/// Images that can't be read are left to the restore, which refuses them
/// with its own message.
pub fn may_restore(client: &Client, dir: &Path) -> Result<(), Denied> {
    if client.full {
        return Ok(());
    }
    let dir = ImageDir::new(dir);
    let Ok(tree) = dir.read_all::<pb::PstreeEntry>(Kind::Pstree, 0) else {
        return Ok(());
    };
    for task in &tree {
        let mut tids = task.threads.clone();
        if !tids.contains(&task.pid) {
            tids.insert(0, task.pid);
        }
        for tid in tids {
            let Ok(core) = dir.read_one::<pb::CoreEntry>(Kind::Core, u64::from(tid)) else {
                continue;
            };
            let Some(c) = core.thread_core.as_ref().and_then(|t| t.creds.as_ref()) else {
                continue;
            };
            if let Some(why) = creds_refusal(client, c) {
                return Err(Denied::new(
                    client,
                    format!("restore task {} from these images", task.pid),
                    format!("core-{tid}.img holds credentials beyond the client's: {why}"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that the client could use the directory `dir` (its fd `fd`)
/// itself: search and read it, and write into it when `write`. The
/// classic permission bits against the client's filesystem uid and
/// groups; CAP_DAC_OVERRIDE (and for reading CAP_DAC_READ_SEARCH) of a
/// client in the owner's namespace count as the kernel counts them.
pub fn may_use_dir(
    client: &Client,
    dir: BorrowedFd<'_>,
    what: &str,
    fd: i32,
    write: bool,
) -> Result<(), Denied> {
    if client.full {
        return Ok(());
    }
    const DAC_OVERRIDE: u64 = CapabilitySet::DAC_OVERRIDE.bits();
    const DAC_READ_SEARCH: u64 = CapabilitySet::DAC_READ_SEARCH.bits();
    let task = format!("use {what} (its fd {fd})");
    let st = rustix::fs::fstat(dir)
        .map_err(|e| Denied::new(client, task.clone(), format!("fstat: {e}")))?;
    let mode = st.st_mode & 0o7777;
    let bits = if st.st_uid == client.uid[3] {
        mode >> 6
    } else if client.in_group(st.st_gid) {
        mode >> 3
    } else {
        mode
    } & 0o7;
    let need = if write { 0o7 } else { 0o5 };
    let caps = client.cap_eff;
    let ok =
        bits & need == need || caps & DAC_OVERRIDE != 0 || (!write && caps & DAC_READ_SEARCH != 0);
    if ok {
        return Ok(());
    }
    Err(Denied::new(
        client,
        task,
        format!(
            "it is owned by uid {} gid {} with mode {mode:04o}: the client (fsuid {}, \
             groups {}) can't {} it",
            st.st_uid,
            st.st_gid,
            client.uid[3],
            ids(&[&client.gid[3..], &client.groups[..]].concat()),
            if write { "write into" } else { "read" }
        ),
    ))
}

/// A path option is resolved by the service (in its own mount namespace,
/// from its own directory): only a full client may name one.
pub fn may_name_path(client: &Client, field: &str, path: &str) -> Result<(), Denied> {
    if client.full {
        return Ok(());
    }
    Err(Denied::new(
        client,
        format!("name the path {path} ({field})"),
        "paths are resolved by the service, not by the client; pass an open \
         directory fd (images_dir_fd, work_dir_fd) instead",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::client::Peer;
    use std::os::fd::AsFd;

    fn user() -> Client {
        Client {
            peer: Peer {
                pid: 42,
                uid: 1000,
                gid: 1000,
            },
            uid: [1000; 4],
            gid: [1000; 4],
            groups: vec![1000, 27],
            cap_eff: 0,
            cap_prm: 0,
            cap_inh: 0,
            cap_bnd: (1 << 41) - 1,
            no_new_privs: false,
            userns: Some(1),
            full: false,
        }
    }

    fn creds(uid: u32, gid: u32) -> pb::CredsEntry {
        pb::CredsEntry {
            uid,
            gid,
            euid: uid,
            egid: gid,
            suid: uid,
            sgid: gid,
            fsuid: uid,
            fsgid: gid,
            cap_bnd: vec![u32::MAX, 0x1ff],
            groups: vec![1000],
            ..Default::default()
        }
    }

    #[test]
    fn creds_beyond_the_client_are_refused() {
        let c = user();
        assert_eq!(creds_refusal(&c, &creds(1000, 1000)), None);
        let why = creds_refusal(&c, &creds(0, 1000)).unwrap();
        assert!(why.contains("uid 0 (uids 0/0/0/0)"), "{why}");
        let why = creds_refusal(&c, &creds(1000, 0)).unwrap();
        assert!(why.contains("gid 0"), "{why}");
        let mut groups = creds(1000, 1000);
        groups.groups = vec![27, 4];
        assert!(creds_refusal(&c, &groups).unwrap().contains("group 4"));
        let mut capped = creds(1000, 1000);
        capped.cap_eff = vec![1 << 21, 0];
        capped.cap_prm = vec![1 << 21, 0];
        let why = creds_refusal(&c, &capped).unwrap();
        assert!(why.contains("permitted capabilities 0x200000"), "{why}");
        let mut bnd = creds(1000, 1000);
        bnd.cap_bnd = vec![u32::MAX, 0x3ff];
        assert!(creds_refusal(&c, &bnd).unwrap().contains("bounding"));
    }

    #[test]
    fn directory_modes() {
        let mut c = user();
        let dir = std::env::temp_dir().join(format!("rights-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fd = std::fs::File::open(&dir).unwrap();
        let set = |mode: u32| {
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap()
        };
        let st = rustix::fs::fstat(&fd).unwrap();
        let owner = st.st_uid;
        // Another user, in none of the directory's groups.
        c.uid = [owner.wrapping_add(1); 4];
        c.groups.retain(|&g| g != st.st_gid);
        c.gid = [st.st_gid.wrapping_add(1); 4];
        let mut mine = user();
        mine.uid = [owner; 4];
        set(0o700);
        assert!(may_use_dir(&mine, fd.as_fd(), "d", 3, true).is_ok());
        set(0o755);
        let e = may_use_dir(&c, fd.as_fd(), "d", 3, true).unwrap_err();
        assert!(e.to_string().contains("can't write into"), "{e}");
        assert!(e.to_string().contains("mode 0755"), "{e}");
        assert!(may_use_dir(&c, fd.as_fd(), "d", 3, false).is_ok());
        set(0o777);
        assert!(may_use_dir(&c, fd.as_fd(), "d", 3, true).is_ok());
        let _ = std::fs::remove_dir(&dir);
    }
}
