//! Property test: a real image set, damaged at random, never makes
//! `criu restore` panic, hang or leave a process behind. One dump of
//! `zdtm_counter` is made; each case copies it, damages the copy (truncate,
//! flip bytes, delete, append garbage, grow a length prefix, swap two
//! images) and restores it with `-d`. Either restore refuses, with an error
//! naming the damaged image file, nothing left running under the dumped
//! PID and no file changed (images, the program's files), or
//! the damage was harmless: the task runs and passes its own check (bytes
//! flipped in memory contents or register values cannot be told from real
//! ones, so after such a flip the task may fail its check or die instead).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criu_core::images::magic;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rustix::process::{Pid, Signal, WaitOptions};

use common::zdtm::{TIMEOUT, Zdtm};

/// A restore that takes longer than this hangs (a good one takes well under
/// a second; the tool's own restorer timeout is 60 s).
const RESTORE_LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
enum Damage {
    /// Cut the file at this fraction (per mille) of its length.
    Truncate {
        file: usize,
        at: u16,
    },
    /// XOR bytes at these fractions (per mille) of the length.
    Flip {
        file: usize,
        at: Vec<(u16, u8)>,
    },
    Delete {
        file: usize,
    },
    Append {
        file: usize,
        garbage: Vec<u8>,
    },
    /// Add `by` to the length prefix of entry number `entry` (modulo the
    /// number of entries).
    GrowLength {
        file: usize,
        entry: usize,
        by: u32,
    },
    Swap {
        a: usize,
        b: usize,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    let f = any::<usize>();
    prop_oneof![
        (f, 0u16..1000).prop_map(|(file, at)| Damage::Truncate { file, at }),
        (f, prop::collection::vec((0u16..1000, 1u8..=255), 1..4))
            .prop_map(|(file, at)| Damage::Flip { file, at }),
        f.prop_map(|file| Damage::Delete { file }),
        (f, prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(file, garbage)| Damage::Append { file, garbage }),
        (
            f,
            any::<usize>(),
            prop_oneof![1u32..16, Just(0x1000), Just(0x7fff_ffff), Just(u32::MAX)]
        )
            .prop_map(|(file, entry, by)| Damage::GrowLength { file, entry, by }),
        (f, f).prop_map(|(a, b)| Damage::Swap { a, b }),
    ]
}

/// Offsets of the entries' length prefixes in an entry-framed image (after
/// its one or two magics); empty for raw images (pages).
fn length_prefixes(bytes: &[u8]) -> Vec<usize> {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
    };
    let mut at = match word(0) {
        Some(magic::IMG_COMMON | magic::IMG_SERVICE) => 8,
        Some(magic::INVENTORY) => 4,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    while let Some(len) = word(at) {
        out.push(at);
        at = at.saturating_add(4).saturating_add(len as usize);
    }
    out
}

/// Applies `d` to the image files `files` (sorted names in `dir`); a short
/// description, and whether only contents were changed (bytes flipped in
/// pages or in values no check can tell from real ones).
fn apply(d: &Damage, dir: &Path, files: &[String]) -> (String, bool) {
    let pick = |i: usize| dir.join(&files[i % files.len()]);
    let name = |i: usize| files[i % files.len()].clone();
    match d {
        Damage::Truncate { file, at } => {
            let p = pick(*file);
            let mut b = std::fs::read(&p).unwrap();
            b.truncate(b.len() * usize::from(*at) / 1000);
            std::fs::write(&p, &b).unwrap();
            (format!("truncate {} to {}", name(*file), b.len()), false)
        }
        Damage::Flip { file, at } => {
            let p = pick(*file);
            let mut b = std::fs::read(&p).unwrap();
            if b.is_empty() {
                return (format!("flip in empty {}", name(*file)), true);
            }
            let mut offs = Vec::new();
            for (at, x) in at {
                let o = b.len() * usize::from(*at) / 1000;
                b[o] ^= x;
                offs.push(o);
            }
            std::fs::write(&p, &b).unwrap();
            (format!("flip {} at {offs:?}", name(*file)), true)
        }
        Damage::Delete { file } => {
            std::fs::remove_file(pick(*file)).unwrap();
            (format!("delete {}", name(*file)), false)
        }
        Damage::Append { file, garbage } => {
            let p = pick(*file);
            let mut b = std::fs::read(&p).unwrap();
            b.extend_from_slice(garbage);
            std::fs::write(&p, &b).unwrap();
            (
                format!("append {} bytes to {}", garbage.len(), name(*file)),
                false,
            )
        }
        Damage::GrowLength { file, entry, by } => {
            let p = pick(*file);
            let mut b = std::fs::read(&p).unwrap();
            let prefixes = length_prefixes(&b);
            let Some(&at) = prefixes.get(entry % prefixes.len().max(1)) else {
                return (format!("no length prefix in {}", name(*file)), true);
            };
            let old = u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            b[at..at + 4].copy_from_slice(&old.wrapping_add(*by).to_ne_bytes());
            std::fs::write(&p, &b).unwrap();
            (
                format!("grow length at {at} of {} by {by:#x}", name(*file)),
                false,
            )
        }
        Damage::Swap { a, b } => {
            let (pa, pb) = (pick(*a), pick(*b));
            let (ba, bb) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
            std::fs::write(&pa, &bb).unwrap();
            std::fs::write(&pb, &ba).unwrap();
            // Two copies of one image are no damage at all.
            (format!("swap {} and {}", name(*a), name(*b)), ba == bb)
        }
    }
}

/// The one file `d` damages (`None` for a swap of two).
fn damaged_file(d: &Damage, files: &[String]) -> Option<String> {
    let name = |i: &usize| files[i % files.len()].clone();
    match d {
        Damage::Truncate { file, .. }
        | Damage::Flip { file, .. }
        | Damage::Delete { file }
        | Damage::Append { file, .. }
        | Damage::GrowLength { file, .. } => Some(name(file)),
        Damage::Swap { .. } => None,
    }
}

/// Every file in `dir` with its contents and mode, the logs excepted.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(meta) = e.metadata() else { continue };
        if name.ends_with(".log") || !meta.is_file() {
            continue;
        }
        let bytes = std::fs::read(e.path()).unwrap_or_default();
        out.insert(name, (bytes, meta.permissions().mode()));
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Kill and reap `pid` if it exists (the restored task is ours through
/// the subreaper).
fn kill_pid(pid: i32) {
    let p = Pid::from_raw(pid).unwrap();
    if common::proc_state(pid).is_some() {
        let _ = rustix::process::kill_process(p, Signal::KILL);
    }
    let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
}

/// `criu restore -d` from `dir`: exit code (`None`: it hung and was
/// killed) and what it said (stderr and log).
fn restore(dir: &Path) -> (Option<i32>, String) {
    // A file, not a pipe: a restored task may inherit the tool's stderr
    // (reading a pipe to its end would wait for that task).
    let err_path = dir.with_extension("stderr");
    let err = std::fs::File::create(&err_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["restore", "-d", "--pidfile", "restored.pid", "-v4"])
        .arg("-D")
        .arg(dir)
        .args(["-o", "restore.log"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("run criu");
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().or(Some(-1));
        }
        if start.elapsed() > RESTORE_LIMIT {
            // `Child::kill` signals this child's PID only.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut said = std::fs::read_to_string(&err_path).unwrap_or_default();
    said += &std::fs::read_to_string(dir.join("restore.log")).unwrap_or_default();
    (code, said)
}

/// The restored counter's verdict: tell it to check itself.
fn verdict(work: &Path) -> String {
    let _ = std::fs::remove_file(work.join("result"));
    std::fs::write(work.join("go"), "").unwrap();
    let v = common::wait_for_file(&work.join("result"), Duration::from_secs(5))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "no result".into());
    let _ = std::fs::remove_file(work.join("go"));
    v
}

/// One damaged restore; `Err` says what went wrong.
fn check_case(
    d: &Damage,
    pristine: &Path,
    scratch: &Path,
    files: &[String],
    pid: i32,
    work: &Path,
    progress: &[u8],
) -> Result<(), TestCaseError> {
    copy_dir(pristine, scratch);
    // The count the program had written when it was dumped: a task an
    // earlier case restored may have counted on and written a higher one,
    // which this case's task (back at the dumped count) would read as its
    // count going back.
    std::fs::write(work.join("progress"), progress).unwrap();
    let (what, contents_only) = apply(d, scratch, files);
    let damaged = damaged_file(d, files);
    let images_before = snapshot(scratch);
    let work_before = snapshot(work);
    let (code, said) = restore(scratch);
    eprintln!("{what}: exit {code:?}");
    if code != Some(0) && said.contains(&format!("PID {pid} is in use")) {
        // Another test's process took the PID between two cases: this
        // case proves nothing either way.
        return Err(TestCaseError::reject(format!("PID {pid} taken: {what}")));
    }
    let alive = common::proc_state(pid).is_some();
    let result = (|| {
        prop_assert!(code.is_some(), "{what}: restore hung\n{said}");
        prop_assert!(
            code != Some(101) && !said.contains("panicked"),
            "{what}: restore panicked\n{said}"
        );
        if code == Some(0) {
            prop_assert!(alive, "{what}: restore succeeded but no task {pid}");
            let v = verdict(work);
            prop_assert!(
                contents_only || v == "PASS",
                "{what}: restored task says {v}\n{said}"
            );
        } else {
            prop_assert!(!alive, "{what}: failed restore left task {pid}\n{said}");
            let err = said
                .lines()
                .filter(|l| l.contains("Error") || l.contains("error"))
                .collect::<Vec<_>>()
                .join("\n");
            prop_assert!(
                err.contains(".img"),
                "{what}: the error names no image file\n{said}"
            );
            if let Some(f) = &damaged {
                prop_assert!(
                    err.contains(f.as_str()),
                    "{what}: the error does not name {f}\n{said}"
                );
            }
            // Nothing changed: neither the images nor the program's files.
            prop_assert!(
                snapshot(scratch) == images_before,
                "{what}: the failed restore changed the images"
            );
            prop_assert!(
                snapshot(work) == work_before,
                "{what}: the failed restore changed the program's files"
            );
        }
        Ok(())
    })();
    kill_pid(pid);
    result
}

#[test]
fn damaged_images_are_refused_cleanly() {
    let Some(mut z) = Zdtm::start("images-damage", "zdtm_counter", &[]) else {
        return;
    };
    let pid = z.pid();
    assert!(common::wait_until(TIMEOUT, || z
        .work()
        .join("progress")
        .exists()));
    z.dump(&[]);
    let progress = std::fs::read(z.work().join("progress")).unwrap();
    let pristine = z.images().to_path_buf();
    let mut files: Vec<String> = std::fs::read_dir(&pristine)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".img"))
        .collect();
    files.sort();
    let scratch: PathBuf = z.new_dir("damaged");
    let work = z.work().to_path_buf();

    // Undamaged, it restores and passes.
    copy_dir(&pristine, &scratch);
    let (code, said) = restore(&scratch);
    assert_eq!(code, Some(0), "pristine restore failed:\n{said}");
    assert_eq!(verdict(&work), "PASS");
    kill_pid(pid);

    let mut runner = TestRunner::new(Config {
        // Modest by default (a case is a real restore); PROPTEST_CASES
        // runs more.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(64),
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&damage(), |d| {
        check_case(&d, &pristine, &scratch, &files, pid, &work, &progress)
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    eprintln!("images: {files:?}");
}
