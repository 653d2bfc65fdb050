//! Daemon mode: connect to the tool, serve commands until FINI, then return
//! to the task's own context through the prepared `rt_sigreturn` frame.
//!
//! After a failed command the parasite, like compel's, answers every further
//! command except FINI with the first error, so the tool cannot go on with a
//! half-collected state by mistake.

use crate::abi::{self, CtlMsg, InitDaemonArgs};
use crate::area::Area;
use crate::cmds;
use crate::sock::Sock;
use criu_blob_rt::sys;

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
        unsafe { sys::sigaltstack(0, init.altstack_addr as usize) };
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
