//! Daemon mode: connect to the tool, serve commands until FINI, then return
//! to the task's own context through the prepared `rt_sigreturn` frame.
//!
//! After a failed command the parasite, like compel's, answers every further
//! command except FINI with the first error, so the tool cannot go on with a
//! half-collected state by mistake.

use crate::abi::{self, CtlMsg, InitDaemonArgs};
use crate::cmds;
use crate::sock::Sock;

/// The argument area: where it is and how long.
#[derive(Clone, Copy)]
pub struct Area {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Area {
    /// The area as a `T` at offset 0, if it fits and is aligned.
    pub fn get<T>(&mut self) -> Option<&mut T> {
        self.at::<T>(0)
    }

    /// A `T` at byte offset `off`, if it fits and is aligned.
    pub fn at<T>(&mut self, off: usize) -> Option<&mut T> {
        let end = off.checked_add(core::mem::size_of::<T>())?;
        if self.ptr.is_null() || end > self.len {
            return None;
        }
        let p = self.ptr.wrapping_add(off).cast::<T>();
        if !p.is_aligned() {
            return None;
        }
        // SAFETY: inside the area (checked above), aligned, and the tool does
        // not touch the area while a command runs. Callers only use this for
        // `#[repr(C)]` integer structs, valid for any bit pattern.
        Some(unsafe { &mut *p })
    }

    /// `nr` entries of `E` after a header of `H`, if they fit.
    pub fn array<E>(&mut self, header: usize, nr: u64) -> Option<&mut [E]> {
        let nr = usize::try_from(nr).ok()?;
        let bytes = nr.checked_mul(core::mem::size_of::<E>())?;
        let end = header.checked_add(bytes)?;
        if self.ptr.is_null() || end > self.len {
            return None;
        }
        let p = self.ptr.wrapping_add(header).cast::<E>();
        if !p.is_aligned() {
            return None;
        }
        // SAFETY: as in `at`, for `nr` consecutive entries.
        Some(unsafe { core::slice::from_raw_parts_mut(p, nr) })
    }
}

/// Run the daemon. Returns only if it could not connect (with `-errno`);
/// otherwise it ends in `rt_sigreturn`.
pub fn run(args: *mut u8) -> isize {
    let mut init_area = Area {
        ptr: args,
        len: core::mem::size_of::<InitDaemonArgs>(),
    };
    let Some(init) = init_area.get::<InitDaemonArgs>() else {
        return abi::ERR_BAD_ARGS;
    };
    // Copy: the area is reused for command arguments.
    let init = *init;
    let area = Area {
        ptr: args,
        len: init.args_len as usize,
    };
    let sock = match Sock::connect(&init.sun_path, init.sun_len as usize) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if let Some(a) = init_area.get::<InitDaemonArgs>() {
        a.sock_fd = sock.0;
    }
    let ack = CtlMsg {
        cmd: abi::CMD_INIT_DAEMON as u32,
        ack: abi::CMD_INIT_DAEMON as u32,
        err: 0,
    };
    if sock.send_ctl(&ack) < 0 {
        drop(sock);
        return -32; // -EPIPE: the tool went away before we started.
    }
    serve(&sock, area);
    drop(sock);
    cmds::cleanup();
    if init.altstack_addr != 0 {
        // SAFETY: the tool points this at the `stack_t` inside the frame it
        // prepared in the shared area; sigaltstack writes one stack_t there.
        unsafe { criu_arch::syscall2(criu_arch::nr::SIGALTSTACK, 0, init.altstack_addr as usize) };
    }
    // SAFETY: the tool built a frame of the task's original state at this
    // address; rt_sigreturn abandons the parasite's context.
    unsafe { criu_arch::sigreturn(init.sigreturn_sp as usize) }
}

fn serve(sock: &Sock, area: Area) {
    let mut failed = 0i32;
    loop {
        let mut msg = CtlMsg::default();
        let got = sock.recv_ctl(&mut msg);
        if got != core::mem::size_of::<CtlMsg>() as isize {
            // The tool closed the socket or sent garbage: go home.
            return;
        }
        if msg.cmd == abi::CMD_FINI {
            return;
        }
        let err = if failed != 0 {
            failed
        } else {
            let ret = cmds::dispatch(msg.cmd, area, sock);
            if ret < 0 { ret as i32 } else { 0 }
        };
        if err != 0 {
            failed = err;
        }
        let reply = CtlMsg {
            cmd: msg.cmd,
            ack: msg.cmd,
            err,
        };
        if sock.send_ctl(&reply) < 0 {
            return;
        }
    }
}
