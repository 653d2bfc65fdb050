//! An inotify instance watching DIR/a (wd 1) and DIR/c (wd 3: the watch
//! on DIR/b that got wd 2 was removed). After restore no stray event is
//! queued, creating a file in each directory is reported with that
//! directory's wd, and the watches are listed with their numbers.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use zdtm::ensure;

const IN_CREATE: u32 = 0x100;

/// (wd, mask, name) of the queued events.
fn events(fd: &OwnedFd) -> Result<Vec<(i32, u32, String)>, String> {
    let mut buf = [0u8; 4096];
    let n = match rustix::io::read(fd, &mut buf) {
        Ok(n) => n,
        Err(rustix::io::Errno::AGAIN) => return Ok(Vec::new()),
        Err(e) => return Err(format!("read inotify: {e}")),
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= n {
        let word = |o: usize| u32::from_ne_bytes(buf[at + o..at + o + 4].try_into().unwrap());
        let (wd, mask, len) = (word(0) as i32, word(4), word(12) as usize);
        let name = &buf[at + 16..at + 16 + len];
        let name = String::from_utf8_lossy(name)
            .trim_end_matches('\0')
            .to_string();
        out.push((wd, mask, name));
        at += 16 + len;
    }
    Ok(out)
}

fn watch_lines(fd: &OwnedFd) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("inotify wd:"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

fn main() {
    zdtm::run(
        |args| {
            let dirs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|d| args.dir.join(d)).collect();
            for d in &dirs {
                std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
            }
            let fd = inotify::init(CreateFlags::NONBLOCK).map_err(|e| e.to_string())?;
            let mask = WatchFlags::CREATE | WatchFlags::DELETE;
            let mut wds = Vec::new();
            for d in &dirs {
                wds.push(inotify::add_watch(&fd, d, mask).map_err(|e| e.to_string())?);
            }
            ensure(wds == [1, 2, 3], || format!("wds {wds:?}"))?;
            inotify::remove_watch(&fd, 2).map_err(|e| e.to_string())?;
            let _ = events(&fd)?; // the IN_IGNORED of wd 2
            Ok((fd, dirs))
        },
        |_| {},
        |(fd, dirs)| {
            let stray = events(&fd)?;
            ensure(stray.is_empty(), || format!("stray events {stray:?}"))?;
            let mut lines = watch_lines(&fd);
            lines.sort();
            ensure(lines == ["inotify wd:1", "inotify wd:3"], || {
                format!("watches {lines:?}")
            })?;
            std::fs::write(dirs[0].join("x"), "").map_err(|e| e.to_string())?;
            std::fs::write(dirs[1].join("y"), "").map_err(|e| e.to_string())?;
            std::fs::write(dirs[2].join("z"), "").map_err(|e| e.to_string())?;
            let got = events(&fd)?;
            let want = vec![
                (1, IN_CREATE, "x".to_string()),
                (3, IN_CREATE, "z".to_string()),
            ];
            ensure(got == want, || format!("events {got:?}, want {want:?}"))
        },
    );
}
