//! The parasite blob inside the task: copied into the shared area, relocated
//! for the task's address of it, and called as
//! `entry(cmd, args) -> isize` on a stack in the area, returning to a trap
//! instruction that also lives in the area.
//!
//! Layout of the area, low to high: one page holding the return trap, the
//! blob image (its code and data at the offsets it was linked for), the
//! argument block (64-byte aligned), room for the daemon's signal frame,
//! the stack (16 KiB) and a 128-byte gap
//! above the stack top (CRIU keeps such a redzone too). The task sees the
//! trap page and the blob's code read+execute and the rest read+write (W^X);
//! we write everything through our own read-write view.

use criu_arch::{SIGFRAME_ALIGN, SIGFRAME_SIZE, TRAP_INSN, setup_blob_call};

use super::area::{PROT_RX, SharedArea};
use super::error::InfectError;
use super::seize::Seized;
use crate::blob::Blob;

/// Stack the blob runs on.
const STACK_SIZE: usize = 16 * 1024;
/// Kept free above the stack top.
const STACK_GAP: usize = 128;
/// Smallest argument block (CRIU's `PARASITE_ARG_SIZE_MIN`).
const ARGS_MIN: usize = 4096;

/// Offsets of the parts of the shared area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Where the return trap instruction sits (start of the trap page).
    pub trap_off: usize,
    /// Where the blob is placed (one page in).
    pub blob_off: usize,
    /// Bytes of the blob image (code, data and zeroed `.bss`).
    pub blob_len: usize,
    /// The first `exec_len` bytes of the area are mapped read+execute.
    pub exec_len: usize,
    /// Start of the argument block.
    pub args_off: usize,
    /// Size of the argument block.
    pub args_len: usize,
    /// Where the daemon's `rt_sigframe` of the original state goes.
    pub frame_off: usize,
    /// Top of the stack (it grows down from here).
    pub stack_top: usize,
    /// Top of the second stack, for trap-mode calls in other threads while
    /// the daemon runs on the first (CRIU's second 16 KiB stack).
    pub thread_stack_top: usize,
    /// Total size needed.
    pub len: usize,
}

impl Layout {
    /// Lay out a blob of `blob_len` bytes whose writable part starts at
    /// `data_off`, with an argument block of at least `args_len` bytes, for
    /// pages of `page` bytes.
    pub fn new(
        blob_len: usize,
        data_off: usize,
        args_len: usize,
        page: usize,
    ) -> Result<Layout, InfectError> {
        let too_big = || InfectError::Layout(format!("blob {blob_len} + args {args_len} bytes"));
        if page == 0 || !page.is_power_of_two() {
            return Err(InfectError::Layout(format!("bad page size {page}")));
        }
        // The code/data split must fall on a page boundary, unless the blob
        // has no writable part at all.
        if data_off < blob_len && !data_off.is_multiple_of(page) {
            return Err(InfectError::Layout(format!(
                "blob data at {data_off:#x} is not page aligned"
            )));
        }
        let blob_off = page;
        let exec_len = data_off
            .min(blob_len)
            .checked_next_multiple_of(page)
            .and_then(|d| d.checked_add(blob_off))
            .ok_or_else(too_big)?;
        let args_len = args_len.max(ARGS_MIN);
        let args_off = blob_off
            .checked_add(blob_len)
            .and_then(|o| o.max(exec_len).checked_next_multiple_of(64))
            .ok_or_else(too_big)?;
        let frame_off = args_off
            .checked_add(args_len)
            .and_then(|o| o.checked_next_multiple_of(SIGFRAME_ALIGN))
            .ok_or_else(too_big)?;
        let stack_top = frame_off
            .checked_add(SIGFRAME_SIZE)
            .and_then(|o| o.checked_add(STACK_SIZE))
            .and_then(|o| o.checked_next_multiple_of(16))
            .ok_or_else(too_big)?;
        let thread_stack_top = stack_top
            .checked_add(STACK_GAP + STACK_SIZE)
            .and_then(|o| o.checked_next_multiple_of(16))
            .ok_or_else(too_big)?;
        let len = thread_stack_top
            .checked_add(STACK_GAP)
            .ok_or_else(too_big)?;
        Ok(Layout {
            trap_off: 0,
            blob_off,
            blob_len,
            exec_len,
            args_off,
            args_len,
            frame_off,
            stack_top,
            thread_stack_top,
            len,
        })
    }
}

/// The parasite loaded into a seized task. Dropping it (or
/// [`Parasite::cure`]) unmaps the area from the task.
#[derive(Debug)]
pub struct Parasite<'t> {
    task: &'t mut Seized,
    area: Option<SharedArea>,
    layout: Layout,
    entry_off: usize,
}

impl<'t> Parasite<'t> {
    /// Map a shared area in `task`, and place `blob`, relocated for the
    /// task's address of the area, in it with an argument block of at least
    /// `args_len` bytes.
    pub fn infect(
        task: &'t mut Seized,
        blob: &Blob,
        args_len: usize,
    ) -> Result<Parasite<'t>, InfectError> {
        let page = rustix::param::page_size();
        let layout = Layout::new(blob.mem_size(), blob.data_offset(), args_len, page)?;
        let area = task.map_shared_area(layout.len)?;
        let base = area.remote_base();
        // From here on, dropping `parasite` unmaps the area again.
        let mut parasite = Parasite {
            task,
            area: Some(area),
            layout,
            entry_off: layout.blob_off + blob.entry_offset(),
        };
        let l = layout;
        let mem = parasite.area_mut().local_mut();
        blob.relocate_into(
            &mut mem[l.blob_off..l.blob_off + l.blob_len],
            base + l.blob_off as u64,
        )?;
        mem[l.trap_off..l.trap_off + TRAP_INSN.len()].copy_from_slice(TRAP_INSN);
        let Parasite { task, area, .. } = &mut parasite;
        if let Some(area) = area {
            task.remote_mprotect(area, 0, l.exec_len, PROT_RX)
                .map_err(|e| match e {
                    InfectError::RemoteSyscall {
                        pid,
                        errno: rustix::io::Errno::ACCESS,
                        ..
                    } => InfectError::ExecDenied { pid },
                    e => e,
                })?;
        }
        Ok(parasite)
    }

    fn area(&self) -> &SharedArea {
        // Only `cure_inner` takes the area, and it consumes or drops `self`.
        self.area.as_ref().expect("area present until cured")
    }

    fn area_mut(&mut self) -> &mut SharedArea {
        self.area.as_mut().expect("area present until cured")
    }

    pub(super) fn task_mut(&mut self) -> &mut Seized {
        self.task
    }

    pub(super) fn task(&self) -> &Seized {
        self.task
    }

    pub(super) fn entry_addr(&self) -> u64 {
        self.remote_base() + self.entry_off as u64
    }

    pub(super) fn local_mut(&mut self) -> &mut [u8] {
        self.area_mut().local_mut()
    }

    /// The area's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Address of the area in the task.
    pub fn remote_base(&self) -> u64 {
        self.area().remote_base()
    }

    /// The argument block (results of the last call are read from here).
    pub fn args(&self) -> &[u8] {
        let l = self.layout;
        &self.area().local()[l.args_off..l.args_off + l.args_len]
    }

    /// The argument block, to fill before a call.
    pub fn args_mut(&mut self) -> &mut [u8] {
        let l = self.layout;
        &mut self.area_mut().local_mut()[l.args_off..l.args_off + l.args_len]
    }

    /// Run `entry(cmd, args)` in the task until it returns to the trap, then
    /// put the task's registers (GP and FP) and signal mask back. Returns the
    /// entry's return value.
    pub fn call(&mut self, cmd: usize) -> Result<i64, InfectError> {
        let l = self.layout;
        let base = self.remote_base();
        let trap = base + l.trap_off as u64;
        let mut regs = *self.task.regs();
        let call = setup_blob_call(
            &mut regs,
            base + self.entry_off as u64,
            base + l.stack_top as u64,
            &[cmd as u64, base + l.args_off as u64],
            trap,
        )
        .map_err(|e| InfectError::Layout(e.to_string()))?;
        if let Some(word) = call.stack_word {
            let off = self.area().offset_of(word.addr, 8).ok_or_else(|| {
                InfectError::Layout(format!("stack word at {:#x} outside the area", word.addr))
            })?;
            self.area_mut().local_mut()[off..off + 8].copy_from_slice(&word.value.to_ne_bytes());
        }

        let ran = self.task.run_to_trap(
            &regs,
            trap,
            trap + TRAP_INSN.len() as u64,
            "running the parasite",
        );
        let restored = if self.task.released {
            Ok(())
        } else {
            self.task.restore_context(true)
        };
        let at = ran?;
        restored?;
        Ok(at.retval() as i64)
    }

    /// Unmap the area from the task (and from us). The task stays seized.
    pub fn cure(mut self) -> Result<(), InfectError> {
        self.cure_inner()
    }

    fn cure_inner(&mut self) -> Result<(), InfectError> {
        match self.area.take() {
            Some(area) if !self.task.released => {
                self.task.unmap_shared_area(area).map_err(|(area, e)| {
                    // Kept for the error path (drop) to try again.
                    self.area = Some(area);
                    e
                })
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Parasite<'_> {
    fn drop(&mut self) {
        // Error paths: the caller already reports an error; the area must
        // not stay in the task.
        let _undo = crate::fault::Undo::enter();
        let _ = self.cure_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_ordered_and_aligned() {
        let l = Layout::new(0x1030, 0x1000, 10, 4096).unwrap();
        assert_eq!((l.trap_off, l.blob_off), (0, 4096));
        assert_eq!(l.exec_len, 2 * 4096);
        assert_eq!(l.args_off, (4096 + 0x1030_usize).next_multiple_of(64));
        assert_eq!(l.args_len, ARGS_MIN);
        assert!(l.frame_off >= l.args_off + l.args_len);
        assert_eq!(l.frame_off % SIGFRAME_ALIGN, 0);
        assert!(l.stack_top >= l.frame_off + SIGFRAME_SIZE + STACK_SIZE);
        assert_eq!(l.stack_top % 16, 0);
        assert!(l.thread_stack_top >= l.stack_top + STACK_GAP + STACK_SIZE);
        assert_eq!(l.thread_stack_top % 16, 0);
        assert_eq!(l.len, l.thread_stack_top + STACK_GAP);
        // Code only: all of it executable, arguments after it.
        let l = Layout::new(64, 64, 10, 4096).unwrap();
        assert_eq!(l.exec_len, 2 * 4096);
        assert_eq!(l.args_off, 2 * 4096);
        assert!(Layout::new(0x2000, 0x800, 1, 4096).is_err());
        assert!(Layout::new(usize::MAX - 10, 0, 1, 4096).is_err());
        assert!(Layout::new(64, 64, 1, 3000).is_err());
    }
}
