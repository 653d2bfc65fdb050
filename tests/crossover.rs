//! Images interchange with CRIU both ways, against a real CRIU 4.1.1 (the
//! peer, see `common::peer`): every self-checking test program of
//! `tests/programs/zdtm` is dumped by us and restored by CRIU, and dumped
//! by CRIU and restored by us, and then checks its own state; both tools'
//! crit decode both tools' images to the same JSON. A program one tool
//! cannot handle here is listed in [`EXPECTED`] with that tool's own
//! error, which the test checks is still the error it gives.
//!
//! The ordinary programs of `tests/foreign.rs` (coreutils `sleep`, a
//! python3 loop, a bash job with `--shell-job`) cross over too, at the
//! end of this file.

mod common;

use std::path::Path;
use std::time::Duration;

use common::peer::{Peer, compare_crits};
use common::zdtm::{TIMEOUT, Zdtm};
use common::skip;

/// Which tool dumps; the other restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// Dumped by us, restored by CRIU.
    OursToCriu,
    /// Dumped by CRIU, restored by us.
    CriuToOurs,
}

/// What goes wrong, for a program one tool cannot handle here.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// CRIU refuses: the words of its error (in its log).
    Refused(&'static str),
    /// CRIU's side runs but loses state: the words of the program's own
    /// FAIL verdict, which CRIU dumping and restoring the program itself
    /// gives too (the test checks both).
    Lost(&'static str),
}

/// Programs CRIU 4.1.1 cannot handle on this machine, by program (with
/// its arguments) and direction, each with why.
const EXPECTED: &[(&str, Way, Expect)] = &[
    // CRIU restores no personality (and dumps it as its hex digits read
    // as decimal, which both tools' images now hold).
    ("zdtm_task_attrs", Way::OursToCriu, Expect::Lost("personality: 0,")),
    // eventfd(2) takes a 32-bit initial value: CRIU's restore drops the
    // counter's high half.
    ("zdtm_eventfd", Way::OursToCriu, Expect::Lost("big counter 0x5, want 0x100000005")),
    // CRIU's dump does not record EFD_SEMAPHORE (not in the file's flags).
    ("zdtm_eventfd", Way::CriuToOurs, Expect::Lost("eventfd-semaphore: 0")),
    // CRIU restores shared anonymous memory as a memfd ...
    ("zdtm_shared_anon", Way::OursToCriu, Expect::Lost("maps path \"/memfd: (deleted)\"")),
    // ... and dumps it as a memfd named /dev/zero, which is what we
    // restore from its images.
    ("zdtm_shared_anon", Way::CriuToOurs, Expect::Lost("\"/memfd:/dev/zero (deleted)\"")),
    // CRIU's dump reads no data from a pipe whose read end is closed.
    ("zdtm_pipes", Way::CriuToOurs, Expect::Lost("reader-gone: 0 bytes queued, were 17")),
];

/// The peer, or `None` after saying why the test is skipped.
fn peer(test: &str) -> Option<Peer> {
    if let Some(why) = common::cannot_checkpoint() {
        skip(test, why);
        return None;
    }
    match Peer::find() {
        Ok(p) => Some(p),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// `restore -d --pidfile restored.pid EXTRA` by the peer; success and log.
fn peer_restore(peer: &Peer, images: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["restore", "-d", "--pidfile", "restored.pid"];
    args.extend_from_slice(extra);
    peer.criu(images, &args)
}

/// One program, one way: start it, dump with one tool, restore with the
/// other, let it check itself; then both crits on the images. `opts`
/// go to both dump and restore.
fn cross(test: &str, way: Way, program: &str, args: &[&str], opts: &[&str]) {
    let Some(peer) = peer(test) else { return };
    let Some(mut z) = Zdtm::start(test, program, args) else {
        return;
    };
    let key = if args.is_empty() {
        program.to_string()
    } else {
        format!("{program} {}", args.join(" "))
    };
    let expected = EXPECTED
        .iter()
        .find(|(p, w, _)| *p == key && *w == way)
        .map(|e| e.2);
    let images = z.images().to_path_buf();
    // Tasks of a tree are reaped before the restore needs their PIDs.
    let kids = common::descendants(z.pid());
    let (dumper, restorer) = match way {
        Way::OursToCriu => (Tool::Ours, Tool::Criu),
        Way::CriuToOurs => (Tool::Criu, Tool::Ours),
    };
    let refused = |log: &str, what: &str| match expected {
        Some(Expect::Refused(words)) => {
            assert!(log.contains(words), "{key}: CRIU's error changed:\n{log}");
            true
        }
        _ => panic!("{key}: {what}:\n{log}"),
    };
    if let Err(log) = dump_with(dumper, &peer, &mut z, opts) {
        if refused(&log, "CRIU cannot dump it") {
            return;
        }
    }
    common::reap(&kids);
    if let Err(log) = restore_with(restorer, &peer, &mut z, opts) {
        if refused(&log, "the restore failed") {
            return;
        }
    }
    let bad = compare_crits(&peer, &images);
    let verdict = verdict_of(z, program);
    common::kill_all(&kids);
    match expected {
        Some(Expect::Lost(words)) => {
            assert!(
                verdict.contains(words),
                "{key} ({way:?}): expected CRIU to lose state ({words}), got: {verdict}"
            );
            // CRIU loses it on its own too: this is CRIU's limit, not ours.
            let alone = criu_alone(&peer, &format!("{test}-criu"), program, args, opts);
            assert!(
                alone.contains(words),
                "{key}: CRIU alone gives {alone}, not the loss ({words}) seen crossing over"
            );
        }
        Some(Expect::Refused(words)) => {
            panic!("{key} ({way:?}): expected CRIU to refuse ({words}), but it worked")
        }
        None => assert_eq!(verdict, "PASS", "{key} ({way:?})"),
    }
    assert!(bad.is_empty(), "{key} ({way:?}): {}", bad.join("\n"));
}

#[derive(Clone, Copy)]
enum Tool {
    Ours,
    Criu,
}

/// Dump `z` with `tool` (the program is gone after it); CRIU's log if it
/// failed.
fn dump_with(tool: Tool, peer: &Peer, z: &mut Zdtm, opts: &[&str]) -> Result<(), String> {
    match tool {
        Tool::Ours => z.dump(opts),
        Tool::Criu => {
            let pid = z.pid().to_string();
            let mut dump = vec!["dump", "-t", &pid];
            dump.extend_from_slice(opts);
            let (ok, log) = peer.criu(z.images(), &dump);
            if !ok {
                return Err(log);
            }
            z.wait_gone();
        }
    }
    Ok(())
}

/// Restore `z` with `tool` (it gets its PID back); the log if it failed.
fn restore_with(tool: Tool, peer: &Peer, z: &mut Zdtm, opts: &[&str]) -> Result<(), String> {
    match tool {
        Tool::Ours => z.restore(opts),
        Tool::Criu => {
            let images = z.images().to_path_buf();
            let (ok, log) = peer_restore(peer, &images, opts);
            if !ok {
                return Err(log);
            }
            let restored = std::fs::read_to_string(images.join("restored.pid")).unwrap();
            assert_eq!(restored.trim(), z.pid().to_string(), "{log}");
            z.restored_elsewhere();
        }
    }
    Ok(())
}

fn verdict_of(z: Zdtm, program: &str) -> String {
    if program == "zdtm_fpu" {
        go_with_alarms(z)
    } else {
        z.go()
    }
}

/// The verdict of `program` dumped and restored by CRIU alone.
fn criu_alone(peer: &Peer, test: &str, program: &str, args: &[&str], opts: &[&str]) -> String {
    let mut z = Zdtm::start(test, program, args).expect("could run before");
    let kids = common::descendants(z.pid());
    if let Err(log) = dump_with(Tool::Criu, peer, &mut z, opts) {
        return format!("CRIU alone cannot dump it: {log}");
    }
    common::reap(&kids);
    if let Err(log) = restore_with(Tool::Criu, peer, &mut z, opts) {
        return format!("CRIU alone cannot restore it: {log}");
    }
    let verdict = verdict_of(z, program);
    common::kill_all(&kids);
    verdict
}

/// `zdtm_fpu` leaves its register loop from a SIGALRM handler: send some
/// while it checks (its own timer may have been stopped by the dump).
fn go_with_alarms(z: Zdtm) -> String {
    std::fs::write(z.work().join("go"), "").unwrap();
    let pid = rustix::process::Pid::from_raw(z.pid()).unwrap();
    let result = z.work().join("result");
    let start = std::time::Instant::now();
    while !result.exists() && start.elapsed() < TIMEOUT {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::ALARM);
        std::thread::sleep(Duration::from_millis(20));
    }
    z.go()
}

/// Two tests per program: `NAME::ours_to_criu` and `NAME::criu_to_ours`.
macro_rules! crossover {
    ($name:ident, $program:expr, $args:expr, $opts:expr) => {
        mod $name {
            #[test]
            fn ours_to_criu() {
                let test = concat!("cross-", stringify!($name), "-o2c");
                super::cross(test, super::Way::OursToCriu, $program, $args, $opts);
            }
            #[test]
            fn criu_to_ours() {
                let test = concat!("cross-", stringify!($name), "-c2o");
                super::cross(test, super::Way::CriuToOurs, $program, $args, $opts);
            }
        }
    };
    ($name:ident, $program:expr) => {
        crossover!($name, $program, &[], &[]);
    };
}

crossover!(anon_dense, "zdtm_anon_dense");
crossover!(anon_growsdown, "zdtm_anon_growsdown");
crossover!(anon_placement, "zdtm_anon_placement");
crossover!(anon_sparse, "zdtm_anon_sparse");
crossover!(brk, "zdtm_brk");
crossover!(clone_files, "zdtm_clone_files", &["share"], &[]);
crossover!(counter, "zdtm_counter");
crossover!(cwd_umask, "zdtm_cwd_umask");
crossover!(epoll, "zdtm_epoll");
crossover!(eventfd, "zdtm_eventfd");
crossover!(fifo, "zdtm_fifo");
crossover!(file_deleted, "zdtm_file_deleted");
crossover!(file_locks, "zdtm_file_locks", &[], &["--file-locks"]);
crossover!(file_private, "zdtm_file_private");
crossover!(file_shared, "zdtm_file_shared");
crossover!(files, "zdtm_files");
crossover!(fork_restore, "zdtm_fork_restore");
crossover!(fown, "zdtm_fown");
crossover!(fpu, "zdtm_fpu", &["widest", "2"], &[]);
crossover!(ghost, "zdtm_ghost");
crossover!(ghost_occupied, "zdtm_ghost", &["occupied"], &[]);
crossover!(inotify, "zdtm_inotify");
crossover!(itimers, "zdtm_itimers");
crossover!(itimers_blocked, "zdtm_itimers", &["blocked"], &[]);
crossover!(memfd_shared, "zdtm_memfd_shared");
crossover!(mix, "zdtm_mix", &[], &["--file-locks"]);
crossover!(pending_signals, "zdtm_pending_signals");
crossover!(pending_signals_many, "zdtm_pending_signals", &["many"], &[]);
crossover!(pipes, "zdtm_pipes");
crossover!(posix_timers, "zdtm_posix_timers");
crossover!(posix_timers_gap, "zdtm_posix_timers", &["gap", "blocked"], &[]);
crossover!(protections, "zdtm_protections");
crossover!(pty, "zdtm_pty");
crossover!(rlimits, "zdtm_rlimits");
crossover!(rseq, "zdtm_rseq");
crossover!(shared_anon, "zdtm_shared_anon");
crossover!(sigactions, "zdtm_sigactions");
crossover!(sigaltstack, "zdtm_sigaltstack");
crossover!(signalfd, "zdtm_signalfd");
crossover!(task_attrs, "zdtm_task_attrs");
crossover!(threads, "zdtm_threads");
crossover!(timerfd, "zdtm_timerfd");
crossover!(tree, "zdtm_tree", &["tree"], &[]);
crossover!(tree_sessions, "zdtm_tree", &["sessions"], &[]);
crossover!(tree_zombie, "zdtm_tree", &["zombie"], &[]);
crossover!(tree_orphan_pgid, "zdtm_tree", &["orphan-pgid"], &[]);
crossover!(unix_stream, "zdtm_unix", &["stream"], &[]);
crossover!(unix_dgram, "zdtm_unix", &["dgram"], &[]);
crossover!(unix_seqpacket, "zdtm_unix", &["seqpacket"], &[]);
crossover!(unix_listen, "zdtm_unix", &["listen"], &[]);
crossover!(unix_abstract, "zdtm_unix", &["abstract"], &[]);
crossover!(vdso, "zdtm_vdso");
crossover!(vma_layout, "zdtm_vma_layout");
