//! The process-wide notes of a core file and the note encoding:
//! NT_PRPSINFO (state, ids, command name and line), NT_AUXV (the auxiliary
//! vector `mm.img` saved), NT_FILE (the file mappings) and NT_SIGINFO (for
//! a task stopped by a signal). The per-thread register notes come from
//! [`crate::regs::core_thread_notes`].

use crate::images::pb;
use crate::images::vma::is_file_vma;
use crate::regs::CoreNote;
use crate::sys::plain::bytes_of;

/// `task_core_entry.task_state` values (CRIU's `TASK_*`).
const TASK_ALIVE: u32 = 1;
const TASK_DEAD: u32 = 2;
pub const TASK_STOPPED: u32 = 3;

/// `AT_NULL`, the auxiliary vector's end.
const AT_NULL: u64 = linux_raw_sys::auxvec::AT_NULL as u64;

/// The bytes of a note section: each note's header, its name (with its
/// NUL) and descriptor, both padded to 4 bytes as ELF64 core files have
/// them.
pub fn encode(notes: &[CoreNote]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in notes {
        let name_len = n.name.len() + 1;
        out.extend_from_slice(&(name_len as u32).to_ne_bytes());
        out.extend_from_slice(&(n.desc.len() as u32).to_ne_bytes());
        out.extend_from_slice(&n.n_type.to_ne_bytes());
        out.extend_from_slice(n.name.as_bytes());
        out.push(0);
        out.resize(align4(out.len()), 0);
        out.extend_from_slice(&n.desc);
        out.resize(align4(out.len()), 0);
    }
    out
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// What NT_PRPSINFO is made of besides the images' own fields.
pub struct PsInfo<'a> {
    pub pstree: &'a pb::PstreeEntry,
    pub core: &'a pb::CoreEntry,
    /// The command line as the task's memory holds it (`mm_arg_start` ..
    /// `mm_arg_end`, NUL-separated).
    pub cmdline: &'a [u8],
}

/// NT_PRPSINFO, as the kernel fills it (`fill_psinfo`).
pub fn prpsinfo(p: &PsInfo<'_>) -> CoreNote {
    let tc = p.core.tc.as_ref();
    let thread = p.core.thread_core.as_ref();
    let state: i8 = match tc.map(|t| t.task_state) {
        Some(TASK_STOPPED) => 3,
        Some(TASK_DEAD) => 4,
        Some(TASK_ALIVE) | Some(_) | None => 0,
    };
    let creds = thread.and_then(|t| t.creds.as_ref());
    let mut info = criu_arch::ElfPrpsinfo {
        state,
        sname: b"RSDTZW"[state as usize],
        zomb: i8::from(state == 4),
        nice: thread
            .and_then(|t| t.sched_nice)
            .unwrap_or(0)
            .clamp(-20, 19) as i8,
        flag: u64::from(tc.map_or(0, |t| t.flags)),
        uid: creds.map_or(0, |c| c.uid),
        gid: creds.map_or(0, |c| c.gid),
        pid: p.pstree.pid as i32,
        ppid: p.pstree.ppid as i32,
        pgrp: p.pstree.pgid as i32,
        sid: p.pstree.sid as i32,
        ..Default::default()
    };
    let comm = tc.map_or("", |t| t.comm.as_str()).as_bytes();
    let n = comm.len().min(info.fname.len() - 1);
    info.fname[..n].copy_from_slice(&comm[..n]);
    // The kernel copies ELF_PRARGSZ - 1 bytes and turns the NULs between
    // the arguments into spaces.
    let args = &p.cmdline[..p.cmdline.len().min(criu_arch::ELF_PRARGSZ - 1)];
    let args = match args.iter().rposition(|&b| b != 0) {
        Some(last) => &args[..=last],
        None => &[],
    };
    for (d, &s) in info.psargs.iter_mut().zip(args) {
        *d = if s == 0 { b' ' } else { s };
    }
    CoreNote {
        name: "CORE",
        n_type: criu_arch::NT_PRPSINFO,
        desc: bytes_of(&info).to_vec(),
    }
}

/// NT_AUXV: the saved auxiliary vector, in (type, value) pairs up to and
/// including `AT_NULL` (added if the image lacks it).
pub fn auxv(mm: &pb::MmEntry) -> CoreNote {
    let mut desc = Vec::new();
    let mut ended = false;
    for pair in mm.mm_saved_auxv.chunks_exact(2) {
        desc.extend_from_slice(&pair[0].to_ne_bytes());
        desc.extend_from_slice(&pair[1].to_ne_bytes());
        if pair[0] == AT_NULL {
            ended = true;
            break;
        }
    }
    if !ended {
        desc.extend_from_slice(&AT_NULL.to_ne_bytes());
        desc.extend_from_slice(&0u64.to_ne_bytes());
    }
    CoreNote {
        name: "CORE",
        n_type: criu_arch::NT_AUXV,
        desc,
    }
}

/// One file mapping for NT_FILE.
pub struct MappedFile<'a> {
    pub start: u64,
    pub end: u64,
    /// Offset in the file, in pages.
    pub pgoff: u64,
    pub name: &'a str,
}

/// The file mappings of `vmas` whose file `files.img` names.
pub fn mapped_files<'a>(
    vmas: &'a [pb::VmaEntry],
    name_of: impl Fn(&pb::VmaEntry) -> Option<&'a str>,
    page_size: u64,
) -> Vec<MappedFile<'a>> {
    vmas.iter()
        .filter(|v| is_file_vma(v))
        .filter_map(|v| {
            Some(MappedFile {
                start: v.start,
                end: v.end,
                pgoff: v.pgoff / page_size,
                name: name_of(v)?,
            })
        })
        .collect()
}

/// NT_FILE: count, page size, (start, end, offset in pages) per mapping,
/// then the NUL-terminated names (`fill_files_note`).
pub fn files(maps: &[MappedFile<'_>], page_size: u64) -> CoreNote {
    let mut desc = Vec::new();
    let mut word = |w: u64| desc.extend_from_slice(&w.to_ne_bytes());
    word(maps.len() as u64);
    word(page_size);
    for m in maps {
        word(m.start);
        word(m.end);
        word(m.pgoff);
    }
    for m in maps {
        desc.extend_from_slice(m.name.as_bytes());
        desc.push(0);
    }
    CoreNote {
        name: "CORE",
        n_type: criu_arch::NT_FILE,
        desc,
    }
}

/// `sizeof(siginfo_t)`.
const SIGINFO_SIZE: usize = 128;

/// NT_SIGINFO of a thread stopped by signal `signo` (the signal is all
/// the images record of it: `si_signo`, with `si_code` SI_USER).
pub fn siginfo(signo: u32) -> CoreNote {
    let mut desc = vec![0u8; SIGINFO_SIZE];
    desc[..4].copy_from_slice(&(signo as i32).to_ne_bytes());
    CoreNote {
        name: "CORE",
        n_type: criu_arch::NT_SIGINFO,
        desc,
    }
}

/// The signals queued in `queue`, as a mask (bit N-1 for signal N; only
/// the 64 a mask holds).
pub fn pending_mask(queue: Option<&pb::SignalQueueEntry>) -> u64 {
    queue
        .into_iter()
        .flat_map(|q| &q.signals)
        .filter_map(|s| s.siginfo.get(..4))
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .filter(|&n| (1..=64).contains(&n))
        .fold(0u64, |m, n| m | 1 << (n - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_padded_to_words() {
        let b = encode(&[
            CoreNote {
                name: "CORE",
                n_type: 1,
                desc: vec![1, 2, 3],
            },
            CoreNote {
                name: "LINUX",
                n_type: 0x202,
                desc: vec![9; 8],
            },
        ]);
        // The header words are in the host's order, as a core file of
        // this machine's holds them.
        let words = |w: [u32; 3]| -> Vec<u8> { w.iter().flat_map(|x| x.to_ne_bytes()).collect() };
        // 12 header + "CORE\0" padded to 8 + 3 desc padded to 4.
        assert_eq!(&b[..12], words([5, 3, 1]));
        assert_eq!(&b[12..20], b"CORE\0\0\0\0");
        assert_eq!(&b[20..24], [1, 2, 3, 0]);
        assert_eq!(&b[24..36], words([6, 8, 0x202]));
        assert_eq!(&b[36..44], b"LINUX\0\0\0");
        assert_eq!(b.len(), 52);
    }

    #[test]
    fn auxv_ends_with_at_null() {
        let mm = pb::MmEntry {
            mm_saved_auxv: vec![6, 4096, 0, 0, 7, 7],
            ..Default::default()
        };
        assert_eq!(auxv(&mm).desc.len(), 32);
        let mm = pb::MmEntry {
            mm_saved_auxv: vec![6, 4096, 9],
            ..Default::default()
        };
        assert_eq!(auxv(&mm).desc.len(), 32);
    }

    #[test]
    fn pending_signals_become_a_mask() {
        let q = pb::SignalQueueEntry {
            signals: vec![
                pb::SiginfoEntry {
                    siginfo: 10i32.to_ne_bytes().to_vec(),
                },
                pb::SiginfoEntry { siginfo: vec![1] },
                pb::SiginfoEntry {
                    siginfo: 99i32.to_ne_bytes().to_vec(),
                },
            ],
        };
        assert_eq!(pending_mask(Some(&q)), 1 << 9);
    }
}
