//! timerfd (`anon_inode:[timerfd]`): clock, remaining time, interval and
//! the expirations not read yet, from fdinfo (`clockid`, `ticks`,
//! `settime flags`, `it_value`, `it_interval`).
//!
//! It is armed again in the tool with the remaining time; the time the
//! rest of the restore takes passes on it as it would have.

use std::os::fd::OwnedFd;

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

use super::{SysFail, fail, set_status_flags};
use crate::images::pb;
use crate::proc::fdinfo::FdInfo;

/// `TFD_TIMER_ABSTIME`.
const TFD_TIMER_ABSTIME: u32 = linux_raw_sys::general::TFD_TIMER_ABSTIME;

/// The `files.img` entry of a timerfd with id `id`; `flags` are the
/// file's `O_*` flags without `O_CLOEXEC`.
pub fn dump(id: u32, flags: u32, info: &FdInfo) -> Option<pb::FileEntry> {
    let t = info.timerfd?;
    // A periodic timer that expired while the task was frozen shows 0
    // left (the kernel moves it on only when it is read; the expiry is in
    // `ticks` already). Written as 0 it reads as disarmed: CRIU's restore
    // arms nothing then (seen in the VMs, where a dump takes longer than
    // the test's 50 ms period). The image says a whole interval is left,
    // which is what our restore makes of 0 too (see `open`).
    let periodic = t.it_interval != (0, 0);
    let it_value = if t.it_value == (0, 0) && periodic {
        t.it_interval
    } else {
        t.it_value
    };
    Some(pb::FileEntry {
        r#type: pb::FdTypes::Timerfd as i32,
        id,
        tfd: Some(pb::TimerfdEntry {
            id,
            flags,
            fown: pb::FownEntry::default(),
            clockid: t.clockid as u32,
            ticks: t.ticks,
            settime_flags: t.settime_flags,
            vsec: it_value.0,
            vnsec: it_value.1,
            isec: t.it_interval.0,
            insec: t.it_interval.1,
        }),
        ..Default::default()
    })
}

/// The clock of a timerfd, or `None` for one timerfd_create refuses.
pub fn clock(id: u32) -> Option<TimerfdClockId> {
    Some(match id {
        0 => TimerfdClockId::Realtime,
        1 => TimerfdClockId::Monotonic,
        7 => TimerfdClockId::Boottime,
        8 => TimerfdClockId::RealtimeAlarm,
        9 => TimerfdClockId::BoottimeAlarm,
        _ => return None,
    })
}

fn ts(sec: u64, nsec: u64) -> Timespec {
    Timespec {
        tv_sec: sec as i64,
        tv_nsec: nsec as _,
    }
}

/// A new timerfd on the dumped clock, armed with the remaining time and
/// interval, with its unread expirations put back (`TFD_IOC_SET_TICKS`).
pub fn open(e: &pb::TimerfdEntry) -> Result<OwnedFd, SysFail> {
    let clk = clock(e.clockid).ok_or(SysFail {
        call: "timerfd_create (unknown clock)",
        errno: rustix::io::Errno::INVAL,
    })?;
    let fd =
        rustix::time::timerfd_create(clk, TimerfdFlags::CLOEXEC).map_err(fail("timerfd_create"))?;
    let interval = ts(e.isec, e.insec);
    let mut value = ts(e.vsec, e.vnsec);
    let periodic = e.isec != 0 || e.insec != 0;
    // A periodic timer that expired and was not read yet shows 0 left (the
    // kernel moves it on only when it is read): arming it with 0 would
    // disarm it, so it gets a whole interval.
    if e.vsec == 0 && e.vnsec == 0 && periodic {
        value = interval;
    }
    let armed = value.tv_sec != 0 || value.tv_nsec != 0;
    let mut flags = TimerfdTimerFlags::empty();
    if armed && e.settime_flags & TFD_TIMER_ABSTIME != 0 {
        // fdinfo shows the time left; an absolute timer gets it back as
        // an expiry on its clock (which keeps TFD_TIMER_CANCEL_ON_SET
        // meaningful).
        let now = now(e.clockid);
        let mut sec = now.tv_sec + value.tv_sec;
        let mut nsec = now.tv_nsec + value.tv_nsec;
        if nsec >= 1_000_000_000 {
            sec += 1;
            nsec -= 1_000_000_000;
        }
        value = Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        };
        flags = TimerfdTimerFlags::from_bits_retain(e.settime_flags);
    }
    if armed {
        let spec = Itimerspec {
            it_interval: interval,
            it_value: value,
        };
        rustix::time::timerfd_settime(&fd, flags, &spec).map_err(fail("timerfd_settime"))?;
    }
    if e.ticks != 0 {
        crate::sys::anonfd::timerfd_set_ticks(&fd, e.ticks)
            .map_err(fail("ioctl(TFD_IOC_SET_TICKS)"))?;
    }
    set_status_flags(&fd, e.flags)?;
    Ok(fd)
}

/// The current time of timerfd clock `id` (alarm clocks read as their
/// base clocks).
fn now(id: u32) -> Timespec {
    use rustix::time::ClockId;
    let c = match id {
        0 | 8 => ClockId::Realtime,
        7 | 9 => ClockId::Boottime,
        _ => ClockId::Monotonic,
    };
    rustix::time::clock_gettime(c)
}

/// The `TIMERFD` kind: `anon_inode:[timerfd]` fds.
pub struct Timerfd;

impl super::kind::FileKind for Timerfd {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Timerfd
    }

    fn check(
        &self,
        img: &super::FileImages,
        _: &dyn Fn(u32) -> bool,
    ) -> Result<(), super::FileError> {
        for (id, e) in &img.entries {
            if let Some(tf) = &e.tfd
                && clock(tf.clockid).is_none()
            {
                return Err(super::FileError::Image {
                    file: "files.img".into(),
                    what: format!("timerfd {id} has clock {}", tf.clockid),
                });
            }
        }
        Ok(())
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        fd.anon_name() == Some("[timerfd]")
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        let id = files.next_id();
        let e = dump(id, v.ctx.flags, v.info).ok_or_else(|| v.fdinfo_lacks("a timerfd"))?;
        files.entries.push(e);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &super::FileImages) -> Option<(pb::FownEntry, u32)> {
        e.tfd.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(
        &self,
        _: &mut super::Opener<'_>,
        e: &pb::FileEntry,
    ) -> Result<OwnedFd, super::FileError> {
        let x = e
            .tfd
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, "a timerfd"))?;
        open(x).map_err(|f| super::restore_err(e.id, "a timerfd", f.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::fdinfo::TimerfdInfo;

    fn image_of(t: TimerfdInfo) -> pb::TimerfdEntry {
        let info = FdInfo {
            timerfd: Some(t),
            ..Default::default()
        };
        dump(3, 0, &info).unwrap().tfd.unwrap()
    }

    #[test]
    fn a_periodic_timer_due_while_frozen_keeps_a_whole_interval() {
        let e = image_of(TimerfdInfo {
            clockid: 1,
            ticks: 4,
            it_value: (0, 0),
            it_interval: (0, 50_000_000),
            ..Default::default()
        });
        assert_eq!((e.vsec, e.vnsec), (0, 50_000_000));
        assert_eq!((e.isec, e.insec, e.ticks), (0, 50_000_000, 4));
    }

    #[test]
    fn other_timers_keep_the_time_left_as_the_kernel_shows_it() {
        // Running periodic, and an expired one-shot (disarmed: 0 stays 0).
        for (value, interval) in [((1, 5), (2, 0)), ((0, 0), (0, 0)), ((7, 0), (0, 0))] {
            let e = image_of(TimerfdInfo {
                clockid: 1,
                it_value: value,
                it_interval: interval,
                ..Default::default()
            });
            assert_eq!((e.vsec, e.vnsec), value);
            assert_eq!((e.isec, e.insec), interval);
        }
    }
}
