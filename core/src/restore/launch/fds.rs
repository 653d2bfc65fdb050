//! The files the tool holds for the tree until it is restored: the
//! tree's file opener, the pipes of shared fd tables, the tool's pidfd
//! and the lists of tool fds each task takes; and, once the tree is
//! restored, TCP repair mode and the network lock let go.

use std::collections::HashMap;

use rustix::io::Errno;

use crate::blob::restorer_abi as abi;
use crate::images::typed::ImageDir;
use crate::opts::Opts;
use crate::restore::images::TaskImages;
use crate::restore::{RestoreError, plan, tree};
use crate::sys::plain::bytes_of;

/// The tree's file opener (files.img is the tree's: any task's copy of
/// it, `t`'s), opening at or above `min_fd`, ghosts at their paths.
pub(super) fn tree_opener<'a>(
    opts: &Opts,
    t: &'a TaskImages,
    min_fd: i32,
    ghosts: &crate::files::ghost::Ghosts,
    root: Option<(std::path::PathBuf, Vec<(u32, std::os::fd::OwnedFd)>)>,
) -> crate::files::Opener<'a> {
    let opener = crate::files::Opener::new(&t.other_files, &t.reg_files, opts.common.ext_unix_sk);
    let opener = match root {
        Some((root, ptys)) => opener.with_root(&root, ptys),
        None => opener,
    };
    opener
        .with_shell_job(opts.common.shell_job)
        .with_orphan_pts_master(opts.restore.orphan_pts_master)
        .with_tcp(crate::files::inet::ConnOpts {
            skip_in_flight: opts.common.tcp_skip_in_flight,
            tcp_established: opts.common.tcp_established,
            tcp_close: opts.common.tcp_close,
        })
        .with_fds(min_fd, ghosts.paths().clone())
}

/// The tree's files, opened once by one opener for every task (see
/// [`tree_opener`]), with the tool's pidfd and the pipes of shared fd
/// tables (see [`fd_sync_pipes`]).
#[allow(clippy::type_complexity)]
pub(super) fn tree_files<'a>(
    opts: &Opts,
    alive: &[&'a TaskImages],
    roles: &tree::Roles,
    ghosts: &crate::files::ghost::Ghosts,
    root: Option<(std::path::PathBuf, Vec<(u32, std::os::fd::OwnedFd)>)>,
) -> Result<(plan::SharedFiles<'a>, HashMap<i32, (i32, i32)>), RestoreError> {
    let min_fd = plan::min_fd(alive.iter().copied());
    let opener = tree_opener(opts, alive[0], min_fd, ghosts, root);
    let mut shared = plan::SharedFiles::new(min_fd, opts.common.shell_job, opener);
    shared.inherit = opts.restore.inherit_fds.clone();
    shared.tool_pidfd = tool_pidfd(&mut shared);
    let sync_pipes = fd_sync_pipes(roles, &mut shared)?;
    Ok((shared, sync_pipes))
}

/// The TCP connections leave repair mode here: every socket of the tree
/// exists (both ends of a connection inside it), no task has run its own
/// code yet, and none could use its socket in repair mode. CRIU's
/// restorer does the same at the end of each task's restore.
///
/// A root in a net namespace of its own (`own_net`: its pid) had the whole
/// namespace locked by a `--tcp-established` dump (CRIU's
/// `network_lock_internal`, ours alike), with or without connections: an
/// external namespace the tree comes back into is still locked, as is one
/// the restore locked again (`netns::RootNetNs::lock_for_tcp`); it is
/// unlocked here whatever the images hold, as CRIU's `network_unlock`
/// does (a lock that is not there is no error).
pub(super) fn release_tcp(
    shared: &mut plan::SharedFiles<'_>,
    dir: &ImageDir,
    root: u32,
    own_net: Option<i32>,
) -> Result<(), RestoreError> {
    let conns = shared.tcp_repaired.connections();
    shared
        .tcp_repaired
        .release()
        .map_err(|e| RestoreError::Unsupported(format!("leaving TCP repair mode: {e}")))?;
    // The dump's network lock goes once repair mode is off, before the
    // tasks run (taken with the method the inventory names, as CRIU
    // does: an iptables lock of CRIU's dump goes too).
    if let Some(pid) = own_net {
        let (method, id) = crate::restore::images::network_lock(dir, root)?;
        return unlock_net_ns(pid, method, &id);
    }
    if !conns.is_empty() {
        let (method, id) = crate::restore::images::network_lock(dir, root)?;
        let conns: Vec<crate::netlock::Conn> = conns
            .iter()
            .map(|c| crate::netlock::Conn::new(c.src, c.dst))
            .collect();
        crate::netlock::release_named(method, &id, &conns)
            .map_err(|e| RestoreError::Unsupported(format!("unlocking the network: {e}")))?;
    }
    Ok(())
}

/// Unlocks the net namespace of task `pid` (see [`release_tcp`]).
fn unlock_net_ns(pid: i32, method: crate::netlock::Method, id: &str) -> Result<(), RestoreError> {
    let fail = |e: String| RestoreError::Unsupported(format!("unlocking the network: {e}"));
    let Some(ns) = crate::proc::netns::of_task(pid)
        .map_err(|e| fail(format!("cannot open /proc/{pid}/ns/net: {e}")))?
    else {
        return Ok(());
    };
    crate::proc::netns::run_in(std::os::fd::AsFd::as_fd(&ns), || {
        Ok(crate::netlock::unlock_namespace(method, id))
    })
    .map_err(|e| fail(format!("cannot enter the net namespace of task {pid}: {e}")))?
    .map_err(|e| fail(e.to_string()))
}

/// The tool holds every task's files at once until the root is forked:
/// allow as many as the hard limit does (each task's own limits come back
/// from its core in the restorer).
pub(super) fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            crate::pr_warn!("cannot raise the open files limit: {e}");
        }
    }
}

/// One pipe per shared fd table, by its owner's PID: (read end, write
/// end), tool fds every task inherits (kept in `shared` until the root is
/// forked). Its sharers tell the owner through it that they no longer
/// need the tool's fds (the restorer's `close_shared_fds`).
pub(super) fn fd_sync_pipes(
    roles: &tree::Roles,
    shared: &mut plan::SharedFiles<'_>,
) -> Result<HashMap<i32, (i32, i32)>, RestoreError> {
    let mut out = HashMap::new();
    for (&pid, role) in &roles.roles {
        if role.fd_table != abi::FD_TABLE_LENT {
            continue;
        }
        let (r, w) = crate::fault::call(&"pipe (shared fd table)", Errno::MFILE)
            .and_then(|()| rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC))
            .map_err(|e| RestoreError::Sys("pipe (shared fd table)", e))?;
        let r = plan::high_fd(r, shared.min_fd)?;
        let w = plan::high_fd(w, shared.min_fd)?;
        out.insert(
            pid,
            (
                std::os::fd::AsRawFd::as_raw_fd(&r),
                std::os::fd::AsRawFd::as_raw_fd(&w),
            ),
        );
        shared.fds.push(r);
        shared.fds.push(w);
    }
    Ok(out)
}

/// A pidfd of the tool at or above `shared.min_fd` (kept in `shared`), or
/// -1 when the kernel has none (the tasks then inherit every tool fd).
pub(super) fn tool_pidfd(shared: &mut plan::SharedFiles<'_>) -> i32 {
    let me = rustix::process::getpid();
    let fd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty())
        .map_err(|e| RestoreError::Sys("pidfd_open", e))
        .and_then(|fd| plan::high_fd(fd, shared.min_fd));
    match fd {
        Ok(fd) => {
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            shared.fds.push(fd);
            raw
        }
        Err(e) => {
            crate::pr_debug!("{e}: the tasks inherit every file of the tree");
            -1
        }
    }
}

/// Each task's list of tool fds to take, written into one shared table
/// and pointed to from its args: a table's owner takes the fds of every
/// task sharing its table too (they use them in its table).
pub(super) fn pull_lists(
    alive: &[&TaskImages],
    roles: &tree::Roles,
    plans: &mut [plan::Plan],
) -> Result<Option<crate::blob::bootstrap::SharedTable>, RestoreError> {
    let index: HashMap<i32, usize> = alive
        .iter()
        .enumerate()
        .map(|(i, t)| (t.pstree.pid as i32, i))
        .collect();
    for i in 0..plans.len() {
        let role = &roles.roles[&(alive[i].pstree.pid as i32)];
        if role.fd_table != abi::FD_TABLE_SHARED {
            continue;
        }
        let Some(&owner) = index.get(&role.fd_owner) else {
            continue;
        };
        let mine = std::mem::take(&mut plans[i].pull);
        plans[owner].pull.extend(mine);
        plans[owner].pull.sort_unstable();
        plans[owner].pull.dedup();
    }
    let words: Vec<i32> = plans.iter().flat_map(|p| p.pull.iter().copied()).collect();
    if words.is_empty() {
        return Ok(None);
    }
    let table = crate::blob::bootstrap::SharedTable::map(&words)
        .map_err(|e| RestoreError::Sys("mmap(fd lists)", e))?;
    let mut at = 0;
    for p in plans.iter_mut() {
        let list = abi::Array {
            addr: if p.pull.is_empty() {
                0
            } else {
                table.addr_of(at)
            },
            len: p.pull.len() as u64,
        };
        at += p.pull.len();
        p.image.put(p.pull_off, bytes_of(&list));
    }
    Ok(Some(table))
}

/// The tasks take their files from the tool with `pidfd_getfd`, which a
/// tool that is not dumpable (run from a binary with file capabilities,
/// `--unprivileged`) refuses to tasks without CAP_SYS_PTRACE. It is made
/// dumpable for the restore (its tasks hold the same capabilities, others
/// cannot trace it); the guard puts the old value back.
pub(super) struct Dumpable(Option<rustix::process::DumpableBehavior>);

pub(super) fn pullable() -> Dumpable {
    use rustix::process::{DumpableBehavior, dumpable_behavior, set_dumpable_behavior};
    match dumpable_behavior() {
        Ok(DumpableBehavior::Dumpable) | Err(_) => Dumpable(None),
        Ok(old) => match set_dumpable_behavior(DumpableBehavior::Dumpable) {
            Ok(()) => Dumpable(Some(old)),
            Err(_) => Dumpable(None),
        },
    }
}

impl Drop for Dumpable {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = rustix::process::set_dumpable_behavior(old);
        }
    }
}
