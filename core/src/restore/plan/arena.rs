//! The plan's arena step: the arrays the restorer reads, laid out after
//! its args. They are pushed once their sizes are known, then those
//! holding addresses are rewritten once the region's base is.

use super::attrs::{comm_arg, creds_arg, rlimits_arg, robust_list_call, rseq_arg, set_altstack};
use super::layout::Layout;
use super::signals::{siginfos, signals_arg};
use super::vdso::{vdso_moves, vdso_patches};
use super::vmas::{madvise_calls, page_runs};
use super::{Parts, THREAD_STACK_SIZE, regs};
use crate::blob::restorer_abi::{
    Array, ChildArg, CodePatch, RawSyscall, Region as AbiRegion, SeccompArg, SeccompFilterArg,
    ThreadArg, VdsoMarkArg,
};
use crate::files::locks::KernelFlock;
use crate::images::set::seccomp::{INSN_SIZE, ThreadSeccomp};
use crate::restore::RestoreError;
use crate::sys::plain::{Plain, bytes_of};

/// Arrays laid out after the args; addresses are offsets until `rebase`.
#[derive(Default)]
pub(super) struct Arena {
    pub buf: Vec<u8>,
}

impl Arena {
    fn push<T: Plain>(&mut self, items: &[T]) -> Array {
        while !self.buf.len().is_multiple_of(16) {
            self.buf.push(0);
        }
        let off = self.buf.len();
        for it in items {
            self.buf.extend_from_slice(bytes_of(it));
        }
        Array {
            addr: off as u64,
            len: items.len() as u64,
        }
    }
}

/// A `struct flock` as the bytes the kernel reads: each field at its offset
/// in the C layout, whose padding `KernelFlock` names as fields.
fn flock_bytes(f: &KernelFlock) -> [u8; size_of::<KernelFlock>()] {
    use std::mem::offset_of;
    let mut b = [0u8; size_of::<KernelFlock>()];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(KernelFlock, l_type), &f.l_type.to_ne_bytes());
    put(offset_of!(KernelFlock, l_whence), &f.l_whence.to_ne_bytes());
    put(offset_of!(KernelFlock, _pad0), &f._pad0.to_ne_bytes());
    put(offset_of!(KernelFlock, l_start), &f.l_start.to_ne_bytes());
    put(offset_of!(KernelFlock, l_len), &f.l_len.to_ne_bytes());
    put(offset_of!(KernelFlock, l_pid), &f.l_pid.to_ne_bytes());
    put(offset_of!(KernelFlock, _pad1), &f._pad1.to_ne_bytes());
    b
}

fn vec_bytes<T: Plain>(v: &[T]) -> Vec<u8> {
    v.iter().flat_map(|x| bytes_of(x).to_vec()).collect()
}

/// Where each array of the task lies in the arena.
pub(super) struct Arrays {
    pub park: Array,
    pub unmap: Array,
    pub vmas: Array,
    pub runs: Array,
    /// The runs the tool copies in (`copy_list`, see `plan::copy`) and
    /// the VMAs they lie in.
    pub copy_runs: Array,
    pub copy_vmas: Array,
    pub copy_list: Vec<crate::blob::restorer_abi::PageRun>,
    /// unmap, maps, fill, compare, discard, moves (see `CowArgs`).
    pub cow: [Array; 6],
    pub unpark: Array,
    pub patches: Array,
    pub sigs: Array,
    pub itimers: Array,
    pub posix: Array,
    pub rlimits: Array,
    pub signals: Array,
    /// Each other thread's signals and arch syscalls, and its sigmask.
    pub thread_arrays: Vec<(Array, Array, u64)>,
    pub threads: Array,
    pub moves: Array,
    pub events: Array,
    pub flocks: Array,
    pub fd_calls: Array,
    pub words: Array,
    pub keep: Array,
    pub children: Array,
    pub auxv: Array,
    pub arch: Array,
    pub madvise: Array,
    pub cgroup_fds: Array,
    pub cgns_fds: Array,
    /// The main thread's `set_robust_list` call (after its arch calls).
    pub robust: Vec<RawSyscall>,
    /// Each thread's seccomp filters and their instructions (the leader's
    /// first, then the other threads' in order) and its mode.
    pub seccomp: Vec<(Array, Array, u32)>,
}

/// A thread's seccomp arg from its arrays (see [`Arrays::seccomp`]).
pub(super) fn seccomp_arg(
    lay: &Layout,
    base: u64,
    (filters, insns, mode): (Array, Array, u32),
) -> SeccompArg {
    SeccompArg {
        mode,
        _pad: 0,
        filters: lay.at(base, filters),
        insns: lay.at(base, insns),
    }
}

/// Pushes one thread's seccomp filters: their list and their
/// instructions, each `struct sock_filter` as one native-order word.
fn push_seccomp(arena: &mut Arena, s: &ThreadSeccomp) -> (Array, Array, u32) {
    let list: Vec<SeccompFilterArg> = s
        .filters
        .iter()
        .map(|f| SeccompFilterArg {
            flags: f.flags,
            len: (f.insns.len() / INSN_SIZE) as u32,
        })
        .collect();
    let insns: Vec<u64> = s
        .filters
        .iter()
        .flat_map(|f| f.insns.chunks_exact(INSN_SIZE))
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8-byte chunk")))
        .collect();
    (arena.push(&list), arena.push(&insns), s.mode)
}

/// Pushes every array of the task, those holding addresses as
/// placeholders of their final size.
pub(super) fn push_arrays(arena: &mut Arena, p: &Parts<'_, '_>) -> Result<Arrays, RestoreError> {
    let (t, role, page_size) = (p.t, p.role, p.page_size);
    let park = arena.push(&p.maps.park_list(0));
    let unmap = arena.push(&[AbiRegion::default(); 4]);
    let vmas = arena.push(&p.vmas);
    let mut runs = page_runs(t, page_size);
    let (area, area_len) = role.cow_area;
    let cow = crate::restore::cow::task_arrays(&role.cow, area, area_len, &mut runs);
    let (copy_list, copy_vmas) = super::copy::split(t, &mut runs);
    let runs = arena.push(&runs);
    let copy_runs = arena.push(&copy_list);
    let copy_vmas = arena.push(&copy_vmas);
    let cow = [
        arena.push(&cow.unmap),
        arena.push(&cow.maps),
        arena.push(&cow.fill),
        arena.push(&cow.compare),
        arena.push(&cow.discard),
        arena.push(&cow.moves),
    ];
    // The vDSO's remaps (one per area of this kernel's, wherever they go),
    // the proxy's jumps (their number is known before their addresses).
    let unpark = arena.push(&p.maps.park_list(0));
    let nr_patches = vdso_patches(t, p.vdso, 0)?.len();
    let patches = arena.push(&vec![CodePatch::default(); nr_patches]);
    let sigs = arena.push(&p.sig.sigactions);
    let itimers = arena.push(&p.sig.itimers);
    let posix = arena.push(&p.sig.posix);
    let rlimits = arena.push(&rlimits_arg(t));
    let signals = arena.push(&signals_arg(t)?);
    // The other threads' arrays (no addresses in them), and their list,
    // filled in once the base is known.
    let mut thread_arrays = Vec::with_capacity(t.threads.len());
    for (tid, core) in &t.threads {
        let file = format!("core-{tid}.img");
        let tcore = core.thread_core.as_ref();
        let signals = siginfos(tcore.and_then(|c| c.signals_p.as_ref()), 0, &file)?;
        let sigmask = tcore.and_then(|c| c.blk_sigset).unwrap_or(p.sig.sigmask);
        let mut calls = regs::frame_for(core, 0, sigmask, &p.host)?.arch_syscalls;
        calls.extend(robust_list_call(core));
        thread_arrays.push((arena.push(&signals), arena.push(&calls), sigmask));
    }
    let threads = arena.push(&vec![ThreadArg::default(); t.threads.len()]);
    let moves = arena.push(&p.fds.moves);
    let events = arena.push(&p.fd_state.events.iter().map(|e| e.0).collect::<Vec<_>>());
    let flocks = arena.push(
        &p.fd_state
            .flocks
            .iter()
            .map(flock_bytes)
            .collect::<Vec<_>>(),
    );
    let fd_calls = arena.push(&vec![RawSyscall::default(); p.fd_state.count()]);
    let words = arena.push(&p.fd_state.words);
    let keep = arena.push(&p.fds.keep);
    let children = arena.push(&vec![ChildArg::default(); role.nr_children]);
    let auxv = arena.push(&t.mm.mm_saved_auxv);
    // arch syscalls: the count is known without the frame address.
    let probe = regs::frame_for(&t.core, 0, p.sig.sigmask, &p.host)?;
    let robust = robust_list_call(&t.core);
    let arch = arena.push(&[probe.arch_syscalls, robust.clone()].concat());
    let madvise = arena.push(&madvise_calls(t));
    let cgroup_fds = arena.push(&role.cgroup_fds);
    let cgns_fds = arena.push(&role.cgns_fds);
    let seccomp = t.seccomp.iter().map(|s| push_seccomp(arena, s)).collect();
    Ok(Arrays {
        park,
        unmap,
        vmas,
        runs,
        copy_runs,
        copy_vmas,
        copy_list,
        cow,
        unpark,
        patches,
        sigs,
        itimers,
        posix,
        rlimits,
        signals,
        thread_arrays,
        threads,
        moves,
        events,
        flocks,
        fd_calls,
        words,
        keep,
        children,
        auxv,
        arch,
        madvise,
        cgroup_fds,
        cgns_fds,
        robust,
        seccomp,
    })
}

/// What is known once the region's base is: the main thread's frame, the
/// other threads' frames (by offset in the region) and the vDSO's mark.
pub(super) struct Placed {
    pub frame: regs::Frame,
    pub thread_frames: Vec<(u64, Box<criu_arch::RtSigframe>)>,
    pub vdso_mark: VdsoMarkArg,
}

/// Now that the base is known: the frames at their addresses, and the
/// address-dependent arrays rewritten in `arena`.
pub(super) fn place(
    arena: &mut Arena,
    p: &Parts<'_, '_>,
    a: &Arrays,
    lay: &Layout,
    (base, total): (u64, u64),
) -> Result<Placed, RestoreError> {
    let t = p.t;
    let park = p.maps.park_list(base + lay.blob_len as u64);
    // The premap area stays: its slots become the task's VMAs.
    let (area, area_len) = p.role.cow_area;
    let unmap = crate::restore::cow::except(
        &p.maps.unmap_list(base, base + total, p.page_size),
        (area, area + area_len),
    );
    let park_at = base + lay.blob_len as u64;
    let (unpark, patches, vdso_mark) = vdso_moves(
        t,
        p.maps,
        p.vdso,
        park_at,
        (base, base + total),
        p.page_size,
    )?;
    let mut frame = regs::frame_for(&t.core, base + lay.frame_off as u64, p.sig.sigmask, &p.host)?;
    // The task's alternate signal stack comes back with rt_sigreturn.
    // (A disabled one stays disabled: the frame already says so.)
    set_altstack(&mut frame, &t.core);
    let (thread_frames, thread_args) = thread_frames(p, a, lay, base)?;
    let arch_calls = [std::mem::take(&mut frame.arch_syscalls), a.robust.clone()].concat();
    let fd_calls = p.fd_state.calls(
        lay.at(base, a.events).addr,
        lay.at(base, a.flocks).addr,
        lay.at(base, a.words).addr,
    );
    for (arr, bytes) in [
        (a.park, vec_bytes(&park)),
        (a.unmap, vec_bytes(&unmap)),
        (a.unpark, vec_bytes(&unpark)),
        (a.patches, vec_bytes(&patches)),
        (a.arch, vec_bytes(&arch_calls)),
        (a.threads, vec_bytes(&thread_args)),
        (a.fd_calls, vec_bytes(&fd_calls)),
    ] {
        let off = arr.addr as usize;
        arena.buf[off..off + bytes.len()].copy_from_slice(&bytes);
    }
    Ok(Placed {
        frame,
        thread_frames,
        vdso_mark,
    })
}

/// The other threads: frames at their addresses (by offset in the
/// region), and their list.
#[allow(clippy::type_complexity)]
fn thread_frames(
    p: &Parts<'_, '_>,
    a: &Arrays,
    lay: &Layout,
    base: u64,
) -> Result<(Vec<(u64, Box<criu_arch::RtSigframe>)>, Vec<ThreadArg>), RestoreError> {
    let t = p.t;
    let mut thread_frames = Vec::with_capacity(t.threads.len());
    let mut thread_args = Vec::with_capacity(t.threads.len());
    for (i, ((tid, core), &(a_sig, a_calls, sigmask))) in
        t.threads.iter().zip(&a.thread_arrays).enumerate()
    {
        let stack = base + (lay.threads_off + i * lay.thread_len) as u64;
        let frame_addr = stack + THREAD_STACK_SIZE as u64;
        let mut f = regs::frame_for(core, frame_addr, sigmask, &p.host)?;
        set_altstack(&mut f, core);
        thread_frames.push((frame_addr - base, f.frame));
        thread_args.push(ThreadArg {
            tid: *tid as i32,
            stack: AbiRegion {
                start: stack,
                end: frame_addr,
            },
            sigreturn_sp: frame_addr + criu_arch::RT_SIGFRAME_OFFSET as u64,
            signals: lay.at(base, a_sig),
            arch_syscalls: lay.at(base, a_calls),
            rseq: rseq_arg(core),
            comm: comm_arg(core),
            creds: creds_arg(core, &format!("core-{tid}.img"))?,
            attrs: crate::restore::task_attrs::thread_arg(core),
            thread_pointer: f.thread_pointer,
            seccomp: a
                .seccomp
                .get(i + 1)
                .map(|&s| seccomp_arg(lay, base, s))
                .unwrap_or_default(),
            ..ThreadArg::default()
        });
    }
    Ok((thread_frames, thread_args))
}
