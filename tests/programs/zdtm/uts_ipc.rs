//! A tree in its own UTS and/or IPC namespace (started through `ns_exec`,
//! as `unshare --uts --ipc` would, or unsharing itself with `unshare`).
//! Arguments: `uts` and/or `ipc` (the namespaces it is in and fills),
//! `unshare` (make them itself before anything else), `child` (fork a
//! worker after that, which checks the same state from its side),
//! `child-first` (fork the worker before unsharing: it stays in the
//! namespaces of the harness, a tree CRIU cannot dump), `default-qbytes`
//! (leave the queue's `msg_qbytes` as msgget made it: CRIU 4.1.1 does
//! not restore it) and `shm-attached` (keep the keyed segment attached,
//! attached again at its address by the restore).
//!
//! UTS: a host and a domain name. IPC: two shared memory segments (one
//! with a key, a pattern over three pages and a bit; one private, zero
//! but for one page in the middle), a semaphore set with values, a
//! message queue with messages of several types and sizes (an empty one,
//! one of `msgmax` bytes) and a raised `msg_qbytes`, and the namespace's
//! `kernel/msgmnb` changed. After restore: the names; each object under
//! the same id and key with its mode and owner, the contents, values and
//! messages in order; the sysctl; and the namespaces are not those of
//! the harness (the restore made new ones).
#[path = "lib.rs"]
mod zdtm;

use zdtm::{ensure, errno};

const HOST: &str = "zdtm-uts-host";
const DOMAIN: &str = "zdtm.example";
const SHM_KEY: i32 = 0x5a17_0001;
const SEM_KEY: i32 = 0x5a17_0002;
const MSG_KEY: i32 = 0x5a17_0003;
const IPC_PRIVATE: i32 = 0;
const IPC_CREAT: usize = 0o1000;
const IPC_NOWAIT: usize = 0o4000;
const IPC_SET: usize = 1;
const IPC_STAT: usize = 2;
const GETALL: usize = 13;
const SETALL: usize = 17;
/// The last is `SEMVMX`, the largest a semaphore holds.
const SEM_VALUES: [u16; 4] = [1, 0, 42, 32767];
const MSGMNB: &str = "32768";
const QBYTES: u64 = 20000;
/// Offset of `msg_qbytes` in a 64-bit `msqid64_ds`.
const MSG_QBYTES: usize = 88;
const SEED: u64 = 0x5a17;

fn sys(nr: usize, args: [usize; 5], what: &str) -> Result<usize, String> {
    // SAFETY: the callers pass integers and pointers to buffers of theirs
    // that are large enough for what each SysV call reads or writes.
    let ret = unsafe { criu_arch::syscall5(nr, args[0], args[1], args[2], args[3], args[4]) };
    errno(ret, what)
}

fn shm_len() -> usize {
    3 * zdtm::page() + 100
}

/// The messages queued: type and text.
fn messages() -> Vec<(i64, Vec<u8>)> {
    let msgmax: usize = std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192);
    let big: Vec<u8> = (0..msgmax).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        (5, b"first".to_vec()),
        (1, Vec::new()),
        (9, big),
        (5, b"last of type five".to_vec()),
    ]
}

struct Ids {
    shm: i32,
    shm_private: i32,
    sem: i32,
    msg: i32,
}

struct State {
    qbytes: u64,
    uts: bool,
    ipc: bool,
    ids: Option<Ids>,
    child: Option<i32>,
}

fn setup_uts() -> Result<(), String> {
    rustix::system::sethostname(HOST.as_bytes()).map_err(|e| format!("sethostname: {e}"))?;
    rustix::system::setdomainname(DOMAIN.as_bytes()).map_err(|e| format!("setdomainname: {e}"))
}

fn shmat(id: i32) -> Result<usize, String> {
    sys(criu_arch::nr::SHMAT, [id as usize, 0, 0, 0, 0], "shmat")
}

fn shmdt(addr: usize) -> Result<(), String> {
    sys(criu_arch::nr::SHMDT, [addr, 0, 0, 0, 0], "shmdt").map(drop)
}

fn setup_ipc(raise_qbytes: bool) -> Result<Ids, String> {
    let page = zdtm::page();
    let shmget = |key: i32, mode: usize| {
        sys(
            criu_arch::nr::SHMGET,
            [key as usize, shm_len(), IPC_CREAT | mode, 0, 0],
            "shmget",
        )
        .map(|id| id as i32)
    };
    let shm = shmget(SHM_KEY, 0o640)?;
    let addr = shmat(shm)?;
    // SAFETY: the segment is attached at `addr` for `shm_len()` bytes.
    let buf = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, shm_len()) };
    zdtm::fill_pattern(buf, SEED);
    shmdt(addr)?;
    let shm_private = shmget(IPC_PRIVATE, 0o600)?;
    let addr = shmat(shm_private)?;
    // SAFETY: as above; one byte pattern in the second page only.
    let buf = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, shm_len()) };
    zdtm::fill_pattern(&mut buf[page..2 * page], SEED + 1);
    shmdt(addr)?;

    let sem = sys(
        criu_arch::nr::SEMGET,
        [SEM_KEY as usize, SEM_VALUES.len(), IPC_CREAT | 0o600, 0, 0],
        "semget",
    )? as i32;
    sys(
        criu_arch::nr::SEMCTL,
        [sem as usize, 0, SETALL, SEM_VALUES.as_ptr() as usize, 0],
        "semctl(SETALL)",
    )?;

    // Raised first: a queue's qbytes above msgmnb needs CAP_SYS_RESOURCE.
    std::fs::write("/proc/sys/kernel/msgmnb", MSGMNB)
        .map_err(|e| format!("write kernel/msgmnb: {e}"))?;
    let msg = sys(
        criu_arch::nr::MSGGET,
        [MSG_KEY as usize, IPC_CREAT | 0o600, 0, 0, 0],
        "msgget",
    )? as i32;
    let mut ds = [0u8; 256];
    sys(
        criu_arch::nr::MSGCTL,
        [msg as usize, IPC_STAT, ds.as_mut_ptr() as usize, 0, 0],
        "msgctl(IPC_STAT)",
    )?;
    if raise_qbytes {
        ds[MSG_QBYTES..MSG_QBYTES + 8].copy_from_slice(&QBYTES.to_ne_bytes());
        sys(
            criu_arch::nr::MSGCTL,
            [msg as usize, IPC_SET, ds.as_ptr() as usize, 0, 0],
            "msgctl(IPC_SET)",
        )?;
    }
    for (mtype, text) in messages() {
        let mut buf = mtype.to_ne_bytes().to_vec();
        buf.extend_from_slice(&text);
        sys(
            criu_arch::nr::MSGSND,
            [
                msg as usize,
                buf.as_ptr() as usize,
                text.len(),
                IPC_NOWAIT,
                0,
            ],
            "msgsnd",
        )?;
    }
    Ok(Ids {
        shm,
        shm_private,
        sem,
        msg,
    })
}

fn check_uts() -> Result<(), String> {
    let u = rustix::system::uname();
    let host = u.nodename().to_string_lossy().into_owned();
    let domain = u.domainname().to_string_lossy().into_owned();
    ensure(host == HOST, || format!("hostname {host:?}, want {HOST:?}"))?;
    ensure(domain == DOMAIN, || {
        format!("domainname {domain:?}, want {DOMAIN:?}")
    })
}

/// The id of the object of `key` (`*get(key, 0)`).
fn id_of(nr: usize, key: i32, what: &str) -> Result<i32, String> {
    sys(nr, [key as usize, 0, 0, 0, 0], what).map(|id| id as i32)
}

/// A row of `/proc/sysvipc/KIND` for object `id`: its columns.
fn sysvipc_row(kind: &str, id: i32) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).map_err(|e| e.to_string())?;
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|r| r.get(1).is_some_and(|c| c == &id.to_string()))
        .ok_or_else(|| format!("{kind} id {id} is not in /proc/sysvipc/{kind}:\n{text}"))
}

fn check_ipc(ids: &Ids, want_qbytes: u64) -> Result<(), String> {
    let page = zdtm::page();
    // Shared memory: id, key, mode, size, contents.
    let shm = id_of(criu_arch::nr::SHMGET, SHM_KEY, "shmget(key)")?;
    ensure(shm == ids.shm, || {
        format!("shm key has id {shm}, was {}", ids.shm)
    })?;
    let row = sysvipc_row("shm", shm)?;
    ensure(row[2] == "640" && row[3] == shm_len().to_string(), || {
        format!(
            "shm {shm}: perms {} size {}, want 640 {}",
            row[2],
            row[3],
            shm_len()
        )
    })?;
    let addr = shmat(shm)?;
    // SAFETY: attached for `shm_len()` bytes.
    let buf = unsafe { std::slice::from_raw_parts(addr as *const u8, shm_len()) };
    let r = zdtm::check_pattern("shm", buf, SEED);
    shmdt(addr)?;
    r?;
    let row = sysvipc_row("shm", ids.shm_private)?;
    ensure(row[0] == "0" && row[2] == "600", || {
        format!(
            "private shm {}: key {} perms {}",
            ids.shm_private, row[0], row[2]
        )
    })?;
    let addr = shmat(ids.shm_private)?;
    // SAFETY: attached for `shm_len()` bytes.
    let buf = unsafe { std::slice::from_raw_parts(addr as *const u8, shm_len()) };
    let zeros_ok = buf[..page].iter().chain(&buf[2 * page..]).all(|&b| b == 0);
    let r = zdtm::check_pattern("private shm", &buf[page..2 * page], SEED + 1);
    shmdt(addr)?;
    r?;
    ensure(zeros_ok, || {
        "private shm: its zero pages are not zero".into()
    })?;

    // Semaphores: id, values.
    let sem = id_of(criu_arch::nr::SEMGET, SEM_KEY, "semget(key)")?;
    ensure(sem == ids.sem, || {
        format!("sem key has id {sem}, was {}", ids.sem)
    })?;
    let mut values = [0u16; SEM_VALUES.len()];
    sys(
        criu_arch::nr::SEMCTL,
        [sem as usize, 0, GETALL, values.as_mut_ptr() as usize, 0],
        "semctl(GETALL)",
    )?;
    ensure(values == SEM_VALUES, || {
        format!("semaphore values {values:?}, want {SEM_VALUES:?}")
    })?;

    // Messages: id, qbytes, then each in order, then none.
    let msg = id_of(criu_arch::nr::MSGGET, MSG_KEY, "msgget(key)")?;
    ensure(msg == ids.msg, || {
        format!("msg key has id {msg}, was {}", ids.msg)
    })?;
    let mut ds = [0u8; 256];
    sys(
        criu_arch::nr::MSGCTL,
        [msg as usize, IPC_STAT, ds.as_mut_ptr() as usize, 0, 0],
        "msgctl(IPC_STAT)",
    )?;
    let qbytes = u64::from_ne_bytes(ds[MSG_QBYTES..MSG_QBYTES + 8].try_into().unwrap());
    ensure(qbytes == want_qbytes, || {
        format!("msg_qbytes {qbytes}, want {want_qbytes}")
    })?;
    for (i, (mtype, text)) in messages().into_iter().enumerate() {
        let mut buf = vec![0u8; 8 + 65536];
        let n = sys(
            criu_arch::nr::MSGRCV,
            [
                msg as usize,
                buf.as_mut_ptr() as usize,
                65536,
                0,
                IPC_NOWAIT,
            ],
            &format!("msgrcv #{i}"),
        )?;
        let got_type = i64::from_ne_bytes(buf[..8].try_into().unwrap());
        ensure(got_type == mtype && buf[8..8 + n] == text[..], || {
            format!(
                "message #{i}: type {got_type} of {n} bytes, want type {mtype} of {}",
                text.len()
            )
        })?;
    }
    let mut buf = [0u8; 64];
    ensure(
        sys(
            criu_arch::nr::MSGRCV,
            [msg as usize, buf.as_mut_ptr() as usize, 56, 0, IPC_NOWAIT],
            "msgrcv",
        )
        .is_err(),
        || "a message more than were queued".into(),
    )?;
    let mnb = std::fs::read_to_string("/proc/sys/kernel/msgmnb").map_err(|e| e.to_string())?;
    ensure(mnb.trim() == MSGMNB, || {
        format!("kernel/msgmnb {}, want {MSGMNB}", mnb.trim())
    })
}

/// The task is in its own `kind` namespace, not the harness's (which
/// criu shares).
fn check_own(kind: &str) -> Result<(), String> {
    let link = |p: String| std::fs::read_link(&p).map_err(|e| format!("{p}: {e}"));
    let mine = link(format!("/proc/self/ns/{kind}"))?;
    let harness = link(format!("/proc/{}/ns/{kind}", zdtm::harness_pid()))?;
    ensure(mine != harness, || {
        format!("in the harness's {kind} namespace {}", harness.display())
    })
}

fn check_names(uts: bool) -> Result<(), String> {
    if uts {
        check_uts()?;
        check_own("uts")?;
    }
    Ok(())
}

fn main() {
    zdtm::run(
        |args| {
            let has = |a: &str| args.rest.iter().any(|x| x == a);
            let (uts, ipc) = (has("uts"), has("ipc"));
            let mut child = None;
            // The worker checks the names it sees (none when it was forked
            // before the namespaces were made).
            let worker = |dir: std::path::PathBuf, uts: bool| {
                move || {
                    zdtm::wait_go(&dir)?;
                    check_names(uts)
                }
            };
            if has("child-first") {
                child = Some(zdtm::child(&args.dir, worker(args.dir.clone(), false))?);
            }
            if has("unshare") {
                let mut flags = rustix::thread::UnshareFlags::empty();
                if uts {
                    flags |= rustix::thread::UnshareFlags::NEWUTS;
                }
                if ipc {
                    flags |= rustix::thread::UnshareFlags::NEWIPC;
                }
                // SAFETY: one thread, no fd table shared with anyone.
                unsafe { rustix::thread::unshare_unsafe(flags) }
                    .map_err(|e| format!("unshare: {e}"))?;
            }
            if uts {
                check_own("uts")?;
                setup_uts()?;
            }
            let raise = !has("default-qbytes");
            let ids = if ipc {
                check_own("ipc")?;
                Some(setup_ipc(raise)?)
            } else {
                None
            };
            if let Some(ids) = &ids
                && has("shm-attached")
            {
                shmat(ids.shm)?;
            }
            let qbytes = if raise {
                QBYTES
            } else {
                MSGMNB.parse().unwrap_or(0)
            };
            if has("child") {
                child = Some(zdtm::child(&args.dir, worker(args.dir.clone(), uts))?);
            }
            Ok((
                State {
                    qbytes,
                    uts,
                    ipc,
                    ids,
                    child,
                },
                args.dir.clone(),
            ))
        },
        |_| {},
        |(s, dir)| {
            check_names(s.uts)?;
            if s.ipc {
                check_own("ipc")?;
            }
            if let Some(ids) = &s.ids {
                check_ipc(ids, s.qbytes)?;
            }
            if let Some(c) = s.child {
                zdtm::reap_ok(&dir, c, "the worker")?;
            }
            Ok(())
        },
    );
}
