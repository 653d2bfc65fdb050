//! Memory shared with the task (CRIU's `parasite_memfd_exchange`): a memfd
//! created inside the task, opened by us through `/proc/PID/fd/N`, sized, and
//! mapped `MAP_SHARED` on both sides. What we write locally the task sees at
//! [`SharedArea::remote_base`].

use rustix::fs::{Mode, OFlags};

use super::error::InfectError;
use super::seize::Seized;
use crate::sys::shared_mapping::SharedMapping;

/// `PROT_READ | PROT_WRITE`: the task's view starts read-write; whoever runs
/// code from it makes that part read-execute ([`Seized::remote_mprotect`]).
const PROT_RW: u64 =
    (linux_raw_sys::general::PROT_READ | linux_raw_sys::general::PROT_WRITE) as u64;
/// `PROT_READ | PROT_EXEC`.
pub const PROT_RX: u64 =
    (linux_raw_sys::general::PROT_READ | linux_raw_sys::general::PROT_EXEC) as u64;
/// `MAP_SHARED`.
const MAP_SHARED: u64 = linux_raw_sys::general::MAP_SHARED as u64;

/// The memfd's name, as CRIU names it ("CRIUMFD" + NUL is exactly one word).
const MEMFD_NAME: [u8; 8] = *b"CRIUMFD\0";

/// A mapping present both in the task (at `remote_base`) and in our process.
#[derive(Debug)]
pub struct SharedArea {
    remote: u64,
    local: SharedMapping,
}

impl SharedArea {
    /// Address of the area in the task.
    pub fn remote_base(&self) -> u64 {
        self.remote
    }

    /// Length in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.local.len()
    }

    /// Always false: an area has at least one page.
    pub fn is_empty(&self) -> bool {
        self.local.is_empty()
    }

    /// Our view of the area (read it only while the task is stopped).
    pub fn local(&self) -> &[u8] {
        self.local.as_slice()
    }

    /// Our view of the area, writable.
    pub fn local_mut(&mut self) -> &mut [u8] {
        self.local.as_mut_slice()
    }

    /// Offset inside the area of the task's address `addr`, if `len` bytes
    /// from there lie inside it.
    pub fn offset_of(&self, addr: u64, len: usize) -> Option<usize> {
        let off = usize::try_from(addr.checked_sub(self.remote)?).ok()?;
        (off.checked_add(len)? <= self.len()).then_some(off)
    }
}

impl Seized {
    /// Create a shared area of at least `len` bytes. On failure nothing is
    /// left behind in the task (no fd, no mapping).
    pub fn map_shared_area(&mut self, len: usize) -> Result<SharedArea, InfectError> {
        self.try_map_shared_area(len).inspect_err(|_| {
            // A step can fail after its syscall ran in the task (its
            // result lost): remove whatever of the area exists there.
            self.scrub_shared_area();
        })
    }

    fn try_map_shared_area(&mut self, len: usize) -> Result<SharedArea, InfectError> {
        let page = rustix::param::page_size();
        let len = len
            .checked_next_multiple_of(page)
            .filter(|&l| l > 0)
            .ok_or_else(|| InfectError::Layout(format!("bad shared area size {len}")))?;
        let name_addr = self.exec_start + 8;
        let fd = self.remote_syscall_with_data(
            "memfd_create",
            criu_arch::nr::MEMFD_CREATE,
            [name_addr, 0, 0, 0, 0, 0],
            &[u64::from_ne_bytes(MEMFD_NAME)],
        )?;
        let mapped = self.map_remote_fd(fd, len);
        let closed = self.remote_syscall("close", criu_arch::nr::CLOSE, [fd, 0, 0, 0, 0, 0]);
        match (mapped, closed) {
            (Ok(area), Ok(_)) => Ok(area),
            (Ok(area), Err(e)) => {
                // Keep the task as it was: drop the mapping too.
                let _ = self.unmap_shared_area(area);
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Close every fd and unmap every mapping of a shared-area memfd in the
    /// task, found through /proc: used when a failed step may have left
    /// one whose number or address we never learned. Best effort: each
    /// failure here means the task is gone.
    fn scrub_shared_area(&mut self) {
        let _undo = crate::fault::Undo::enter();
        let pid = self.pid();
        let ours = |link: &[u8]| link.starts_with(b"/memfd:CRIUMFD");
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            let fds: Vec<u64> = dir
                .flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| ours(l.as_os_str().as_encoded_bytes()))
                })
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            for fd in fds {
                let _ = self.remote_syscall("close", criu_arch::nr::CLOSE, [fd, 0, 0, 0, 0, 0]);
            }
        }
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (Some(range), Some(path)) = (f.next(), f.nth(4)) else {
                continue;
            };
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
                continue;
            };
            if ours(path.as_bytes()) {
                let _ =
                    self.remote_syscall("munmap", criu_arch::nr::MUNMAP, [a, b - a, 0, 0, 0, 0]);
            }
        }
    }

    /// Size the task's memfd `fd` and map it on both sides.
    fn map_remote_fd(&mut self, fd: u64, len: usize) -> Result<SharedArea, InfectError> {
        let path = format!("/proc/{}/fd/{fd}", self.pid());
        let local_fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|source| InfectError::Local {
                op: "opening the task's memfd through /proc/PID/fd",
                source,
            })?;
        rustix::fs::ftruncate(&local_fd, len as u64).map_err(|source| InfectError::Local {
            op: "ftruncate of the shared memfd",
            source,
        })?;
        let args = [0, len as u64, PROT_RW, MAP_SHARED, fd, 0];
        let remote = if criu_arch::MMAP_TAKES_ARG_BLOCK {
            // The block goes right after the stub, where the data words of
            // an injected syscall are placed.
            let block = self.exec_start() + criu_arch::INJECT_CODE.len() as u64;
            self.remote_syscall_with_data(
                "mmap",
                criu_arch::nr::MMAP,
                [block, 0, 0, 0, 0, 0],
                &args,
            )?
        } else {
            self.remote_syscall("mmap", criu_arch::nr::MMAP, args)?
        };
        match SharedMapping::map(&local_fd, len) {
            Ok(local) => Ok(SharedArea { remote, local }),
            Err(source) => {
                let _ = self.remote_syscall(
                    "munmap",
                    criu_arch::nr::MUNMAP,
                    [remote, len as u64, 0, 0, 0, 0],
                );
                Err(InfectError::Local {
                    op: "mmap of the shared memfd",
                    source,
                })
            }
        }
    }

    /// Change the protection of `len` bytes at `offset` of the task's view
    /// of `area` (page-aligned).
    pub fn remote_mprotect(
        &mut self,
        area: &SharedArea,
        offset: usize,
        len: usize,
        prot: u64,
    ) -> Result<(), InfectError> {
        if area.offset_of(area.remote + offset as u64, len).is_none() {
            return Err(InfectError::Layout(format!(
                "mprotect of {len} bytes at offset {offset} outside the area"
            )));
        }
        self.remote_syscall(
            "mprotect",
            criu_arch::nr::MPROTECT,
            [area.remote + offset as u64, len as u64, prot, 0, 0, 0],
        )
        .map(drop)
    }

    /// Unmap the area from the task and from us.
    /// On failure the area is handed back, so that an error path can try
    /// again: it must not stay in the task.
    pub fn unmap_shared_area(&mut self, area: SharedArea) -> Result<(), (SharedArea, InfectError)> {
        let len = area.len() as u64;
        match self.remote_syscall(
            "munmap",
            criu_arch::nr::MUNMAP,
            [area.remote, len, 0, 0, 0, 0],
        ) {
            // Our side goes with `area`.
            Ok(_) => Ok(()),
            Err(e) => Err((area, e)),
        }
    }
}
