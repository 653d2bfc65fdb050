//! `criu coredump`: an ELF core file per task of an images directory, for
//! gdb (CRIU's separate `criu-coredump` tool, `criu-coredump -i DIR -o
//! OUT`, here a command of criu: `criu coredump -D DIR [--out OUT]`).
//!
//! Each task's `core.PID` is what the kernel would write for it: an ELF64
//! `ET_CORE` file with one `PT_NOTE` segment (NT_PRPSINFO; per thread,
//! the main one first, its status and registers from
//! [`crate::regs::core_thread_notes`], plus NT_SIGINFO for a task stopped
//! by a signal; NT_AUXV; NT_FILE) and one `PT_LOAD` segment per VMA,
//! filled as [`memory`] decides. The images are read and checked as a
//! restore reads them ([`crate::images::set::read_tree`]), so a damaged
//! or hostile image set is refused with the file and the reason.

mod memory;
mod notes;

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use object::write::elf::{FileHeader, ProgramHeader, Writer};

use crate::images::check::CheckError;
use crate::images::pb;
use crate::images::set::{TaskImages, TreeTaskImages};
use crate::images::typed::ImageDir;
use crate::images::vma::is_guard;
use crate::regs::{CoreNote, RegsError, ThreadStatus};
use memory::Memory;

/// Why no core file could be written.
#[derive(Debug, thiserror::Error)]
pub enum CoredumpError {
    #[error(transparent)]
    Images(#[from] CheckError),
    #[error("task {pid}: {source}")]
    Regs {
        pid: u32,
        #[source]
        source: RegsError,
    },
    #[error(
        "task {pid}: {count} memory mappings do not fit a core file's program headers \
         (at most {max} without extended numbering)"
    )]
    TooManyMappings { pid: u32, count: usize, max: usize },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no core file to write: every task of pstree.img is a zombie")]
    OnlyZombies,
}

/// `PN_XNUM`: a program header count this large needs extended numbering,
/// which the core files here do not use.
const MAX_PHDRS: usize = 0xffff - 1;

/// A core file maps nothing, so the images' addresses only have to be
/// user addresses of some 64-bit machine (checked as a restore checks
/// them, against this bound instead of this machine's task size).
const ANY_USER_TOP: u64 = 1 << 63;

/// Writes `core.PID` into `out` for every live task of the images in
/// `images`; the files written.
pub fn run(images: &Path, out: &Path) -> Result<Vec<PathBuf>, CoredumpError> {
    let page_size = crate::proc::page_size() as u64;
    let tasks = crate::images::set::read_tree(
        &ImageDir::new(images),
        page_size,
        ANY_USER_TOP,
        |core, task_size| crate::regs::validate(core, task_size).map_err(Into::into),
    )?;
    let mut written = Vec::new();
    for t in &tasks {
        match t {
            TreeTaskImages::Alive(task) => {
                let path = out.join(format!("core.{}", task.pstree.pid));
                write_task(task, page_size, &path)?;
                crate::pr_info!("Wrote {}", path.display());
                written.push(path);
            }
            TreeTaskImages::Zombie(z) => {
                crate::pr_warn!("Task {} is a zombie: it has no core file", z.pstree.pid);
            }
        }
    }
    if written.is_empty() {
        return Err(CoredumpError::OnlyZombies);
    }
    Ok(written)
}

/// The notes of `task`, in the kernel's order.
fn task_notes(
    task: &TaskImages,
    mem: &mut Memory<'_>,
    page_size: u64,
) -> Result<Vec<CoreNote>, CoredumpError> {
    let p = &task.pstree;
    let regs_err = |pid: u32| move |source| CoredumpError::Regs { pid, source };
    if task.core.mtype != criu_arch::CORE_MTYPE as i32 {
        return Err(CoredumpError::Regs {
            pid: p.pid,
            source: RegsError::Unsupported(format!(
                "its images are of another architecture (core mtype {}, this criu's is {})",
                task.core.mtype,
                criu_arch::CORE_MTYPE
            )),
        });
    }
    let cmdline_len = task.mm.mm_arg_end.saturating_sub(task.mm.mm_arg_start);
    let cmdline = mem.read(
        task.mm.mm_arg_start,
        cmdline_len.min(criu_arch::ELF_PRARGSZ as u64),
    )?;
    let mut out = vec![notes::prpsinfo(&notes::PsInfo {
        pstree: p,
        core: &task.core,
        cmdline: &cmdline,
    })];
    let tc = task.core.tc.as_ref();
    let shared_pending = notes::pending_mask(tc.and_then(|t| t.signals_s.as_ref()));
    let stop_signo = tc
        .filter(|t| t.task_state == notes::TASK_STOPPED)
        .and_then(|t| t.stop_signo)
        .filter(|&s| s != 0);
    let threads = std::iter::once((p.pid, &task.core)).chain(
        task.threads
            .iter()
            .map(|(tid, c)| (*tid, c))
            .filter(|(tid, _)| *tid != p.pid),
    );
    for (tid, core) in threads {
        let thread = core.thread_core.as_ref();
        let status = ThreadStatus {
            pid: tid as i32,
            ppid: p.ppid as i32,
            pgrp: p.pgid as i32,
            sid: p.sid as i32,
            sigpend: shared_pending
                | notes::pending_mask(thread.and_then(|t| t.signals_p.as_ref())),
            sighold: thread
                .and_then(|t| t.blk_sigset)
                .or(tc.map(|t| t.blk_sigset))
                .unwrap_or(0),
            cursig: stop_signo.unwrap_or(0),
        };
        out.extend(crate::regs::core_thread_notes(core, &status).map_err(regs_err(tid))?);
        if let Some(signo) = stop_signo {
            out.push(notes::siginfo(signo));
        }
    }
    out.push(notes::auxv(&task.mm));
    let maps = notes::mapped_files(
        &task.mm.vmas,
        |v| {
            task.reg_files
                .get(&(v.shmid as u32))
                .map(|f| f.name.as_str())
        },
        page_size,
    );
    out.push(notes::files(&maps, page_size));
    Ok(out)
}

/// Writes the core file of `task` to `path` (mode 0600: it holds the
/// task's memory; an existing file is replaced, a symlink is not followed).
fn write_task(task: &TaskImages, page_size: u64, path: &Path) -> Result<(), CoredumpError> {
    let pid = task.pstree.pid;
    let io = |source| CoredumpError::Io {
        path: path.to_owned(),
        source,
    };
    let mut mem = Memory::new(task, page_size)?;
    let note_bytes = notes::encode(&task_notes(task, &mut mem, page_size)?);
    let vmas: Vec<&pb::VmaEntry> = task.mm.vmas.iter().filter(|v| !is_guard(v)).collect();
    if vmas.len() + 1 > MAX_PHDRS {
        return Err(CoredumpError::TooManyMappings {
            pid,
            count: vmas.len(),
            max: MAX_PHDRS - 1,
        });
    }

    // Layout: header, program headers, notes, then each VMA's bytes from
    // the next page boundary on.
    let mut head = Vec::new();
    let mut w = Writer::new(object::Endianness::default(), true, &mut head);
    w.reserve_file_header();
    w.reserve_program_headers(vmas.len() as u32 + 1);
    let notes_off = w.reserve(note_bytes.len(), 4);
    w.reserve_until(w.reserved_len().next_multiple_of(page_size as usize));
    let segments: Vec<(usize, u64)> = vmas
        .iter()
        .map(|v| {
            let size = memory::dump_size(v, page_size);
            (w.reserve(size as usize, 1), size)
        })
        .collect();
    let total = w.reserved_len();

    w.write_file_header(&FileHeader {
        os_abi: object::elf::ELFOSABI_NONE,
        abi_version: 0,
        e_type: object::elf::ET_CORE,
        e_machine: criu_arch::ELF_MACHINE,
        e_entry: 0,
        e_flags: 0,
    })
    .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    w.write_align_program_headers();
    w.write_program_header(&ProgramHeader {
        p_type: object::elf::PT_NOTE,
        p_flags: 0,
        p_offset: notes_off as u64,
        p_vaddr: 0,
        p_paddr: 0,
        p_filesz: note_bytes.len() as u64,
        p_memsz: 0,
        p_align: 0,
    });
    for (v, (off, size)) in vmas.iter().zip(&segments) {
        w.write_program_header(&ProgramHeader {
            p_type: object::elf::PT_LOAD,
            p_flags: memory::segment_flags(v),
            p_offset: *off as u64,
            p_vaddr: v.start,
            p_paddr: 0,
            p_filesz: *size,
            p_memsz: v.end - v.start,
            p_align: page_size,
        });
    }
    w.pad_until(notes_off);
    w.write(&note_bytes);

    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(io)?;
    file.write_all_at(&head, 0).map_err(io)?;
    let mut page = vec![0u8; page_size as usize];
    for (v, (off, size)) in vmas.iter().zip(&segments) {
        let end = v.start + *size;
        let mut at = v.start;
        while let Some(addr) = mem.next_data(v, at, end) {
            if mem.page(v, addr, &mut page)? {
                let n = (end - addr).min(page_size) as usize;
                let to = *off as u64 + (addr - v.start);
                file.write_all_at(&page[..n], to).map_err(io)?;
            }
            at = addr + page_size;
        }
    }
    // Pages the images have nothing for stay holes.
    file.set_len(total as u64).map_err(io)?;
    Ok(())
}
