//! SysV semaphore undo state, in a tree with its own IPC namespace: a
//! semaphore set made and raised with `semop`; with `undo` the program
//! (with `child-undo`, its worker alone) raises it with `SEM_UNDO`, which
//! gives the task an undo list (a dump must refuse it: no interface
//! reads its adjustments); without, plainly (the dump and restore keep
//! the value). The check: the values are as the program left them, and
//! the semaphore still takes a `semop`.
#[path = "lib.rs"]
mod zdtm;

use zdtm::ensure;

const SEM_UNDO: u16 = 0x1000;
const IPC_CREAT: usize = 0o1000;
const GETALL: usize = 13;

/// `struct sembuf`.
#[repr(C)]
struct SemBuf {
    num: u16,
    op: i16,
    flg: u16,
}

fn sys(nr: usize, a: [usize; 4], what: &str) -> Result<usize, String> {
    // SAFETY: SysV calls with integers and pointers to live buffers.
    let ret = unsafe { criu_arch::syscall4(nr, a[0], a[1], a[2], a[3]) };
    zdtm::errno(ret, what)
}

fn semop(id: usize, num: u16, op: i16, flg: u16) -> Result<(), String> {
    let b = SemBuf { num, op, flg };
    let nr = criu_arch::nr::SEMTIMEDOP;
    sys(nr, [id, &b as *const SemBuf as usize, 1, 0], "semop").map(drop)
}

fn values(id: usize) -> Result<[u16; 2], String> {
    let mut v = [0u16; 2];
    sys(
        criu_arch::nr::SEMCTL,
        [id, 0, GETALL, v.as_mut_ptr() as usize],
        "semctl(GETALL)",
    )?;
    Ok(v)
}

fn main() {
    zdtm::run(
        |args| {
            let has = |a: &str| args.rest.iter().any(|x| x == a);
            // SAFETY: one thread, nothing shared with anyone.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWIPC) }
                .map_err(|e| format!("unshare(CLONE_NEWIPC): {e}"))?;
            let id = sys(
                criu_arch::nr::SEMGET,
                [0, 2, IPC_CREAT | 0o600, 0],
                "semget",
            )?;
            semop(id, 0, 3, 0)?;
            semop(id, 1, 1, if has("undo") { SEM_UNDO } else { 0 })?;
            let child_undo = has("child-undo");
            let dir = args.dir.clone();
            let worker = zdtm::child(&args.dir, move || {
                if child_undo {
                    semop(id, 0, 2, SEM_UNDO)?;
                }
                zdtm::write_atomic(&dir.join("worker-ready"), "")?;
                zdtm::wait_go(&dir)
            })?;
            let ready = args.dir.join("worker-ready");
            while !ready.exists() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok((id, values(id)?, worker, child_undo, args.dir.clone()))
        },
        |_| {},
        |(id, before, worker, child_undo, dir)| {
            zdtm::reap_ok(&dir, worker, "the worker")?;
            // The worker's undo (if any) applied at its exit.
            let mut want = before;
            if child_undo {
                want[0] -= 2;
            }
            let now = values(id)?;
            ensure(now == want, || {
                format!("semaphore values {now:?}, want {want:?}")
            })?;
            semop(id, 0, -1, 0)?;
            ensure(values(id)?[0] == want[0] - 1, || {
                "semop had no effect".into()
            })
        },
    );
}
