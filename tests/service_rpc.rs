//! `criu swrk FD` spoken to by a real client over a socketpair: VERSION,
//! FEATURE_CHECK, CHECK, bad requests, keep_open, and DUMP/RESTORE of a
//! ZDTM-style program with NOTIFY round trips.

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{TempDir, become_subreaper, skip, wait_for_file};
use criu_core::images::pb::rpc::{CriuFeatures, CriuOpts, CriuReq, CriuReqType, CriuResp};
use service_common::{Client, is_root, spawn_locked};

const TIMEOUT: Duration = Duration::from_secs(30);

fn req(ty: CriuReqType) -> CriuReq {
    CriuReq {
        r#type: ty as i32,
        ..Default::default()
    }
}

#[test]
fn version() {
    let mut c = Client::swrk();
    let resp = c.call(&req(CriuReqType::Version));
    assert!(resp.success, "{resp:?}");
    assert_eq!(resp.r#type, CriuReqType::Version as i32);
    let v = resp.version.expect("version");
    assert_eq!((v.major_number, v.minor_number), (4, 2));
    assert_eq!(v.name.as_deref(), Some("criu-rs"));
    assert!(v.gitid.unwrap().starts_with("criu-rs-"));
    assert_eq!(c.finish(), Some(0));
}

#[test]
fn feature_check() {
    let mut c = Client::swrk();
    let resp = c.call(&CriuReq {
        features: Some(CriuFeatures {
            mem_track: Some(true),
            lazy_pages: Some(true),
            pidfd_store: Some(true),
        }),
        ..req(CriuReqType::FeatureCheck)
    });
    assert!(resp.success, "{resp:?}");
    let f = resp.features.expect("features");
    let kdat = criu_core::check::KernelFeatures::probe();
    // Our tracking (userfaultfd write-protect + PAGEMAP_SCAN), as
    // `criu check --feature mem_dirty_track` reports it.
    assert_eq!(f.mem_track, Some(kdat.mem_track()));
    assert_eq!(f.lazy_pages, Some(kdat.lazy_pages()));
    assert_eq!(f.pidfd_store, Some(kdat.pidfd_store()));
}

#[test]
fn check() {
    if !is_root() {
        return skip("check", "criu check needs root");
    }
    // The RPC CHECK answers what `criu check` says on this machine (under
    // qemu-user, for one, sock_diag is missing and both fail).
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_criu"))
        .arg("check")
        .output()
        .expect("run criu check");
    let resp = Client::swrk().call(&req(CriuReqType::Check));
    assert_eq!(resp.success, cli.status.success(), "{resp:?}");
    assert_eq!(resp.r#type, CriuReqType::Check as i32);
    if !resp.success {
        assert!(resp.cr_errmsg.is_some(), "{resp:?}");
    }
}

#[test]
fn keep_open_serves_several_requests() {
    let mut c = Client::swrk();
    for _ in 0..3 {
        let resp = c.call(&CriuReq {
            keep_open: Some(true),
            ..req(CriuReqType::Version)
        });
        assert!(resp.success);
    }
    // Without keep_open the worker answers and ends.
    assert!(c.call(&req(CriuReqType::Version)).success);
    assert_eq!(c.finish(), Some(0));
}

#[test]
fn garbage_gets_a_failure_and_a_closed_connection() {
    let mut c = Client::swrk();
    c.send_raw(b"\xff\xff\xff\xff garbage");
    let resp = c.recv().expect("a failure response");
    assert!(!resp.success);
    assert!(
        resp.cr_errmsg.as_deref().unwrap_or("").contains("decode"),
        "{resp:?}"
    );
    assert!(c.recv().is_none(), "connection not closed");
    assert_eq!(c.finish(), Some(1));
}

#[test]
fn unknown_type_and_unsupported_requests_fail_clearly() {
    let mut c = Client::swrk();
    let resp = c.call(&CriuReq {
        r#type: 99,
        ..Default::default()
    });
    assert!(!resp.success);
    assert!(resp.cr_errmsg.unwrap().contains("unknown request type 99"));

    let resp = Client::swrk().call(&req(CriuReqType::PageServer));
    assert!(!resp.success);
    assert_eq!(resp.r#type, CriuReqType::PageServer as i32);
    let msg = resp.cr_errmsg.unwrap();
    assert!(msg.contains("PAGE_SERVER is not supported yet"), "{msg}");
}

/// CPUINFO_DUMP writes `cpuinfo.img` for the images dir, CPUINFO_CHECK
/// finds this CPU matches it (`criu cpuinfo dump|check`; not on aarch64,
/// as in CRIU).
#[test]
fn cpuinfo_dump_and_check() {
    let dir = TempDir::new("svc-cpuinfo");
    let fd = std::fs::File::open(dir.path()).unwrap();
    let opts = CriuOpts {
        images_dir_fd: fd.as_raw_fd(),
        ..Default::default()
    };
    for ty in [CriuReqType::CpuinfoDump, CriuReqType::CpuinfoCheck] {
        let resp = Client::swrk().call(&CriuReq {
            opts: Some(opts.clone()),
            ..req(ty)
        });
        assert_eq!(resp.r#type, ty as i32);
        if !criu_core::regs::cpuinfo::COMMANDS {
            assert!(!resp.success);
            assert!(resp.cr_errmsg.unwrap().contains("is not supported yet"));
            continue;
        }
        assert!(resp.success, "{resp:?}");
        assert!(dir.join("cpuinfo.img").exists());
    }
}

#[test]
fn missing_required_field_and_bad_dirs_fail() {
    // type = DUMP, opts = {} without the required images_dir_fd.
    let mut c = Client::swrk();
    c.send_raw(&[0x08, 0x01, 0x12, 0x00]);
    let resp = c.recv().expect("response");
    assert!(!resp.success);
    assert!(resp.cr_errmsg.unwrap().contains("images_dir_fd"));

    // DUMP without opts at all.
    let resp = Client::swrk().call(&req(CriuReqType::Dump));
    assert!(!resp.success);
    assert!(resp.cr_errmsg.unwrap().contains("needs criu_opts"));

    // An fd that is not a directory.
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let resp = Client::swrk().call(&CriuReq {
        opts: Some(CriuOpts {
            images_dir_fd: file.as_raw_fd(),
            ..Default::default()
        }),
        ..req(CriuReqType::Dump)
    });
    assert!(!resp.success);
    assert_eq!(resp.cr_errno, Some(20), "ENOTDIR: {resp:?}");

    // images_dir_fd = -1 and no images_dir.
    let resp = Client::swrk().call(&CriuReq {
        opts: Some(CriuOpts {
            images_dir_fd: -1,
            ..Default::default()
        }),
        ..req(CriuReqType::Dump)
    });
    assert!(!resp.success);
    assert!(resp.cr_errmsg.unwrap().contains("images_dir"));
}

/// The ZDTM-style program of tests/dump.rs: ready file `PID ...`, `go`,
/// then its verdict in `result`.
struct Victim {
    program: common::Program,
    pid: i32,
    work: std::path::PathBuf,
}

impl Victim {
    fn start(dir: &TempDir) -> Victim {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let program = spawn_locked(|| {
            common::Program::spawn("dump_victim", &[work.to_str().unwrap()], dir.path())
        });
        let ready = wait_for_file(&work.join("ready"), TIMEOUT).expect("victim not ready");
        let pid = ready.split_whitespace().next().unwrap().parse().unwrap();
        Victim { program, pid, work }
    }

    fn verdict(&self) -> String {
        std::fs::write(self.work.join("go"), "").unwrap();
        wait_for_file(&self.work.join("result"), TIMEOUT)
            .unwrap_or_else(|| "no result".into())
            .trim()
            .to_owned()
    }
}

fn cannot_dump() -> Option<&'static str> {
    if let Some(why) = common::cannot_checkpoint() {
        return Some(why);
    }
    if !is_root() {
        return Some("dump needs root here");
    }
    become_subreaper();
    None
}

/// Answers every NOTIFY until the final response; the scripts seen.
fn call_with_notify(c: &mut Client, r: &CriuReq) -> (CriuResp, Vec<(String, Option<i32>)>) {
    c.send(r);
    let mut seen = Vec::new();
    loop {
        let resp = c.recv().expect("response");
        if resp.r#type != CriuReqType::Notify as i32 {
            return (resp, seen);
        }
        let n = resp.notify.expect("notify body");
        seen.push((n.script.unwrap_or_default(), n.pid));
        c.send(&CriuReq {
            notify_success: Some(true),
            ..req(CriuReqType::Notify)
        });
    }
}

#[test]
fn dump_leave_running_with_notify() {
    if let Some(why) = cannot_dump() {
        return skip("dump_leave_running_with_notify", why);
    }
    let dir = TempDir::new("svc-dump");
    let victim = Victim::start(&dir);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let images_fd = std::fs::File::open(&images).unwrap();
    let mut c = Client::swrk();
    let (resp, seen) = call_with_notify(
        &mut c,
        &CriuReq {
            opts: Some(CriuOpts {
                images_dir_fd: images_fd.as_raw_fd(),
                pid: Some(victim.pid),
                leave_running: Some(true),
                notify_scripts: Some(true),
                log_level: Some(4),
                log_file: Some("dump.log".into()),
                ..Default::default()
            }),
            ..req(CriuReqType::Dump)
        },
    );
    let log = std::fs::read_to_string(images.join("dump.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    assert_eq!(resp.dump.unwrap().restored, Some(false));
    assert_eq!(
        seen,
        [
            // As CRIU: the pid only comes with setup-namespaces and
            // post-restore.
            ("pre-dump".to_owned(), None),
            ("post-dump".to_owned(), None)
        ]
    );
    assert!(images.join(format!("core-{}.img", victim.pid)).exists());
    assert!(log.contains("Dumping"), "{log}");
    assert_eq!(victim.verdict(), "PASS");
}

#[test]
fn dump_failure_reports_first_error() {
    if let Some(why) = cannot_dump() {
        return skip("dump_failure_reports_first_error", why);
    }
    let dir = TempDir::new("svc-dump-fail");
    let images_fd = std::fs::File::open(dir.path()).unwrap();
    // A pid that does not exist.
    let resp = Client::swrk().call(&CriuReq {
        opts: Some(CriuOpts {
            images_dir_fd: images_fd.as_raw_fd(),
            pid: Some(i32::MAX - 1),
            ..Default::default()
        }),
        ..req(CriuReqType::Dump)
    });
    assert!(!resp.success);
    assert_eq!(resp.cr_errno, Some(3), "ESRCH");
    let msg = resp.cr_errmsg.unwrap();
    assert!(msg.starts_with("Error ("), "{msg}");
    assert!(
        dir.join("criu.log").exists(),
        "default log file in the work dir"
    );
}

#[test]
fn dump_then_restore_over_rpc() {
    if let Some(why) = cannot_dump() {
        return skip("dump_then_restore_over_rpc", why);
    }
    let dir = TempDir::new("svc-restore");
    let mut victim = Victim::start(&dir);
    let pid = victim.pid;
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let images_fd = std::fs::File::open(&images).unwrap();
    let opts = CriuOpts {
        images_dir_fd: images_fd.as_raw_fd(),
        pid: Some(pid),
        log_level: Some(4),
        ..Default::default()
    };
    let resp = Client::swrk().call(&CriuReq {
        opts: Some(opts.clone()),
        ..req(CriuReqType::Dump)
    });
    assert!(resp.success, "{resp:?}");
    victim
        .program
        .wait_exit(TIMEOUT)
        .expect("dumped program still running");

    let mut c = Client::swrk();
    let (resp, seen) = call_with_notify(
        &mut c,
        &CriuReq {
            opts: Some(CriuOpts {
                notify_scripts: Some(true),
                log_file: Some("restore.log".into()),
                ..opts
            }),
            ..req(CriuReqType::Restore)
        },
    );
    let log = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    assert_eq!(resp.restore.unwrap().pid, pid);
    let scripts: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        scripts,
        ["pre-restore", "post-restore", "pre-resume", "post-resume"]
    );
    c.finish();
    let verdict = victim.verdict();
    // We are the subreaper: the restored task is ours to kill and reap.
    service_common::kill_and_reap(pid);
    assert_eq!(verdict, "PASS");
}

/// PRE_DUMP rounds and the DUMP on one connection (CRIU's
/// `pre_dump_loop`: after a PRE_DUMP the connection stays open whatever
/// `keep_open` says, for more rounds and then the DUMP), the later rounds
/// with `track_mem` and `parent_img`; the task runs on after each round
/// and the final images restore it, its memory intact. A SINGLE_PRE_DUMP
/// is one request like any other (answered with its own type, the
/// connection closed without `keep_open`); any other request after a
/// PRE_DUMP is refused by name.
#[test]
fn pre_dump_rounds_then_dump_on_one_connection() {
    if let Some(why) = cannot_dump() {
        return skip("pre_dump_rounds_then_dump_on_one_connection", why);
    }
    if !criu_core::check::KernelFeatures::probe().mem_track() {
        return skip(
            "pre_dump_rounds_then_dump_on_one_connection",
            "this kernel predates the async write-protect userfaultfd and PAGEMAP_SCAN \
             (Linux 6.7): no memory tracking for pre-dumps",
        );
    }
    let dir = TempDir::new("svc-predump");
    let mut victim = Victim::start(&dir);
    let pid = victim.pid;
    let opened = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::File::open(&d).unwrap()
    };
    let (single, pre1, pre2, fin) = (
        opened("single"),
        opened("pre1"),
        opened("pre2"),
        opened("final"),
    );
    let opts = |images: &std::fs::File, parent: Option<&str>| CriuOpts {
        images_dir_fd: images.as_raw_fd(),
        pid: Some(pid),
        log_level: Some(4),
        track_mem: parent.map(|_| true),
        parent_img: parent.map(str::to_owned),
        ..Default::default()
    };

    let mut c = Client::swrk();
    let resp = c.call(&CriuReq {
        opts: Some(opts(&single, None)),
        ..req(CriuReqType::SinglePreDump)
    });
    assert!(resp.success, "{resp:?}");
    assert_eq!(resp.r#type, CriuReqType::SinglePreDump as i32);
    assert_eq!(c.finish(), Some(0), "SINGLE_PRE_DUMP without keep_open");
    assert!(
        dir.join("single")
            .join(format!("pagemap-{pid}.img"))
            .exists()
    );

    // After a PRE_DUMP, only PRE_DUMP or DUMP.
    let mut c = Client::swrk();
    let resp = c.call(&CriuReq {
        opts: Some(opts(&pre1, None)),
        ..req(CriuReqType::PreDump)
    });
    assert!(resp.success, "{resp:?}");
    let resp = c.call(&req(CriuReqType::Version));
    assert!(!resp.success);
    let msg = resp.cr_errmsg.unwrap_or_default();
    assert!(msg.contains("a VERSION request after PRE_DUMP"), "{msg}");
    c.finish();

    let mut c = Client::swrk();
    for (images, parent) in [(&pre1, None), (&pre2, Some("../pre1"))] {
        let resp = c.call(&CriuReq {
            opts: Some(opts(images, parent)),
            ..req(CriuReqType::PreDump)
        });
        let log = std::fs::read_to_string(dir.join("pre2/criu.log")).unwrap_or_default();
        assert!(resp.success, "{resp:?}\n{log}");
        assert_eq!(resp.r#type, CriuReqType::PreDump as i32);
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the task after a pre-dump"
        );
    }
    let resp = c.call(&CriuReq {
        opts: Some(opts(&fin, Some("../pre2"))),
        ..req(CriuReqType::Dump)
    });
    let log = std::fs::read_to_string(dir.join("final/criu.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    assert_eq!(c.finish(), Some(0), "the DUMP ends the connection");
    assert!(log.contains("pages in the parent images"), "{log}");
    assert_eq!(
        std::fs::read_link(dir.join("final/parent")).ok(),
        Some(std::path::PathBuf::from("../pre2"))
    );
    victim
        .program
        .wait_exit(TIMEOUT)
        .expect("dumped program still running");

    let resp = Client::swrk().call(&CriuReq {
        opts: Some(CriuOpts {
            log_file: Some("restore.log".into()),
            ..opts(&fin, None)
        }),
        ..req(CriuReqType::Restore)
    });
    let log = std::fs::read_to_string(dir.join("final/restore.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    assert_eq!(resp.restore.unwrap().pid, pid);
    let verdict = victim.verdict();
    service_common::kill_and_reap(pid);
    assert_eq!(verdict, "PASS");
}
