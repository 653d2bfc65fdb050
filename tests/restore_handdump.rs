//! Restore of a real program without `criu dump`: the test freezes the
//! program with ptrace and writes its images itself (a minimal dumper that
//! reads /proc and the registers; pages present in pagemap only, so holes
//! stay holes), kills it, and `criu restore -d` must bring it back with the
//! same PID, running on with its memory. The program checks itself.
#![cfg(target_arch = "x86_64")]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use criu_core::images::kinds::Kind;
use criu_core::images::pb;
use criu_core::images::typed::ImageDir;
use criu_core::proc::vma_kind::status::*;
use criu_core::sys::ptrace;
use rustix::process::Pid;

const PAGE: u64 = 4096;
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAP: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;

struct Dumper<'a> {
    dir: &'a ImageDir,
    pid: i32,
    files: HashMap<String, u32>,
}

impl Dumper<'_> {
    fn file_id(&mut self, path: &str) -> u32 {
        let n = self.files.len() as u32 + 1;
        *self.files.entry(path.to_string()).or_insert(n)
    }

    /// Pages of [start, end) to save: present or swapped, and anonymous for
    /// file mappings (COW copies).
    fn pages(&self, start: u64, end: u64, file: bool) -> Vec<u64> {
        let pm = std::fs::File::open(format!("/proc/{}/pagemap", self.pid)).unwrap();
        let n = ((end - start) / PAGE) as usize;
        let mut buf = vec![0u8; n * 8];
        pm.read_exact_at(&mut buf, start / PAGE * 8).unwrap();
        (0..n)
            .filter_map(|i| {
                let e = u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap());
                let want = e & (PM_PRESENT | PM_SWAP) != 0 && !(file && e & PM_FILE != 0);
                want.then_some(start + i as u64 * PAGE)
            })
            .collect()
    }

    fn dump(&mut self, regs: criu_arch::GpRegs, fp: &[u8], xstate: &[u8], sigmask: u64) {
        let pid = self.pid;
        let stat =
            criu_core::proc::stat::parse(&std::fs::read(format!("/proc/{pid}/stat")).unwrap())
                .unwrap();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
        let mut vmas = Vec::new();
        let mut pagemap = Vec::new();
        let mut pages = Vec::new();
        let mut brk = stat.start_brk;
        for line in maps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (s, e) = f[0].split_once('-').unwrap();
            let (start, end) = (
                u64::from_str_radix(s, 16).unwrap(),
                u64::from_str_radix(e, 16).unwrap(),
            );
            let perms = f[1].as_bytes();
            let prot = u32::from(perms[0] == b'r')
                | u32::from(perms[1] == b'w') << 1
                | u32::from(perms[2] == b'x') << 2;
            let shared = perms[3] == b's';
            let pgoff = u64::from_str_radix(f[2], 16).unwrap();
            let name = f.get(5).copied().unwrap_or("");
            let mut v = pb::VmaEntry {
                start,
                end,
                pgoff,
                prot,
                fd: -1,
                ..Default::default()
            };
            let mut file = false;
            match name {
                "[vsyscall]" => continue,
                "[vdso]" => v.status = VMA_AREA_REGULAR | VMA_AREA_VDSO,
                "[vvar]" | "[vvar_vclock]" => v.status = VMA_AREA_REGULAR | VMA_AREA_VVAR,
                n if n.starts_with('/') => {
                    assert!(!shared, "shared file mappings are not in this test");
                    file = true;
                    v.status = VMA_AREA_REGULAR | VMA_FILE_PRIVATE;
                    v.flags = 0x02;
                    v.shmid = u64::from(self.file_id(n));
                }
                n => {
                    assert!(!shared, "shared anonymous memory is not in this test");
                    v.status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
                    v.flags = 0x22;
                    if n == "[stack]" {
                        v.status |= VMA_AREA_STACK;
                    }
                    if n == "[heap]" {
                        v.status |= VMA_AREA_HEAP;
                        brk = end;
                    }
                }
            }
            if v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR) == 0 && prot & 1 != 0 {
                for addr in self.pages(start, end, file) {
                    let mut page = vec![0u8; PAGE as usize];
                    mem.read_exact_at(&mut page, addr).unwrap();
                    pages.extend_from_slice(&page);
                    match pagemap.last_mut() {
                        Some(pb::PagemapEntry {
                            vaddr,
                            nr_pages: Some(n),
                            ..
                        }) if *vaddr + *n * PAGE == addr => *n += 1,
                        _ => pagemap.push(pb::PagemapEntry {
                            vaddr: addr,
                            nr_pages: Some(1),
                            compat_nr_pages: 0,
                            ..Default::default()
                        }),
                    }
                }
            }
            vmas.push(v);
        }
        for e in &mut pagemap {
            e.compat_nr_pages = e.nr_pages.unwrap() as u32;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        let exe_id = self.file_id(exe.to_str().unwrap());
        let auxv_bytes = std::fs::read(format!("/proc/{pid}/auxv")).unwrap();
        let auxv = auxv_bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mm = pb::MmEntry {
            mm_start_code: stat.start_code,
            mm_end_code: stat.end_code,
            mm_start_data: stat.start_data,
            mm_end_data: stat.end_data,
            mm_start_stack: stat.start_stack,
            mm_start_brk: stat.start_brk,
            mm_brk: brk,
            mm_arg_start: stat.arg_start,
            mm_arg_end: stat.arg_end,
            mm_env_start: stat.env_start,
            mm_env_end: stat.env_end,
            exe_file_id: exe_id,
            mm_saved_auxv: auxv,
            vmas,
            ..Default::default()
        };
        let d = self.dir;
        let id = pid as u64;
        d.write_one(
            Kind::Inventory,
            0,
            &pb::InventoryEntry {
                img_version: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let tree = pb::PstreeEntry {
            pid: pid as u32,
            ppid: stat.ppid as u32,
            pgid: stat.pgrp as u32,
            sid: stat.session as u32,
            threads: vec![pid as u32],
        };
        d.write_all(Kind::Pstree, 0, &[tree]).unwrap();
        d.write_one(Kind::Mm, id, &mm).unwrap();
        let mut w = d.writer(Kind::Pagemap, id).unwrap();
        w.write_message(&pb::PagemapHead { pages_id: 1 }).unwrap();
        for e in &pagemap {
            w.write_message(e).unwrap();
        }
        w.finish().unwrap();
        std::fs::write(d.path(Kind::Pages, 1), &pages).unwrap();
        // Open fds of regular files (and the cwd, root) with their offsets.
        let mut fdinfo = Vec::new();
        let mut file_meta: HashMap<u32, (u32, u64)> = HashMap::new();
        for ent in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
            let ent = ent.unwrap();
            let fd: u32 = ent.file_name().to_str().unwrap().parse().unwrap();
            let target = std::fs::read_link(ent.path()).unwrap();
            let target = target.to_str().unwrap();
            if !target.starts_with('/') {
                continue;
            }
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
                    .unwrap()
            };
            let pos: u64 = field("pos:").parse().unwrap();
            let flags = u32::from_str_radix(&field("flags:"), 8).unwrap();
            // A separate file id per fd: each is its own open file here.
            let id = self.files.len() as u32 + 1000;
            self.files.insert(format!("{target}\0{fd}"), id);
            file_meta.insert(id, (flags & !0o2000000, pos));
            fdinfo.push(pb::FdinfoEntry {
                id,
                flags: u32::from(flags & 0o2000000 != 0),
                r#type: 1,
                fd,
                ..Default::default()
            });
        }
        d.write_all(Kind::Fdinfo, id, &fdinfo).unwrap();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        let cwd_id = self.file_id(cwd.to_str().unwrap());
        let root_id = self.file_id("/");
        d.write_one(
            Kind::Fs,
            id,
            &pb::FsEntry {
                cwd_id,
                root_id,
                umask: Some(status_umask(pid)),
            },
        )
        .unwrap();
        let files: Vec<pb::FileEntry> = self
            .files
            .iter()
            .map(|(key, &id)| {
                // Keys of fds carry "\0FD" to keep one entry per fd.
                let name = key.split('\0').next().unwrap_or_default().to_string();
                let (flags, pos) = file_meta.get(&id).copied().unwrap_or((0, 0));
                pb::FileEntry {
                    r#type: 1, // REG
                    id,
                    reg: Some(pb::RegFileEntry {
                        id,
                        flags,
                        pos,
                        name,
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect();
        d.write_all(Kind::Files, 0, &files).unwrap();

        let w32 = |off: usize, n: usize| -> Vec<u32> {
            fp[off..off + 4 * n]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let u16at = |o: usize| u32::from(u16::from_le_bytes([fp[o], fp[o + 1]]));
        let u64at = |o: usize| u64::from_le_bytes(fp[o..o + 8].try_into().unwrap());
        let fpregs = pb::UserX86FpregsEntry {
            cwd: u16at(0),
            swd: u16at(2),
            twd: u16at(4),
            fop: u16at(6),
            rip: u64at(8),
            rdp: u64at(16),
            mxcsr: w32(24, 1)[0],
            mxcsr_mask: w32(28, 1)[0],
            st_space: w32(32, 32),
            xmm_space: w32(160, 64),
            padding: w32(416, 24),
            xsave: xsave_entry(xstate),
        };
        let r = regs;
        let gpregs = pb::UserX86RegsEntry {
            r15: r.r15,
            r14: r.r14,
            r13: r.r13,
            r12: r.r12,
            bp: r.bp,
            bx: r.bx,
            r11: r.r11,
            r10: r.r10,
            r9: r.r9,
            r8: r.r8,
            ax: r.ax,
            cx: r.cx,
            dx: r.dx,
            si: r.si,
            di: r.di,
            orig_ax: r.orig_ax,
            ip: r.ip,
            cs: r.cs,
            flags: r.flags,
            sp: r.sp,
            ss: r.ss,
            fs_base: r.fs_base,
            gs_base: r.gs_base,
            ds: r.ds,
            es: r.es,
            fs: r.fs,
            gs: r.gs,
            mode: None,
        };
        let core = pb::CoreEntry {
            mtype: 1,
            thread_info: Some(pb::ThreadInfoX86 {
                gpregs,
                fpregs,
                ..Default::default()
            }),
            tc: Some(pb::TaskCoreEntry {
                task_state: 1,
                blk_sigset: sigmask,
                comm: "restore_pattern".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.write_one(Kind::Core, id, &core).unwrap();
    }
}

/// The task's umask, from `/proc/PID/status`.
fn status_umask(pid: i32) -> u32 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let v = st.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap();
    u32::from_str_radix(v.trim(), 8).unwrap()
}

/// CRIU's xsave entry from an NT_X86_XSTATE buffer (AVX part only).
fn xsave_entry(x: &[u8]) -> Option<pb::UserX86XsaveEntry> {
    if x.len() < 832 {
        return None;
    }
    let xstate_bv = u64::from_le_bytes(x[512..520].try_into().unwrap());
    let ymmh_space = x[576..832]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Some(pb::UserX86XsaveEntry {
        xstate_bv,
        ymmh_space,
        ..Default::default()
    })
}

#[test]
fn hand_dumped_program_runs_on_after_restore() {
    if !rustix::process::geteuid().is_root() {
        return common::skip("hand_dumped_program", "needs root (ptrace, clone3 set_tid)");
    }
    common::become_subreaper();
    let tmp = common::TempDir::new("restore-hand");
    let imgs = tmp.join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let dir_arg = tmp.path().to_str().unwrap().to_string();
    let mut prog = common::Program::spawn("restore_pattern", &[&dir_arg], tmp.path());
    common::wait_for_file(&tmp.join("ready"), Duration::from_secs(10)).expect("ready");
    std::thread::sleep(Duration::from_millis(50));
    let pid = Pid::from_raw(prog.pid()).unwrap();

    ptrace::seize(pid, 0).unwrap();
    ptrace::interrupt(pid).unwrap();
    ptrace::wait(pid).unwrap();
    let mut regs = ptrace::get_gp_regs(pid).unwrap();
    regs.restart_syscall_fixup();
    let mut fp = vec![0u8; 512];
    ptrace::get_regset(pid, criu_arch::NT_PRFPREG, &mut fp).unwrap();
    let sigmask = ptrace::get_sigmask(pid).unwrap_or(0);
    let mut xstate = vec![0u8; 4096];
    let n = ptrace::get_regset(pid, criu_arch::NT_X86_XSTATE, &mut xstate).unwrap_or(0);
    xstate.truncate(n);
    let dir = ImageDir::new(&imgs);
    Dumper {
        dir: &dir,
        pid: prog.pid(),
        files: HashMap::new(),
    }
    .dump(regs, &fp, &xstate, sigmask);
    prog.signal(rustix::process::Signal::KILL);
    prog.wait_exit(Duration::from_secs(10)).expect("killed");
    assert!(!Path::new(&format!("/proc/{}", prog.pid())).exists());

    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args([
            "restore",
            "-d",
            "-v4",
            "-o",
            "restore.log",
            "--pidfile",
            "restored.pid",
            "-D",
        ])
        .arg(&imgs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let log = std::fs::read_to_string(imgs.join("restore.log")).unwrap_or_default();
    assert!(out.success(), "criu restore failed ({out:?}): {log}");
    let restored: i32 = std::fs::read_to_string(imgs.join("restored.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(restored, prog.pid());
    // The restorer's region (shared, rwx) is gone from the task.
    let maps = std::fs::read_to_string(format!("/proc/{restored}/maps")).unwrap();
    assert!(!maps.contains("rwxs"), "{maps}");
    std::fs::write(tmp.join("go"), "").unwrap();
    let verdict = common::wait_for_file(&tmp.join("result"), Duration::from_secs(10));
    let rpid = Pid::from_raw(restored).unwrap();
    let _ = rustix::process::kill_process(rpid, rustix::process::Signal::KILL);
    let _ = rustix::process::waitpid(Some(rpid), rustix::process::WaitOptions::empty());
    assert_eq!(verdict.as_deref(), Some("PASS"), "log: {log}");
}
