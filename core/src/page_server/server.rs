//! The receiving side: one session over a connected socket, writing
//! `pagemap-<id>.img` / `pagemap-shmem-<id>.img` and their
//! `pages-<n>.img` into the images directory as CRIU's page server does
//! (its pages images are numbered from 65537 up, so that they never clash
//! with those a dump writes into the same directory).
//!
//! Everything the peer says is checked before it is acted on: an unknown
//! command or pagemap type, flags that are not `pagemap_entry` flags, a run
//! that is not page-aligned or wraps around the address space, and a peer
//! that goes away inside a message or before `PS_IOV_FLUSH` all end the
//! session with an error. Pages are moved socket → pipe → file with
//! `splice`, a pipe's worth at a time, so nothing the peer claims makes
//! this side allocate.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

use super::wire::{IOV_SIZE, Iov, Target, cmd};
use crate::images::writer::ImageWriter;
use crate::images::{ImageDir, ImageError, Kind, pb};
use crate::{pr_debug, pr_info};

/// `pagemap_entry` flags (`PE_PARENT`, `PE_LAZY`, `PE_PRESENT`).
const PE_PARENT: u32 = 1;
const PE_LAZY: u32 = 2;
const PE_PRESENT: u32 = 4;
/// The first pages image id the server gives (CRIU's `up_page_ids_base`).
pub const FIRST_PAGES_ID: u32 = 0x10001;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the sender went away in the middle of a message ({got} of {want} bytes)")]
    ShortMessage { got: usize, want: usize },
    #[error("the sender went away before flushing the pages (no PS_IOV_FLUSH)")]
    NotFlushed,
    #[error(
        "the sender went away in the middle of the pages of {vaddr:#x} ({done} of {want} bytes)"
    )]
    ShortPages { vaddr: u64, done: u64, want: u64 },
    #[error("unknown page server command {cmd:#x}")]
    UnknownCommand { cmd: u32 },
    #[error(
        "PS_IOV_GET: this page server serves no lazy pages (use `criu lazy-pages` on the source)"
    )]
    Get,
    #[error("unknown pagemap type in dst_id {dst_id:#x}")]
    UnknownTarget { dst_id: u64 },
    #[error("bad pagemap flags {flags:#x} for {vaddr:#x}")]
    BadFlags { flags: u32, vaddr: u64 },
    #[error(
        "bad run of {nr_pages} pages at {vaddr:#x} (not page-aligned or past the address space)"
    )]
    BadRun { vaddr: u64, nr_pages: u32 },
    #[error("reading from the sender: {0}")]
    Read(std::io::Error),
    #[error("answering the sender: {0}")]
    Answer(std::io::Error),
    #[error("{what}: {errno}")]
    Sys { what: &'static str, errno: Errno },
    #[error("writing {file}: {errno}")]
    Write { file: String, errno: Errno },
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// The pagemap being received.
struct Open {
    dst_id: u64,
    pagemap: ImageWriter<BufWriter<File>>,
    pages: File,
    pages_name: String,
}

/// What a session wrote.
#[derive(Debug, Default)]
pub struct Received {
    pub pagemaps: u64,
    pub pages: u64,
}

/// Serve one sender on `sk`, writing into `dir`. `inherited`: the socket
/// came from `--ps-socket` (no waiting for the sender to close after
/// `PS_IOV_FLUSH`).
pub fn serve(sk: &TcpStream, dir: &Path, inherited: bool) -> Result<Received, ServeError> {
    let _ = sk.set_nodelay(true);
    let mut s = Session::new(dir)?;
    let mut flushed = false;
    while let Some(iov) = read_iov(sk)? {
        flushed = false;
        match iov.command() {
            cmd::OPEN => s.open(iov.dst_id).map(drop)?,
            cmd::OPEN2 => {
                let parent = s.open(iov.dst_id)?;
                answer(sk, &[u8::from(parent)])?;
            }
            cmd::PARENT => {
                let parent = s.has_parent(target(iov.dst_id)?);
                answer(sk, &i32::from(parent).to_ne_bytes())?;
            }
            cmd::ADD_F => s.add(sk, &iov, iov.flags())?,
            cmd::ADD => s.add(sk, &iov, PE_PRESENT)?,
            cmd::HOLE => s.add(sk, &iov, PE_PARENT)?,
            cmd::FLUSH | cmd::FLUSH_N_CLOSE => {
                s.close()?;
                answer(sk, &0i32.to_ne_bytes())?;
                flushed = true;
                if iov.cmd == cmd::FLUSH_N_CLOSE {
                    break;
                }
            }
            cmd::GET => return Err(ServeError::Get),
            _ => return Err(ServeError::UnknownCommand { cmd: iov.cmd }),
        }
    }
    if !flushed {
        return Err(ServeError::NotFlushed);
    }
    s.close()?;
    if !inherited {
        // Wait for the sender to close, as CRIU does (no TIME_WAIT here).
        let mut c = [0u8; 1];
        let _ = (&*sk).read(&mut c);
    }
    pr_info!("Session over");
    Ok(s.received)
}

/// The next message, or `None` at a clean end of the stream.
fn read_iov(sk: &TcpStream) -> Result<Option<Iov>, ServeError> {
    let mut b = [0u8; IOV_SIZE];
    let mut got = 0;
    while got < IOV_SIZE {
        match (&*sk).read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(ServeError::ShortMessage {
                    got,
                    want: IOV_SIZE,
                });
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ServeError::Read(e)),
        }
    }
    Ok(Some(Iov::from_bytes(&b)))
}

/// Block until `sk` has data (or its end).
fn wait_readable(sk: &TcpStream) -> Result<(), ServeError> {
    use rustix::event::{PollFd, PollFlags};
    loop {
        let mut fds = [PollFd::new(sk, PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(ServeError::Read(errno.into())),
        }
    }
}

fn answer(sk: &TcpStream, b: &[u8]) -> Result<(), ServeError> {
    (&*sk).write_all(b).map_err(ServeError::Answer)
}

fn target(dst_id: u64) -> Result<Target, ServeError> {
    Target::from_dst_id(dst_id).ok_or(ServeError::UnknownTarget { dst_id })
}

fn kind_of(t: Target) -> (Kind, u64) {
    match t {
        Target::Task(id) => (Kind::Pagemap, id),
        Target::Shmem(id) => (Kind::ShmemPagemap, id),
    }
}

struct Session {
    dir: ImageDir,
    next_pages_id: u32,
    open: Option<Open>,
    pipe: (OwnedFd, OwnedFd),
    pipe_size: usize,
    page_size: u64,
    received: Received,
}

impl Session {
    fn new(dir: &Path) -> Result<Session, ServeError> {
        let pipe =
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|errno| ServeError::Sys {
                what: "pipe",
                errno,
            })?;
        let pipe_size = rustix::pipe::fcntl_getpipe_size(&pipe.0).unwrap_or(1 << 16);
        Ok(Session {
            dir: ImageDir::new(dir),
            next_pages_id: FIRST_PAGES_ID,
            open: None,
            pipe,
            pipe_size,
            page_size: crate::proc::page_size() as u64,
            received: Received::default(),
        })
    }

    /// Whether the images dir's `parent` has this pagemap.
    fn has_parent(&self, t: Target) -> bool {
        let (kind, id) = kind_of(t);
        let parent: PathBuf = self.dir.root().join("parent");
        parent.join(kind.file_name(id)).exists()
    }

    /// Finish the open pagemap, if any.
    fn close(&mut self) -> Result<(), ServeError> {
        if let Some(o) = self.open.take() {
            o.pagemap.finish()?;
            o.pages.sync_data().ok();
        }
        Ok(())
    }

    /// Open the pagemap `dst_id` names (after closing the current one);
    /// whether it has a parent.
    fn open(&mut self, dst_id: u64) -> Result<bool, ServeError> {
        let t = target(dst_id)?;
        self.close()?;
        let (kind, id) = kind_of(t);
        pr_info!("Opening {}", kind.file_name(id));
        let pages_id = self.next_pages_id;
        self.next_pages_id += 1;
        let pages_path = self.dir.path(Kind::Pages, u64::from(pages_id));
        let pages = crate::images::writer::create_raw(&pages_path)?;
        let mut pagemap = self.dir.writer(kind, id)?;
        pagemap.write_message(&pb::PagemapHead { pages_id })?;
        self.open = Some(Open {
            dst_id,
            pagemap,
            pages,
            pages_name: pages_path.display().to_string(),
        });
        self.received.pagemaps += 1;
        Ok(self.has_parent(t))
    }

    /// A run: its pagemap entry, then its pages if they come along.
    fn add(&mut self, sk: &TcpStream, iov: &Iov, flags: u32) -> Result<(), ServeError> {
        let (vaddr, nr_pages) = (iov.vaddr, iov.nr_pages);
        if flags & !(PE_PARENT | PE_LAZY | PE_PRESENT) != 0
            || flags & (PE_PARENT | PE_PRESENT) == (PE_PARENT | PE_PRESENT)
        {
            return Err(ServeError::BadFlags { flags, vaddr });
        }
        let len = u64::from(nr_pages) * self.page_size;
        if !vaddr.is_multiple_of(self.page_size) || vaddr.checked_add(len).is_none() {
            return Err(ServeError::BadRun { vaddr, nr_pages });
        }
        if self.open.as_ref().map(|o| o.dst_id) != Some(iov.dst_id) {
            // CRIU's "Deprecated IO w/o open".
            self.open(iov.dst_id)?;
        }
        pr_debug!("Adding {vaddr:#x}/{nr_pages} flags {flags:#x}");
        let Some(o) = self.open.as_mut() else {
            return Err(ServeError::UnknownTarget { dst_id: iov.dst_id });
        };
        for e in crate::images::pagemap::entries(vaddr, u64::from(nr_pages), flags, self.page_size)
        {
            o.pagemap.write_message(&e)?;
        }
        if flags & PE_PRESENT == 0 {
            return Ok(());
        }
        let mut done = 0u64;
        while done < len {
            let chunk = (len - done).min(self.pipe_size as u64) as usize;
            // Non-blocking towards the pipe (which is empty here, but a
            // TCP splice may fill its slots with less than a page each);
            // a TCP socket still waits for data, another kind says EAGAIN.
            let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
            let n = match rustix::pipe::splice(sk, None, &self.pipe.1, None, chunk, flags) {
                Ok(0) => {
                    return Err(ServeError::ShortPages {
                        vaddr,
                        done,
                        want: len,
                    });
                }
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {
                    wait_readable(sk)?;
                    continue;
                }
                Err(errno) => return Err(ServeError::Read(errno.into())),
            };
            let mut left = n;
            while left > 0 {
                match rustix::pipe::splice(
                    &self.pipe.0,
                    None,
                    &o.pages,
                    None,
                    left,
                    SpliceFlags::MOVE,
                ) {
                    Ok(0) => {
                        return Err(ServeError::Write {
                            file: o.pages_name.clone(),
                            errno: Errno::IO,
                        });
                    }
                    Ok(m) => left -= m,
                    Err(Errno::INTR) => {}
                    Err(errno) => {
                        return Err(ServeError::Write {
                            file: o.pages_name.clone(),
                            errno,
                        });
                    }
                }
            }
            done += n as u64;
        }
        self.received.pages += u64::from(nr_pages);
        Ok(())
    }
}
