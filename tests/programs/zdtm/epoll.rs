//! An epoll instance watching eventfds: `ready` (count 1, EPOLLIN, data
//! 1), `idle` (count 0, EPOLLIN, data 2), `out` (EPOLLOUT|EPOLLET, data
//! 0xdeadbeef), a dup of `ready` under its own fd number (data 7) and a
//! nested epoll instance that watches `ready` (data 100).
//! After restore epoll_wait reports exactly the ready targets with their
//! data, a write to `idle` makes it reported, and EPOLL_CTL_DEL works with
//! the original fd numbers (ENOENT would mean they were registered under
//! others). With argument `closed`, a target is closed while its file
//! stays open through a dup (still registered): the dump must refuse it.
#[path = "lib.rs"]
mod zdtm;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};

use rustix::event::epoll::{self, Event, EventData, EventFlags};
use rustix::event::{EventfdFlags, eventfd};
use zdtm::ensure;

struct State {
    ep: OwnedFd,
    ready: OwnedFd,
    idle: OwnedFd,
    out: OwnedFd,
    dup: OwnedFd,
    inner: OwnedFd,
    _keep: Option<OwnedFd>,
}

fn wait(ep: impl AsFd) -> Result<BTreeMap<u64, EventFlags>, String> {
    let mut buf = Vec::with_capacity(16);
    let now = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    epoll::wait(ep, rustix::buffer::spare_capacity(&mut buf), Some(&now))
        .map_err(|e| format!("epoll_wait: {e}"))?;
    Ok(buf
        .iter()
        .map(|e: &Event| (e.data.u64(), e.flags))
        .collect())
}

fn main() {
    zdtm::run(
        |args| {
            let closed = args.rest.first().is_some_and(|a| a == "closed");
            let e = |v| eventfd(v, EventfdFlags::NONBLOCK).map_err(|e| e.to_string());
            let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| e.to_string())?;
            let (ready, idle, out) = (e(1)?, e(0)?, e(0)?);
            let dup = rustix::io::dup(&ready).map_err(|e| e.to_string())?;
            let add = |fd: &OwnedFd, data: u64, flags: EventFlags| {
                epoll::add(&ep, fd, EventData::new_u64(data), flags)
                    .map_err(|e| format!("epoll_ctl(ADD): {e}"))
            };
            add(&ready, 1, EventFlags::IN)?;
            add(&idle, 2, EventFlags::IN)?;
            add(&out, 0xdead_beef, EventFlags::OUT | EventFlags::ET)?;
            add(&dup, 7, EventFlags::IN)?;
            let inner = epoll::create(epoll::CreateFlags::empty()).map_err(|e| e.to_string())?;
            epoll::add(&inner, &ready, EventData::new_u64(5), EventFlags::IN)
                .map_err(|e| format!("epoll_ctl(ADD) inner: {e}"))?;
            add(&inner, 100, EventFlags::IN)?;
            let mut keep = None;
            if closed {
                let gone = e(0)?;
                add(&gone, 9, EventFlags::IN)?;
                keep = Some(rustix::io::dup(&gone).map_err(|e| e.to_string())?);
                drop(gone);
            }
            Ok(State {
                ep,
                ready,
                idle,
                out,
                dup,
                inner,
                _keep: keep,
            })
        },
        |_| {},
        |s| {
            let got = wait(&s.ep)?;
            let keys: Vec<u64> = got.keys().copied().collect();
            ensure(keys == [1, 7, 100, 0xdead_beef], || {
                format!("ready targets {got:?}")
            })?;
            ensure(got[&0xdead_beef] == EventFlags::OUT, || format!("{got:?}"))?;
            rustix::io::write(&s.idle, &1u64.to_ne_bytes()).map_err(|e| e.to_string())?;
            let got = wait(&s.ep)?;
            let keys: Vec<u64> = got.keys().copied().collect();
            // `out` is edge-triggered: reported once.
            ensure(keys == [1, 2, 7, 100], || {
                format!("after writing idle: {got:?}")
            })?;
            let inner = wait(&s.inner)?;
            ensure(inner.keys().eq([5].iter()), || format!("inner: {inner:?}"))?;
            for (what, fd) in [
                ("inner", &s.inner),
                ("ready", &s.ready),
                ("idle", &s.idle),
                ("out", &s.out),
                ("dup", &s.dup),
            ] {
                epoll::delete(&s.ep, fd).map_err(|e| format!("EPOLL_CTL_DEL {what}: {e}"))?;
            }
            let got = wait(&s.ep)?;
            ensure(got.is_empty(), || format!("after deleting all: {got:?}"))
        },
    );
}
