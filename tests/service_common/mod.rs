//! An RPC client for the service tests: `criu swrk` over a socketpair, or a
//! connection to a `criu service` socket; one protobuf message per
//! SEQPACKET datagram.
#![allow(dead_code)] // Each test binary uses a different part of it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criu_core::images::pb::rpc::{CriuReq, CriuResp};
use prost::Message;
use rustix::io::FdFlags;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};
use rustix::process::{Pid, Signal, WaitOptions};

/// Held while an fd of ours is inheritable and a process is being spawned,
/// so that no other test's child inherits it by accident.
static SPAWN: Mutex<()> = Mutex::new(());

/// Runs `f` (which spawns a process) with no inheritable fds of other tests
/// around.
pub fn spawn_locked<T>(f: impl FnOnce() -> T) -> T {
    let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Spawns `cmd` with `fd` inherited under its own number; `fd` is closed
/// in this process afterwards.
pub fn spawn_with_fd(cmd: &mut Command, fd: OwnedFd) -> Child {
    spawn_locked(|| {
        rustix::io::fcntl_setfd(&fd, FdFlags::empty()).expect("clear FD_CLOEXEC");
        let child = cmd.spawn().expect("spawn");
        drop(fd);
        child
    })
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn kill_and_reap(pid: i32) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, Signal::KILL);
        let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
    }
}

/// Our end of an RPC connection, and the `criu swrk` behind it, if any.
pub struct Client {
    sk: Option<OwnedFd>,
    child: Option<Child>,
}

impl Client {
    /// Starts `criu swrk FD` on a fresh socketpair.
    pub fn swrk() -> Client {
        Client::swrk_at(Path::new(env!("CARGO_BIN_EXE_criu")))
    }

    /// Starts `criu swrk FD` from the criu binary at `criu`.
    pub fn swrk_at(criu: &Path) -> Client {
        Client::swrk_with_stdin(criu, Stdio::null())
    }

    /// [`Client::swrk_at`] with the worker's stdin given (an fd the
    /// worker is to use, as `inherit_fd` names it).
    pub fn swrk_with_stdin(criu: &Path, stdin: Stdio) -> Client {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let mut cmd = Command::new(criu);
        cmd.arg("swrk")
            .arg(theirs.as_raw_fd().to_string())
            .stdin(stdin)
            .stdout(Stdio::null());
        let child = spawn_with_fd(&mut cmd, theirs);
        Client {
            sk: Some(ours),
            child: Some(child),
        }
    }

    /// Connects to a `criu service` socket.
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let sk = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::connect(&sk, &SocketAddrUnix::new(path)?)?;
        Ok(Client {
            sk: Some(sk),
            child: None,
        })
    }

    fn sk(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sk.as_ref().expect("open connection").as_fd()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        rustix::net::send(self.sk(), bytes, SendFlags::NOSIGNAL).expect("send");
    }

    pub fn send(&mut self, req: &CriuReq) {
        self.send_raw(&req.encode_to_vec());
    }

    /// The next response, `None` once the connection is closed. Times out
    /// (panics) after a minute so a hung server cannot hang the tests.
    pub fn recv(&mut self) -> Option<CriuResp> {
        let sk = self.sk();
        let mut fds = [rustix::event::PollFd::new(
            &sk,
            rustix::event::PollFlags::IN,
        )];
        let limit = rustix::time::Timespec {
            tv_sec: 60,
            tv_nsec: 0,
        };
        let n = rustix::event::poll(&mut fds, Some(&limit)).expect("poll");
        assert!(n > 0, "no response within a minute");
        let mut empty: [u8; 0] = [];
        let (_, len) = rustix::net::recv(
            self.sk(),
            &mut empty[..],
            RecvFlags::PEEK | RecvFlags::TRUNC,
        )
        .expect("peek");
        if len == 0 {
            return None;
        }
        let mut buf = vec![0u8; len];
        let (_, got) =
            rustix::net::recv(self.sk(), &mut buf[..], RecvFlags::empty()).expect("recv");
        assert_eq!(got, len);
        Some(CriuResp::decode(&buf[..]).expect("decode response"))
    }

    /// The next response and the fd sent with it (SCM_RIGHTS), if any.
    pub fn recv_with_fd(&mut self) -> Option<(CriuResp, Option<OwnedFd>)> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, recvmsg};
        let sk = self.sk();
        let mut pfd = [rustix::event::PollFd::new(
            &sk,
            rustix::event::PollFlags::IN,
        )];
        let limit = rustix::time::Timespec {
            tv_sec: 60,
            tv_nsec: 0,
        };
        let n = rustix::event::poll(&mut pfd, Some(&limit)).expect("poll");
        assert!(n > 0, "no response within a minute");
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let msg = recvmsg(
            self.sk(),
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut anc,
            RecvFlags::CMSG_CLOEXEC,
        )
        .expect("recvmsg");
        if msg.bytes == 0 {
            return None;
        }
        let mut fd = None;
        for m in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                fd = fds.next();
            }
        }
        let resp = CriuResp::decode(&buf[..msg.bytes]).expect("decode response");
        Some((resp, fd))
    }

    /// The PID of `criu swrk`, if we started it.
    pub fn worker_pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    pub fn call(&mut self, req: &CriuReq) -> CriuResp {
        self.send(req);
        self.recv().expect("connection closed without a response")
    }

    /// Closes our end and waits for `criu swrk`: its exit code.
    pub fn finish(mut self) -> Option<i32> {
        drop(self.sk.take());
        let mut child = self.child.take()?;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(None) = child.try_wait()
        {
            // Kills this child's PID only.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
