//! The parasite as a daemon (CRIU's `parasite_start_daemon`, compel's RPC
//! and `compel_stop_daemon`): it runs on its own stack in the shared area,
//! connected to us over a `SOCK_SEQPACKET` unix socket, and serves commands
//! given as 12-byte control messages, with arguments and results in the
//! argument block and fds passed with `SCM_RIGHTS`.
//!
//! Before starting it we store an `rt_sigframe` of the task's original
//! state in the area. At FINI the parasite returns through it with
//! `rt_sigreturn`; we follow the task with `PTRACE_SYSCALL` to the exit of
//! that syscall, check that it is back in its own context, then put the
//! exact saved registers, FP state and signal mask back (which also keeps a
//! syscall interrupted by the seize restartable).
//!
//! The socket lives in our network namespace: this tool dumps tasks of its
//! own netns. (CRIU creates it inside the victim's netns, for tasks in
//! another one.)
//!
//! If anything goes wrong while the daemon runs, dropping the [`Daemon`]
//! interrupts the task and restores its saved context; the [`Parasite`]
//! then unmaps the area, so the task is left as it was.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criu_arch::GpRegs;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use super::error::InfectError;
use super::parasite::Parasite;
use super::syscall::TRAP_ONLY_MASK;
use super::{SIGTRAP, is_fault_signal, is_stop_signal};
use crate::blob::parasite_abi::{self as abi, CtlMsg, InitDaemonArgs};
use crate::sys::ptrace::{self, EVENT_STOP, WaitStatus};

/// How long we wait for the parasite to connect or answer a command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll period between checks that the task has not stopped or died.
const POLL_MS: i32 = 50;
/// Size of [`CtlMsg`] on the wire.
const CTL_LEN: usize = std::mem::size_of::<CtlMsg>();

/// Distinguishes the sockets of several infections by this process.
static SOCKET_SEQ: AtomicU32 = AtomicU32::new(0);

/// The running daemon. Commands go through [`Daemon::call`]; [`Daemon::fini`]
/// ends it cleanly.
pub struct Daemon<'a, 't> {
    pub(super) parasite: &'a mut Parasite<'t>,
    pub(super) sock: Option<OwnedFd>,
    /// The task is executing (not in a ptrace stop we have seen).
    pub(super) running: bool,
    /// The registers the signal frame holds (the saved ones after the
    /// syscall-restart fix-up).
    pub(super) frame_regs: GpRegs,
    /// The parasite's socket fd in the task, once connected.
    pub(super) remote_sock: Option<i32>,
    /// The task is back in its own context (FINI done or undone).
    pub(super) done: bool,
}

impl std::fmt::Debug for Daemon<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("pid", &self.parasite.task().pid())
            .field("running", &self.running)
            .finish()
    }
}

impl<'t> Parasite<'t> {
    /// Start the parasite as a daemon and wait until it has connected.
    pub fn start_daemon<'a>(&'a mut self) -> Result<Daemon<'a, 't>, InfectError> {
        let pid = self.task().pid();
        let l = self.layout();
        let base = self.remote_base();
        let frame_addr = base + l.frame_off as u64;

        // The frame: the saved state with the restart fix-up applied, as the
        // kernel would have built it for a signal handler.
        let mut frame_regs = *self.task().regs();
        frame_regs.restart_syscall_fixup();
        let fp = ptrace::fp_regs_from_bytes(&self.task().ext_regs().bytes);
        let mut frame = crate::sys::plain::zeroed_sigframe();
        criu_arch::fill_sigframe(
            &mut frame,
            frame_addr,
            &frame_regs,
            fp.as_ref(),
            self.task().sigmask(),
        );
        // State the kernel reloads from every frame beyond the general and
        // FP registers (s390x's vector registers): taken as it is now.
        let tid = self.task().pid;
        for &note in criu_arch::FRAME_EXTRA_REGSETS {
            // None: this CPU or kernel has no such registers.
            if let Some(bytes) = ptrace::get_optional_regset(tid, note, 1024)
                .map_err(InfectError::ptrace(pid, "GETREGSET(frame)"))?
            {
                frame.set_extra_regset(note, &bytes);
            }
        }
        let bytes = crate::sys::plain::sigframe_bytes(&frame);
        self.local_mut()[l.frame_off..l.frame_off + bytes.len()].copy_from_slice(bytes);

        // Listen before the parasite runs, so its connect cannot miss us.
        let name = format!(
            "crtools-pr-{}-{}",
            std::process::id(),
            SOCKET_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let listener = listen(pid, &name)?;
        let mut init = InitDaemonArgs {
            sun_path: [0; abi::SUN_PATH_MAX],
            sun_len: (name.len() + 1) as u32,
            sigreturn_sp: frame_addr + criu_arch::RT_SIGFRAME_OFFSET as u64,
            args_len: l.args_len as u64,
            altstack_addr: frame_addr
                + (std::mem::offset_of!(criu_arch::RtSigframe, uc)
                    + std::mem::offset_of!(criu_arch::Ucontext, stack)) as u64,
            sock_fd: -1,
            _pad: 0,
        };
        init.sun_path[1..=name.len()].copy_from_slice(name.as_bytes());
        write_init_args(self.args_mut(), &init);

        let mut regs = *self.task().regs();
        let call = criu_arch::setup_blob_call(
            &mut regs,
            self.entry_addr(),
            base + l.stack_top as u64,
            &[abi::CMD_INIT_DAEMON as u64, base + l.args_off as u64],
            base + l.trap_off as u64,
        )
        .map_err(|e| InfectError::Layout(e.to_string()))?;
        if let Some(word) = call.stack_word {
            let off = usize::try_from(word.addr - base)
                .ok()
                .filter(|o| o + 8 <= l.len)
                .ok_or_else(|| InfectError::Layout("stack word outside the area".into()))?;
            self.local_mut()[off..off + 8].copy_from_slice(&word.value.to_ne_bytes());
        }

        let tid = self.task().pid;
        ptrace::set_gp_regs(tid, &regs).map_err(InfectError::ptrace(pid, "SETREGSET"))?;
        let restart = ptrace::set_syscall_restart(tid, 0);
        let mut daemon = Daemon {
            parasite: self,
            sock: None,
            running: false,
            frame_regs,
            remote_sock: None,
            done: false,
        };
        // From here on, dropping `daemon` puts the task's context back.
        restart.map_err(InfectError::ptrace(pid, "SETREGSET(syscall restart)"))?;
        ptrace::set_sigmask(tid, TRAP_ONLY_MASK).map_err(InfectError::ptrace(pid, "SETSIGMASK"))?;
        ptrace::cont(tid, 0).map_err(InfectError::ptrace(pid, "CONT"))?;
        daemon.running = true;

        daemon.wait_readable(listener.as_fd(), "waiting for the parasite to connect")?;
        let sock = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC).map_err(|source| {
            InfectError::Local {
                op: "accept of the parasite's connection",
                source,
            }
        })?;
        daemon.sock = Some(sock);
        let ack = daemon.recv_ctl("waiting for the parasite's INIT_DAEMON ack")?;
        daemon.check_ack(abi::CMD_INIT_DAEMON as u32, ack)?;
        let at = std::mem::offset_of!(InitDaemonArgs, sock_fd);
        let fd = i32::from_ne_bytes(daemon.args()[at..at + 4].try_into().unwrap_or([0xff; 4]));
        daemon.remote_sock = (fd >= 0).then_some(fd);
        Ok(daemon)
    }
}

/// A listening SEQPACKET socket at the abstract address `name`, in the
/// net namespace of task `pid` (an abstract name is reachable from its
/// own namespace only: the parasite connects from the task's).
fn listen(pid: i32, name: &str) -> Result<OwnedFd, InfectError> {
    let local = |op| move |source| InfectError::Local { op, source };
    let make = || {
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(local("socket(AF_UNIX, SOCK_SEQPACKET)"))?;
        let addr = SocketAddrUnix::new_abstract_name(name.as_bytes())
            .map_err(local("abstract socket address"))?;
        rustix::net::bind(&sock, &addr).map_err(local("bind of the parasite socket"))?;
        rustix::net::listen(&sock, 1).map_err(local("listen on the parasite socket"))?;
        Ok(sock)
    };
    match crate::proc::netns::of_task(pid).map_err(local("open of the task's ns/net"))? {
        None => make(),
        Some(ns) => {
            let mut out = None;
            crate::proc::netns::run_in(ns.as_fd(), || {
                out = Some(make());
                Ok(())
            })
            .map_err(local("setns into the task's net namespace"))?;
            out.unwrap_or(Err(InfectError::Local {
                op: "the parasite socket thread",
                source: rustix::io::Errno::IO,
            }))
        }
    }
}

/// Store `init` at the start of the argument block, field by field in the
/// native layout of [`InitDaemonArgs`].
fn write_init_args(args: &mut [u8], init: &InitDaemonArgs) {
    use std::mem::offset_of;
    let mut put = |off: usize, bytes: &[u8]| args[off..off + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(InitDaemonArgs, sun_path), &init.sun_path);
    put(
        offset_of!(InitDaemonArgs, sun_len),
        &init.sun_len.to_ne_bytes(),
    );
    put(
        offset_of!(InitDaemonArgs, sigreturn_sp),
        &init.sigreturn_sp.to_ne_bytes(),
    );
    put(
        offset_of!(InitDaemonArgs, args_len),
        &init.args_len.to_ne_bytes(),
    );
    put(
        offset_of!(InitDaemonArgs, altstack_addr),
        &init.altstack_addr.to_ne_bytes(),
    );
}

impl Daemon<'_, '_> {
    pub(super) fn pid(&self) -> i32 {
        self.parasite.task().pid()
    }

    /// The argument block (results of the last command).
    pub fn args(&self) -> &[u8] {
        self.parasite.args()
    }

    /// The argument block, to fill before a command.
    pub fn args_mut(&mut self) -> &mut [u8] {
        self.parasite.args_mut()
    }

    /// Address of the argument block in the task.
    pub fn remote_args(&self) -> u64 {
        self.parasite.remote_base() + self.parasite.layout().args_off as u64
    }

    /// Run entry command `cmd` in trap mode in another (seized, stopped)
    /// thread of the process, on the area's second stack, with the argument
    /// block as its arguments (the daemon is idle meanwhile). Returns the
    /// blob's return value; the thread's context is put back.
    pub fn call_in_thread(
        &mut self,
        thread: &mut super::SeizedThread,
        cmd: usize,
    ) -> Result<i64, InfectError> {
        let l = self.parasite.layout();
        let base = self.parasite.remote_base();
        let entry = self.parasite.entry_addr();
        let trap = base + l.trap_off as u64;
        let trap_end = trap + criu_arch::TRAP_INSN.len() as u64;
        let parasite = &mut *self.parasite;
        let mut store = |addr: u64, value: u64| -> Result<(), InfectError> {
            let off = usize::try_from(addr.wrapping_sub(base))
                .ok()
                .filter(|o| o + 8 <= l.len)
                .ok_or_else(|| InfectError::Layout("stack word outside the area".into()))?;
            parasite.local_mut()[off..off + 8].copy_from_slice(&value.to_ne_bytes());
            Ok(())
        };
        thread.run_blob(
            entry,
            base + l.thread_stack_top as u64,
            &[cmd as u64, base + l.args_off as u64],
            (trap, trap_end),
            &mut store,
        )
    }

    /// Run daemon command `cmd`; an error the parasite reports becomes
    /// [`InfectError::Command`].
    pub fn call(&mut self, cmd: u32) -> Result<(), InfectError> {
        self.send_ctl(cmd)?;
        let ack = self.recv_ctl("waiting for a parasite command")?;
        self.check_ack(cmd, ack)
    }

    /// Run `cmd`, passing `fd` to the parasite after the control message.
    pub fn call_with_fd(&mut self, cmd: u32, fd: BorrowedFd<'_>) -> Result<(), InfectError> {
        self.send_ctl(cmd)?;
        self.send_fd(fd)?;
        let ack = self.recv_ctl("waiting for a parasite command")?;
        self.check_ack(cmd, ack)
    }

    /// Run `cmd`, which sends `nr` fds back before its ack; returns them.
    pub fn call_recv_fds(&mut self, cmd: u32, nr: usize) -> Result<Vec<OwnedFd>, InfectError> {
        self.send_ctl(cmd)?;
        let mut fds = Vec::with_capacity(nr);
        while fds.len() < nr {
            self.wait_sock("receiving fds from the parasite")?;
            let mut space = vec![
                std::mem::MaybeUninit::uninit();
                rustix::cmsg_space!(ScmRights(abi::SCM_MAX_FD))
            ];
            let mut anc = RecvAncillaryBuffer::new(&mut space);
            let mut byte = [0u8; CTL_LEN];
            let got = rustix::net::recvmsg(
                self.sock_fd()?,
                &mut [std::io::IoSliceMut::new(&mut byte)],
                &mut anc,
                RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(|source| InfectError::Local {
                op: "recvmsg of fds from the parasite",
                source,
            })?;
            let before = fds.len();
            for msg in anc.drain() {
                if let RecvAncillaryMessage::ScmRights(rights) = msg {
                    fds.extend(rights);
                }
            }
            if fds.len() == before {
                // No fds: an early ack carrying the error of the command.
                if got.bytes == CTL_LEN {
                    let ack = parse_ctl(&byte);
                    self.check_ack(cmd, ack)?;
                }
                return Err(self.protocol("the parasite sent a message without fds"));
            }
        }
        let ack = self.recv_ctl("waiting for a parasite command")?;
        self.check_ack(cmd, ack)?;
        Ok(fds)
    }

    fn sock_fd(&self) -> Result<BorrowedFd<'_>, InfectError> {
        self.sock
            .as_ref()
            .map(|s| s.as_fd())
            .ok_or_else(|| self.protocol("no connection to the parasite"))
    }

    pub(super) fn protocol(&self, reason: &str) -> InfectError {
        InfectError::Daemon {
            pid: self.pid(),
            reason: reason.to_string(),
        }
    }

    pub(super) fn send_ctl(&mut self, cmd: u32) -> Result<(), InfectError> {
        let msg = CtlMsg {
            cmd,
            ack: 0,
            err: 0,
        };
        let mut bytes = [0u8; CTL_LEN];
        bytes[0..4].copy_from_slice(&msg.cmd.to_ne_bytes());
        bytes[4..8].copy_from_slice(&msg.ack.to_ne_bytes());
        bytes[8..12].copy_from_slice(&msg.err.to_ne_bytes());
        let sent =
            rustix::net::send(self.sock_fd()?, &bytes, SendFlags::NOSIGNAL).map_err(|source| {
                InfectError::Local {
                    op: "send of a command to the parasite",
                    source,
                }
            })?;
        if sent != CTL_LEN {
            return Err(self.protocol("short send of a control message"));
        }
        Ok(())
    }

    fn send_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), InfectError> {
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = SendAncillaryBuffer::new(&mut space);
        if !anc.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(self.protocol("fd does not fit the control buffer"));
        }
        rustix::net::sendmsg(
            self.sock_fd()?,
            &[std::io::IoSlice::new(&[0u8])],
            &mut anc,
            SendFlags::NOSIGNAL,
        )
        .map_err(|source| InfectError::Local {
            op: "sendmsg of an fd to the parasite",
            source,
        })?;
        Ok(())
    }

    fn recv_ctl(&mut self, doing: &'static str) -> Result<CtlMsg, InfectError> {
        self.wait_sock(doing)?;
        let mut bytes = [0u8; CTL_LEN];
        let got = rustix::net::recv(self.sock_fd()?, &mut bytes, RecvFlags::empty()).map_err(
            |source| InfectError::Local {
                op: "recv of an answer from the parasite",
                source,
            },
        )?;
        if got.0 != CTL_LEN {
            return Err(self.protocol(&format!(
                "{doing}: got {} bytes instead of a control message",
                got.0
            )));
        }
        Ok(parse_ctl(&bytes))
    }

    fn check_ack(&self, cmd: u32, ack: CtlMsg) -> Result<(), InfectError> {
        if ack.cmd != cmd || ack.ack != cmd {
            return Err(self.protocol(&format!("answer {}/{} to command {cmd}", ack.cmd, ack.ack)));
        }
        if ack.err != 0 {
            return Err(InfectError::Command {
                pid: self.pid(),
                cmd,
                errno: Errno::from_raw_os_error(ack.err.saturating_neg()),
            });
        }
        Ok(())
    }

    fn wait_sock(&mut self, doing: &'static str) -> Result<(), InfectError> {
        let sock = self
            .sock
            .take()
            .ok_or_else(|| self.protocol("no connection to the parasite"))?;
        let r = self.wait_readable(sock.as_fd(), doing);
        self.sock = Some(sock);
        r
    }

    /// Wait until `fd` is readable while the task runs the parasite,
    /// watching the task: a fault, a trap or its death ends the wait with
    /// an error; stop signals are remembered for the release.
    fn wait_readable(
        &mut self,
        fd: BorrowedFd<'_>,
        doing: &'static str,
    ) -> Result<(), InfectError> {
        let pid = self.pid();
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(POLL_MS) * 1_000_000,
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(n) if n > 0 => return Ok(()),
                Ok(_) | Err(Errno::INTR) => {}
                Err(source) => {
                    return Err(InfectError::Local {
                        op: "poll on the parasite socket",
                        source,
                    });
                }
            }
            self.check_task(doing)?;
            if Instant::now() > deadline {
                return Err(InfectError::Daemon {
                    pid,
                    reason: format!("timed out {doing}"),
                });
            }
        }
    }

    /// Look at a state change of the running task, if any.
    fn check_task(&mut self, doing: &'static str) -> Result<(), InfectError> {
        let pid = self.pid();
        let tid = self.parasite.task().pid;
        let Some(status) = ptrace::try_wait(tid).map_err(InfectError::ptrace(pid, "wait4"))? else {
            return Ok(());
        };
        let task = self.parasite.task_mut();
        match status {
            WaitStatus::Exited(_) | WaitStatus::Killed(_) => {
                self.running = false;
                task.released = true;
                Err(InfectError::Gone { pid, status })
            }
            WaitStatus::Stopped { sig, event: 0 } if sig == SIGTRAP || is_fault_signal(sig) => {
                // The parasite returned to its trap (it could not start) or
                // crashed: either way it is over.
                self.running = false;
                let regs =
                    ptrace::get_gp_regs(tid).map_err(InfectError::ptrace(pid, "GETREGSET"))?;
                if sig == SIGTRAP {
                    Err(InfectError::Daemon {
                        pid,
                        reason: format!(
                            "the parasite stopped {doing} (returned {})",
                            regs.retval() as i64
                        ),
                    })
                } else {
                    Err(InfectError::Fault {
                        pid,
                        sig,
                        pc: regs.pc(),
                        doing,
                    })
                }
            }
            WaitStatus::Stopped { sig, event } => {
                if is_stop_signal(sig) && (event == 0 || event == EVENT_STOP) {
                    task.stop_on_release = true;
                } else if event == 0 {
                    task.deferred_signals.push(sig);
                }
                ptrace::cont(tid, 0).map_err(InfectError::ptrace(pid, "CONT"))
            }
            WaitStatus::SyscallStop => {
                ptrace::cont(tid, 0).map_err(InfectError::ptrace(pid, "CONT"))
            }
        }
    }
}

fn parse_ctl(b: &[u8; CTL_LEN]) -> CtlMsg {
    let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
    CtlMsg {
        cmd: u32::from_ne_bytes(word(0)),
        ack: u32::from_ne_bytes(word(4)),
        err: i32::from_ne_bytes(word(8)),
    }
}
