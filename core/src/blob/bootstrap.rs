//! The bootstrap region in the tool: map it at the chosen address (shared,
//! so the tool sees the child's status), copy the prepared image into it,
//! call the restorer's `RESTORE` command (which forks the child), and read
//! the status word the child writes.
//!
//! This is the restore half of the blob loader (each `unsafe` block
//! justified): the restore pipeline itself has no `unsafe`.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::process::Pid;

use crate::blob::restorer_abi::{CMD_RESTORE, RestoreArgs, RestoreStatus, RseqArg, TreeWords};

/// What a region holds before it is mapped: its length and the parts that
/// are not zero (the relocated blob, the frames, the args and their
/// arrays), each at its offset. The stacks, most of a region, are not
/// held: a tree's plans would otherwise keep every task's stacks in the
/// tool's memory until they are mapped.
#[derive(Debug, Default)]
pub struct RegionImage {
    len: usize,
    parts: Vec<(usize, Vec<u8>)>,
}

impl RegionImage {
    /// `len` bytes of zeros.
    pub fn new(len: usize) -> RegionImage {
        RegionImage {
            len,
            parts: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Write `bytes` at `off`: into the part holding that range, or as a
    /// new part (which must not overlap another). Panics on a range
    /// outside the region or across parts: the plan's layout is wrong.
    pub fn put(&mut self, off: usize, bytes: &[u8]) {
        let end = off + bytes.len();
        assert!(
            end <= self.len,
            "region part {off:#x}..{end:#x} beyond {:#x}",
            self.len
        );
        if let Some((at, part)) = self
            .parts
            .iter_mut()
            .find(|(at, p)| *at <= off && end <= *at + p.len())
        {
            part[off - *at..end - *at].copy_from_slice(bytes);
            return;
        }
        assert!(
            self.parts
                .iter()
                .all(|(at, p)| end <= *at || *at + p.len() <= off),
            "region part {off:#x}..{end:#x} overlaps another"
        );
        self.parts.push((off, bytes.to_vec()));
    }
}

/// The region, mapped at its address in this process; unmapped on drop.
pub struct Region {
    base: u64,
    len: usize,
}

impl Region {
    /// Maps `image.len()` bytes shared, read+write+exec, over `hold` (the
    /// address space held for it since its place was chosen, at least as
    /// long) and writes `image`'s parts there (the rest reads as zero).
    pub fn map(hold: Reservation, image: &RegionImage) -> Result<Region, Errno> {
        let len = image.len;
        if len > hold.len {
            return Err(Errno::INVAL);
        }
        crate::fault::call(&"mmap of the bootstrap region", Errno::NOMEM)?;
        let base = hold.base;
        let want = std::ptr::without_provenance_mut::<c_void>(base as usize);
        // SAFETY: MAP_FIXED replaces only `hold`'s own PROT_NONE pages,
        // which nothing uses; the new area belongs to the returned Region.
        let got = unsafe {
            rustix::mm::mmap_anonymous(
                want,
                len,
                ProtFlags::READ | ProtFlags::WRITE | ProtFlags::EXEC,
                MapFlags::SHARED | MapFlags::FIXED,
            )
        }?;
        // The region now owns the whole held range (its tail stays PROT_NONE
        // until the region is unmapped).
        let region = Region {
            base: got as u64,
            len: hold.len,
        };
        std::mem::forget(hold);
        if got != want {
            return Err(Errno::EXIST);
        }
        for (off, bytes) in &image.parts {
            // SAFETY: the mapping is `len` bytes, writable and ours alone;
            // every part lies within `len` (RegionImage::put checks).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    got.cast::<u8>().add(*off),
                    bytes.len(),
                )
            };
        }
        criu_arch::flush_icache(base as usize, len);
        Ok(region)
    }

    /// Calls the restorer's `RESTORE` with the args at `args_off`: forks the
    /// child; returns its PID or the `-errno` of `clone3`.
    pub fn start(&self, entry_off: usize, args_off: usize) -> isize {
        type Entry = unsafe extern "C" fn(usize, *mut u8) -> isize;
        let entry_ptr = std::ptr::without_provenance_mut::<u8>(self.base as usize + entry_off);
        let args = std::ptr::without_provenance_mut::<u8>(self.base as usize + args_off);
        // SAFETY: the region holds the restorer relocated for `base` (the
        // image was built by `Blob::relocate_into` with this base) and is
        // executable; its entry has this signature.
        let entry = unsafe { std::mem::transmute::<*mut u8, Entry>(entry_ptr) };
        // SAFETY: `args` is an aligned RestoreArgs in the region. In this
        // process the command only stores a pointer in the blob's data and
        // calls clone3; all further work happens in the child.
        unsafe { entry(CMD_RESTORE, args) }
    }

    /// Let the child, waiting after `STATE_DONE`, return into its own
    /// code: set `status.resume` and wake its futex (every thread of it
    /// waits there).
    pub fn resume(&self, args_off: usize) {
        let p = (self.base as usize + args_off) as *mut RestoreArgs;
        // SAFETY: the args live in our shared mapping for as long as `self`;
        // `resume` is an aligned u32 that only the tool writes.
        let word = unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*p).status.resume)) };
        wake(word);
    }

    /// Tell a root waiting for its namespaces (`status.ns_ready`) that
    /// they are filled.
    pub fn ns_ready(&self, args_off: usize) {
        let p = (self.base as usize + args_off) as *mut RestoreArgs;
        // SAFETY: the args live in our shared mapping for as long as `self`;
        // `ns_ready` is an aligned u32 that only the tool writes.
        let word = unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*p).status.ns_ready)) };
        wake(word);
    }

    /// The words a child waiting in `STATE_PAGES` takes its answer from.
    pub fn fill_words(&self, args_off: usize) -> FillWords<'_> {
        let p = (self.base as usize + args_off) as *mut RestoreArgs;
        // SAFETY: the args live in our shared mapping for as long as `self`
        // (the borrow); `filled` and `fill_errno` are aligned 4-byte words
        // the child only reads, and the references only make atomic
        // accesses to them.
        unsafe {
            FillWords {
                filled: AtomicU32::from_ptr(std::ptr::addr_of_mut!((*p).status.filled)),
                errno: AtomicI32::from_ptr(std::ptr::addr_of_mut!((*p).status.fill_errno)),
            }
        }
    }

    /// The child's status as published so far.
    pub fn status(&self, args_off: usize) -> RestoreStatus {
        let p = (self.base as usize + args_off) as *mut RestoreArgs;
        // SAFETY: the args live in our shared mapping for as long as `self`;
        // the child writes `state` last with release ordering, and the other
        // fields before it, so an acquire load of `state` orders the rest.
        unsafe {
            let state = AtomicU32::from_ptr(std::ptr::addr_of_mut!((*p).status.state));
            let s = state.load(Ordering::Acquire);
            let mut st = std::ptr::read_volatile(std::ptr::addr_of!((*p).status));
            st.state = s;
            st
        }
    }

    /// Bytes the child left shared with its parent (`cow.skipped`), read
    /// once its status said done (written before that, in its first stage).
    pub fn cow_skipped(&self, args_off: usize) -> u64 {
        let p = (self.base as usize + args_off) as *const RestoreArgs;
        // SAFETY: the args live in our shared mapping for as long as `self`;
        // the field is an aligned u64 the child no longer writes.
        unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*p).cow.skipped)) }
    }
}

/// The answer words of a child in `STATE_PAGES` (see
/// [`RestoreStatus::filled`]), usable from any thread while its region is
/// mapped.
#[derive(Clone, Copy)]
pub struct FillWords<'a> {
    filled: &'a AtomicU32,
    errno: &'a AtomicI32,
}

impl FillWords<'_> {
    /// Answer `filled` (`FILL_*`), with `errno` for `FILL_FAILED`, and wake
    /// the child.
    pub fn answer(&self, filled: u32, errno: i32) {
        const FUTEX_WAKE: usize = linux_raw_sys::general::FUTEX_WAKE as usize;
        self.errno.store(errno, Ordering::Relaxed);
        self.filled.store(filled, Ordering::Release);
        // SAFETY: FUTEX_WAKE on an address of our live mapping; it only
        // wakes waiters, it reads or writes no memory.
        unsafe {
            criu_arch::syscall3(
                criu_arch::nr::FUTEX,
                self.filled.as_ptr() as usize,
                FUTEX_WAKE,
                i32::MAX as usize,
            )
        };
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` created; nothing borrows it.
        let _ = unsafe {
            rustix::mm::munmap(
                std::ptr::without_provenance_mut::<c_void>(self.base as usize),
                self.len,
            )
        };
    }
}

/// A read-only table of `i32`s every task inherits (the fds each takes
/// from the tool, see `RestoreArgs::pull`): one shared mapping, unmapped
/// on drop (and by each task with the rest of the tool).
pub struct SharedTable {
    addr: usize,
    len: usize,
}

impl SharedTable {
    pub fn map(words: &[i32]) -> Result<SharedTable, Errno> {
        let len = (words.len() * 4)
            .max(1)
            .next_multiple_of(rustix::param::page_size());
        // SAFETY: a new anonymous mapping at an address the kernel picks;
        // nothing else refers to it.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }?;
        let table = SharedTable {
            addr: p as usize,
            len,
        };
        // SAFETY: the mapping holds `len` >= 4 * words.len() writable
        // bytes, is page-aligned, and is ours alone.
        unsafe { std::ptr::copy_nonoverlapping(words.as_ptr(), p.cast::<i32>(), words.len()) };
        Ok(table)
    }

    /// The address of word `i`.
    pub fn addr_of(&self, i: usize) -> u64 {
        (self.addr + 4 * i) as u64
    }
}

impl Drop for SharedTable {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` created; no reference
        // into it exists on our side.
        let _ = unsafe {
            rustix::mm::munmap(
                std::ptr::without_provenance_mut::<c_void>(self.addr),
                self.len,
            )
        };
    }
}

/// Address space held for the tree's premap area (see [`super::cow`]):
/// mapped `PROT_NONE` so nothing of the tool lands there before the root
/// is forked (the tasks inherit it and use or free it); unmapped on drop.
pub struct Reservation {
    pub base: u64,
    len: usize,
}

impl Reservation {
    /// `len` bytes exactly at `base`, never over an existing mapping
    /// (`EEXIST` when something is there).
    pub fn at(base: u64, len: u64) -> Result<Reservation, Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::NOMEM)?;
        let want = std::ptr::without_provenance_mut::<c_void>(base as usize);
        // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping, so no memory
        // in use is affected; the new area belongs to the returned Reservation.
        let got = unsafe {
            rustix::mm::mmap_anonymous(
                want,
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE,
            )
        }?;
        let held = Reservation {
            base: got as u64,
            len,
        };
        if got != want {
            // An old kernel without FIXED_NOREPLACE placed it elsewhere.
            return Err(Errno::EXIST);
        }
        Ok(held)
    }

    /// `len` bytes anywhere the kernel finds room; nothing for 0.
    pub fn map(len: u64) -> Result<Reservation, Errno> {
        if len == 0 {
            return Ok(Reservation { base: 0, len: 0 });
        }
        let len = usize::try_from(len).map_err(|_| Errno::NOMEM)?;
        // SAFETY: a new mapping where the kernel chooses: nothing in use
        // is affected; it belongs to the returned Reservation.
        let got = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }?;
        Ok(Reservation {
            base: got as u64,
            len,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: unmaps exactly the mapping `map` created; nothing uses it.
        let _ = unsafe {
            rustix::mm::munmap(
                std::ptr::without_provenance_mut::<c_void>(self.base as usize),
                self.len,
            )
        };
    }
}

/// The tree's shared counters ([`TreeWords`] and the failed-PID word
/// after them): one page mapped shared, inherited by every task forked
/// after it; unmapped on drop.
pub struct TreePage {
    addr: usize,
}

impl TreePage {
    /// Maps the page with the counters set to `groups` and `joins`.
    pub fn map(groups: u32, joins: u32) -> Result<TreePage, Errno> {
        // SAFETY: a new anonymous mapping at an address the kernel picks;
        // nothing else refers to it.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                rustix::param::page_size(),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }?;
        let page = TreePage { addr: p as usize };
        page.word(0).store(groups, Ordering::Release);
        page.word(1).store(joins, Ordering::Release);
        Ok(page)
    }

    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: words 0..2 lie in our live, aligned, shared mapping.
        unsafe { AtomicU32::from_ptr((self.addr + i * 4) as *mut u32) }
    }

    /// The PID of a zombie or helper that could not set itself up, if any.
    pub fn failed(&self) -> Option<u32> {
        const _: () = assert!(size_of::<TreeWords>() == 8);
        match self.word(2).load(Ordering::Acquire) {
            0 => None,
            pid => Some(pid),
        }
    }
}

impl Drop for TreePage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the page `map` created; the words borrowed
        // from it do not outlive `self`.
        let _ = unsafe {
            rustix::mm::munmap(
                std::ptr::without_provenance_mut::<c_void>(self.addr),
                rustix::param::page_size(),
            )
        };
    }
}

/// Runs `f` on a stopped, ptrace-seized fork of this thread (a copy with
/// the same rseq registration, FPU features and address space), then kills
/// it. Lets the tool learn its own per-thread kernel state through ptrace.
pub fn with_traced_fork<T>(f: impl FnOnce(Pid) -> Result<T, Errno>) -> Result<T, Errno> {
    use crate::sys::{clone3, ptrace};
    let child = clone3::spawn_parked_child()?;
    let seized = clone3::seize_parked_child(child);
    let result = seized
        .and_then(|()| ptrace::interrupt(child))
        .and_then(|()| ptrace::wait(child).map(drop))
        .and_then(|()| f(child));
    let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
    let _ = ptrace::wait(child);
    result
}

/// The rseq registration of traced task `pid` (`PTRACE_GET_RSEQ_CONFIGURATION`).
pub fn rseq_of(pid: Pid) -> Result<RseqArg, Errno> {
    let conf = crate::sys::ptrace::get_rseq_config(pid)?;
    Ok(RseqArg {
        addr: conf.rseq_abi_pointer,
        len: conf.rseq_abi_size,
        sig: conf.signature,
    })
}

/// Set a futex word of a child's status to 1 and wake its waiters.
fn wake(word: &AtomicU32) {
    const FUTEX_WAKE: usize = linux_raw_sys::general::FUTEX_WAKE as usize;
    word.store(1, Ordering::Release);
    // SAFETY: FUTEX_WAKE on an address of our live mapping; it only
    // wakes waiters, it reads or writes no memory.
    unsafe {
        criu_arch::syscall3(
            criu_arch::nr::FUTEX,
            word.as_ptr() as usize,
            FUTEX_WAKE,
            i32::MAX as usize,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::RegionImage;

    #[test]
    fn a_region_image_holds_only_its_parts_and_patches_them_in_place() {
        let mut img = RegionImage::new(0x10000);
        img.put(0, &[1; 16]);
        img.put(0x8000, &[2; 64]);
        // A patch inside a part changes that part, adds none.
        img.put(0x8010, &[3; 8]);
        assert_eq!(img.parts.len(), 2);
        let (at, part) = &img.parts[1];
        assert_eq!(*at, 0x8000);
        assert_eq!(&part[0x10..0x18], &[3; 8]);
        assert_eq!(part[0x18], 2);
        assert_eq!(img.len(), 0x10000);
    }

    #[test]
    #[should_panic(expected = "overlaps another")]
    fn a_part_across_another_is_a_layout_bug() {
        let mut img = RegionImage::new(0x1000);
        img.put(0x100, &[1; 16]);
        img.put(0x108, &[2; 16]);
    }

    #[test]
    #[should_panic(expected = "beyond")]
    fn a_part_beyond_the_region_is_a_layout_bug() {
        let mut img = RegionImage::new(0x1000);
        img.put(0xff0, &[1; 32]);
    }
}
