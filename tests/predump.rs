//! Iterative dumps: `criu pre-dump` rounds while the program runs and
//! changes its memory in between, then `criu dump --track-mem
//! --prev-images-dir`, restored by us and by CRIU 4.1.1 (which must
//! follow our parent chain), and a broken chain refused before any task
//! exists. The program (`tests/programs/zdtm/predump_rounds.rs`) checks
//! every page it has after restore.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::peer::{Peer, our_crit};
use common::skip;
use common::zdtm::{TIMEOUT, Zdtm};

const PROGRAM: &str = "zdtm_predump_rounds";
/// `PE_PARENT`, `PE_PRESENT`.
const PE_PARENT: u64 = 1;
const PE_PRESENT: u64 = 4;

/// Ask the program for phase `n` and wait until it made it.
fn phase(z: &Zdtm, n: u32) {
    std::fs::write(z.work().join(format!("phase{n}")), "").unwrap();
    let done = common::wait_for_file(&z.work().join(format!("phase{n}.done")), TIMEOUT)
        .unwrap_or_else(|| panic!("phase {n} not done: {}", z.stderr()));
    assert_eq!(done.trim(), "ok", "phase {n}");
    std::fs::write(z.work().join("phases"), n.to_string()).unwrap();
}

/// The task's userfaultfds (our dirty tracker is one).
fn uffds(pid: i32) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l == Path::new("anon_inode:[userfaultfd]"))
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

/// `criu pre-dump -t PID` into `dir` (after `prev`, a sibling directory);
/// asserts that it worked and left the task running, untraced, with one
/// tracker.
fn pre_dump(z: &Zdtm, dir: &Path, prev: Option<&str>) {
    pre_dump_mode(z, dir, prev, None);
}

/// [`pre_dump`] with `--pre-dump-mode MODE`; the tree must be running
/// again before the pages are written (the log says so in that order),
/// and the inventory says the mode as CRIU's (1 splice, 2 read).
fn pre_dump_mode(z: &Zdtm, dir: &Path, prev: Option<&str>, mode: Option<&str>) {
    let pid = z.pid().to_string();
    let mut args = vec!["pre-dump", "-t", &pid];
    if let Some(m) = mode {
        args.extend(["--pre-dump-mode", m]);
    }
    let parent;
    if let Some(p) = prev {
        parent = format!("../{p}");
        args.extend(["--track-mem", "--prev-images-dir", &parent]);
    }
    let (ok, log) = z.criu_in(dir, &args);
    assert!(ok, "pre-dump failed: {log}");
    assert_eq!(common::tracer_pid(z.pid()), Some(0), "left traced: {log}");
    assert_eq!(uffds(z.pid()).len(), 1, "one tracker after a pre-dump");
    assert!(dir.join("inventory.img").exists());
    assert!(dir.join(format!("pagemap-{pid}.img")).exists());
    assert!(log.contains("userfaultfd async write-protect"), "{log}");
    let released = log.find("(task left running)").expect("released");
    let written = log.find(" (it runs on)").expect("pages written");
    assert!(released < written, "pages written while frozen: {log}");
    let inv = our_crit(&["decode", "-i", dir.join("inventory.img").to_str().unwrap()]).unwrap();
    let inv: serde_json::Value = serde_json::from_str(&inv).unwrap();
    let want = if mode == Some("read") { 2 } else { 1 };
    assert_eq!(inv["entries"][0]["pre_dump_mode"], want, "{inv}");
}

/// `(vaddr, pages, flags)` of each entry of `dir`'s pagemap of `pid`.
fn pagemap(dir: &Path, pid: i32) -> Vec<(u64, u64, u64)> {
    let img = dir.join(format!("pagemap-{pid}.img"));
    let json = our_crit(&["decode", "-i", img.to_str().unwrap()]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let entries = v["entries"].as_array().unwrap();
    let num = |x: &serde_json::Value| {
        x.as_u64()
            .or_else(|| u64::from_str_radix(x.as_str()?.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0)
    };
    entries[1..]
        .iter()
        .map(|e| {
            let nr = e
                .get("nr_pages")
                .map_or(0, num)
                .max(num(&e["compat_nr_pages"]));
            (num(&e["vaddr"]), nr, num(&e["flags"]))
        })
        .collect()
}

fn pages_with(entries: &[(u64, u64, u64)], flag: u64) -> u64 {
    entries
        .iter()
        .filter(|e| e.2 & flag != 0)
        .map(|e| e.1)
        .sum()
}

/// The program started, unless this machine cannot checkpoint or its
/// kernel cannot track memory (the async write-protect userfaultfd and
/// `PAGEMAP_SCAN` came in Linux 6.7; the foreign VMs run 6.1): the test
/// then skips, naming why.
fn start(test: &str) -> Option<Zdtm> {
    start_program(test, PROGRAM)
}

/// [`start`] of `program`.
fn start_program(test: &str, program: &str) -> Option<Zdtm> {
    if let Some(why) = common::cannot_checkpoint() {
        skip(test, why);
        return None;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .expect("run criu check");
    if !out.status.success() {
        skip(
            test,
            "this kernel predates the async write-protect userfaultfd and PAGEMAP_SCAN \
             (Linux 6.7): criu check --feature mem_dirty_track says no",
        );
        return None;
    }
    Zdtm::start(test, program, &[])
}

/// Two pre-dumps and a final dump with the program changing its memory
/// after each pre-dump; the final images (in `DIR/final`) and the
/// program, dumped (killed).
fn rounds(test: &str) -> Option<(Zdtm, PathBuf)> {
    rounds_modes(test, [None, None])
}

/// [`rounds`] with the pre-dumps' `--pre-dump-mode`s.
fn rounds_modes(test: &str, modes: [Option<&str>; 2]) -> Option<(Zdtm, PathBuf)> {
    let mut z = start(test)?;
    let pid = z.pid();
    let (pre1, pre2, fin) = (z.new_dir("pre1"), z.new_dir("pre2"), z.new_dir("final"));
    pre_dump_mode(&z, &pre1, None, modes[0]);
    let first = pagemap(&pre1, pid);
    assert_eq!(pages_with(&first, PE_PARENT), 0, "no parent, nothing in it");
    phase(&z, 1);
    pre_dump_mode(&z, &pre2, Some("pre1"), modes[1]);
    assert_eq!(
        std::fs::read_link(pre2.join("parent")).unwrap(),
        Path::new("../pre1")
    );
    let second = pagemap(&pre2, pid);
    assert!(
        pages_with(&second, PE_PARENT) > 0,
        "unchanged pages stay in pre1: {second:x?}"
    );
    phase(&z, 2);
    z.dump_to(&fin, &["--track-mem", "--prev-images-dir", "../pre2"]);
    let last = pagemap(&fin, pid);
    let (parent, present) = (pages_with(&last, PE_PARENT), pages_with(&last, PE_PRESENT));
    // Region A alone (64 pages, 9 written in phase 2) leaves 54 pages in
    // the parents; what the final dump writes is a fraction of the first.
    assert!(parent >= 54, "{parent} pages in the parent: {last:x?}");
    assert!(
        present < pages_with(&first, PE_PRESENT) / 2,
        "final dump wrote {present} pages, the first {}",
        pages_with(&first, PE_PRESENT)
    );
    // In-parent entries are CRIU 4.x's: PE_PARENT alone.
    assert!(
        last.iter()
            .all(|e| e.2 & PE_PARENT == 0 || e.2 == PE_PARENT)
    );
    Some((z, fin))
}

/// A 64 MiB mapping of which a few pages are written
/// (`zdtm_anon_sparse`): the tracker write-protects all of it, which
/// leaves a PTE marker on every page never populated; those hold nothing
/// and no later round dumps them (they would be 64 MiB of zeros each
/// round), and the restored program finds its holes still holes.
#[test]
fn never_populated_pages_stay_out_of_later_rounds() {
    let Some(mut z) = start_program("predump-sparse", "zdtm_anon_sparse") else {
        return;
    };
    let pid = z.pid();
    let (pre1, pre2, fin) = (z.new_dir("pre1"), z.new_dir("pre2"), z.new_dir("final"));
    pre_dump(&z, &pre1, None);
    pre_dump(&z, &pre2, Some("pre1"));
    z.dump_to(&fin, &["--track-mem", "--prev-images-dir", "../pre2"]);
    let first = pages_with(&pagemap(&pre1, pid), PE_PRESENT);
    for (name, dir) in [("the second pre-dump", &pre2), ("the dump", &fin)] {
        let present = pages_with(&pagemap(dir, pid), PE_PRESENT);
        assert!(
            present <= first,
            "{name} wrote {present} pages, the first pre-dump {first}"
        );
    }
    z.restore_from(&fin, &[]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn memory_written_between_rounds_comes_back() {
    let Some((mut z, fin)) = rounds("predump-rounds") else {
        return;
    };
    z.restore_from(&fin, &[]);
    assert!(uffds(z.pid()).is_empty(), "the tracker came back");
    assert_eq!(z.go(), "PASS");
}

/// `read` then `splice`, and `splice` then `read`: either way every page
/// comes back.
#[test]
fn both_pre_dump_modes_leave_the_tree_running_while_pages_are_written() {
    for (i, modes) in [
        [Some("read"), Some("splice")],
        [Some("splice"), Some("read")],
    ]
    .into_iter()
    .enumerate()
    {
        let Some((mut z, fin)) = rounds_modes(&format!("predump-modes-{i}"), modes) else {
            return;
        };
        z.restore_from(&fin, &[]);
        assert_eq!(z.go(), "PASS", "{modes:?}");
    }
}

#[test]
fn criu_restores_our_parent_chain() {
    let test = "predump-crossover";
    if let Some(why) = common::cannot_checkpoint() {
        skip(test, why);
        return;
    }
    let peer = match Peer::find() {
        Ok(p) => p,
        Err(why) if cfg!(target_arch = "x86_64") => panic!("{test}: {why}"),
        Err(why) => {
            skip(test, &why);
            return;
        }
    };
    let Some((mut z, fin)) = rounds(test) else {
        return;
    };
    let (ok, log) = peer.criu(&fin, &["restore", "-d", "--pidfile", "restored.pid"]);
    assert!(ok, "CRIU's restore of our chain failed: {log}");
    let restored = std::fs::read_to_string(fin.join("restored.pid")).unwrap();
    assert_eq!(restored.trim(), z.pid().to_string());
    z.restored_elsewhere();
    assert_eq!(z.go(), "PASS");
}

/// A pre-dump, then the task runs on; a dump without `--track-mem` that
/// leaves it running closes the tracker, and one after that with no
/// parent saves every page.
#[test]
fn leave_running_without_track_mem_closes_the_tracker() {
    let Some(mut z) = start("predump-leave-running") else {
        return;
    };
    let pre = z.new_dir("pre");
    pre_dump(&z, &pre, None);
    let snap = z.new_dir("snap");
    z.dump_to(
        &snap,
        &[
            "--leave-running",
            "--track-mem",
            "--prev-images-dir",
            "../pre",
        ],
    );
    assert_eq!(uffds(z.pid()).len(), 1, "--track-mem keeps tracking");
    assert!(pages_with(&pagemap(&snap, z.pid()), PE_PARENT) > 0);
    let plain = z.new_dir("plain");
    z.dump_to(&plain, &["--leave-running"]);
    assert!(uffds(z.pid()).is_empty(), "tracker left in the task");
    assert_eq!(pages_with(&pagemap(&plain, z.pid()), PE_PARENT), 0);
    assert!(!plain.join("parent").exists());
    std::fs::write(z.work().join("phases"), "0").unwrap();
    assert_eq!(z.go(), "PASS");
}

/// Bytes of `path` on disk.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// `criu dedup` on the second pre-dump and `--auto-dedup` on the final
/// dump give back the room of the parents' copies of pages the child
/// holds (holes: the files keep their size), and the chain restores.
#[test]
fn dedup_gives_back_parent_pages_and_the_chain_still_restores() {
    let Some(mut z) = start("predump-dedup") else {
        return;
    };
    let (pre1, pre2, fin) = (z.new_dir("pre1"), z.new_dir("pre2"), z.new_dir("final"));
    let pages = |d: &Path| d.join("pages-1.img");
    pre_dump(&z, &pre1, None);
    phase(&z, 1);
    pre_dump(&z, &pre2, Some("pre1"));
    let (size, before) = (
        std::fs::metadata(pages(&pre1)).unwrap().len(),
        allocated(&pages(&pre1)),
    );
    let (ok, log) = z.criu_in(&pre2, &["dedup"]);
    assert!(ok, "dedup failed: {log}");
    assert_eq!(std::fs::metadata(pages(&pre1)).unwrap().len(), size);
    assert!(
        allocated(&pages(&pre1)) < before,
        "pre1 still holds {} of {before} bytes",
        allocated(&pages(&pre1))
    );
    phase(&z, 2);
    let before = allocated(&pages(&pre2));
    z.dump_to(
        &fin,
        &[
            "--track-mem",
            "--prev-images-dir",
            "../pre2",
            "--auto-dedup",
        ],
    );
    assert!(
        allocated(&pages(&pre2)) < before,
        "--auto-dedup freed nothing in pre2"
    );
    z.restore_from(&fin, &[]);
    assert_eq!(z.go(), "PASS");
}

/// Damaged chains: each refused by the restore before any task exists
/// (the PID stays free), naming what is wrong.
#[test]
fn broken_parent_chain_is_refused_before_any_task() {
    let Some((mut z, fin)) = rounds("predump-broken-chain") else {
        return;
    };
    let pid = z.pid();
    let pre2 = fin.parent().unwrap().join("pre2");
    let pre1 = fin.parent().unwrap().join("pre1");
    let refused = |what: &str, message: &str| {
        let (ok, log) = z.criu_in(&fin, &["restore", "-d"]);
        assert!(!ok, "{what}: restored anyway: {log}");
        assert!(log.contains(message), "{what}: no {message:?} in {log}");
        assert!(
            common::proc_state(pid).is_none(),
            "{what}: a task was created"
        );
    };
    // The grandparent's pages image cut short.
    let pages = pre1.join("pages-1.img");
    let whole = std::fs::read(&pages).unwrap();
    std::fs::write(&pages, &whole[..whole.len() / 2]).unwrap();
    refused("pre1 pages cut", "pages-1.img");
    std::fs::write(&pages, &whole).unwrap();
    // The parent's pagemap gone.
    let pm = pre2.join(format!("pagemap-{pid}.img"));
    let saved = std::fs::read(&pm).unwrap();
    std::fs::remove_file(&pm).unwrap();
    refused("pre2 pagemap missing", "missing");
    std::fs::write(&pm, &saved).unwrap();
    // The link itself gone.
    std::fs::remove_file(fin.join("parent")).unwrap();
    refused("no parent link", "parent");
    std::os::unix::fs::symlink("../pre2", fin.join("parent")).unwrap();
    // Whole again: it restores.
    z.restore_from(&fin, &[]);
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(z.go(), "PASS");
}
