//! `crit x DIR ps|fds|mems|rss`: summaries of an images directory, printed
//! as CRIU's crit prints them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use criu_core::images::json::{self, DecodeOptions};
use serde_json::Value;

use crate::io::{Failure, write_output};

/// Runs the explorer `what` on `dir`.
pub fn run(dir: &str, what: &str) -> Result<(), Failure> {
    let mut x = Explorer {
        dir: PathBuf::from(dir),
        files: None,
        legacy: HashMap::new(),
        cache: HashMap::new(),
        out: String::new(),
    };
    match what {
        "ps" => x.ps()?,
        "fds" => x.fds()?,
        "mems" => x.mems()?,
        "rss" => x.rss()?,
        _ => return Err(Failure::msg(format!("unknown explorer {what}"))),
    }
    write_output(None, x.out.as_bytes())
}

struct Explorer {
    dir: PathBuf,
    /// files.img entries (empty when there is none).
    files: Option<Vec<Value>>,
    /// Pre-files.img per-type images (reg-files.img, …) once loaded.
    legacy: HashMap<&'static str, Vec<Value>>,
    cache: HashMap<(String, u64), String>,
    out: String,
}

fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn load(path: &Path) -> Result<Value, Failure> {
    let name = path.display().to_string();
    let data = std::fs::read(path).map_err(|e| Failure::msg(format!("{name}: {e}")))?;
    Ok(json::decode_image(&data, &name, DecodeOptions::default())?.json)
}

fn entries(img: Value) -> Vec<Value> {
    match img {
        Value::Object(mut m) => match m.remove("entries") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

struct Ps {
    entry: Value,
    comm: String,
    kids: Vec<u64>,
}

impl Explorer {
    fn entries(&self, name: &str) -> Result<Vec<Value>, Failure> {
        Ok(entries(load(&self.dir.join(name))?))
    }

    fn first(&self, name: &str) -> Result<Value, Failure> {
        self.entries(name)?
            .into_iter()
            .next()
            .ok_or_else(|| Failure::msg(format!("{}: no entries", self.dir.join(name).display())))
    }

    /// Whether the per-task image `name` exists. Dead tasks (zombies) have
    /// only a core image; crit crashes on them, we say so and go on.
    fn has(&mut self, pid: u64, name: &str) -> bool {
        if self.dir.join(name).exists() {
            return true;
        }
        let _ = writeln!(self.out, "{pid}\n\t(no {name}: a dead task?)");
        false
    }

    fn pids(&self) -> Result<Vec<(u64, Value)>, Failure> {
        Ok(self
            .entries("pstree.img")?
            .into_iter()
            .map(|p| (u(&p, "pid"), p))
            .collect())
    }

    fn ps(&mut self) -> Result<(), Failure> {
        let mut order = Vec::new();
        let mut tasks: HashMap<u64, Ps> = HashMap::new();
        for (pid, p) in self.pids()? {
            let core = self.first(&format!("core-{pid}.img"))?;
            let comm = core
                .pointer("/tc/comm")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            order.push(pid);
            tasks.insert(
                pid,
                Ps {
                    entry: p,
                    comm,
                    kids: Vec::new(),
                },
            );
        }
        let mut root = None;
        for &pid in &order {
            let ppid = u(&tasks[&pid].entry, "ppid");
            if ppid == 0 {
                root = Some(pid);
                continue;
            }
            match tasks.get_mut(&ppid) {
                Some(parent) => parent.kids.push(pid),
                None => {
                    return Err(Failure::msg(format!(
                        "task {pid}: parent {ppid} is not in pstree.img"
                    )));
                }
            }
        }
        let _ = writeln!(self.out, "{:>7}{:>7}{:>7}   COMM", "PID", "PGID", "SID");
        if let Some(root) = root {
            self.show_ps(&tasks, root, 0);
        }
        Ok(())
    }

    fn show_ps(&mut self, tasks: &HashMap<u64, Ps>, pid: u64, depth: usize) {
        let t = &tasks[&pid];
        let _ = writeln!(
            self.out,
            "{:>7}{:>7}{:>7}   {}{}",
            pid,
            u(&t.entry, "pgid"),
            u(&t.entry, "sid"),
            " ".repeat(4 * depth),
            t.comm
        );
        for &kid in &t.kids {
            self.show_ps(tasks, kid, depth + 1);
        }
    }

    /// The entry with `id` in files.img's `field`, or in the legacy image.
    fn find_file(
        &mut self,
        field: &str,
        legacy: &'static str,
        id: u64,
    ) -> Result<Option<Value>, Failure> {
        if self.files.is_none() {
            let path = self.dir.join("files.img");
            self.files = Some(if path.exists() {
                entries(load(&path)?)
            } else {
                Vec::new()
            });
        }
        let files = self.files.as_deref().unwrap_or_default();
        if let Some(f) = files.iter().find(|f| u(f, "id") == id) {
            return Ok(f.get(field).cloned());
        }
        if !self.legacy.contains_key(legacy) {
            let path = self.dir.join(legacy);
            let list = if path.exists() {
                entries(load(&path)?)
            } else {
                Vec::new()
            };
            self.legacy.insert(legacy, list);
        }
        Ok(self.legacy[legacy]
            .iter()
            .find(|f| u(f, "id") == id)
            .cloned())
    }

    fn file_str(&mut self, ftype: &str, id: u64) -> Result<String, Failure> {
        let key = (ftype.to_string(), id);
        if let Some(s) = self.cache.get(&key) {
            return Ok(s.clone());
        }
        let s = match ftype {
            "REG" => self
                .find_file("reg", "reg-files.img", id)?
                .and_then(|f| f.get("name").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "unknown path".into()),
            "PIPE" => match self.find_file("pipe", "pipes.img", id)? {
                Some(p) => format!("pipe[{}]", u(&p, "pipe_id")),
                None => "pipe[?]".into(),
            },
            "UNIXSK" => match self.find_file("usk", "unixsk.img", id)? {
                Some(ux) => {
                    let name = ux.get("name").and_then(Value::as_str).unwrap_or("");
                    let name = if name.is_empty() {
                        String::new()
                    } else {
                        format!(" {name}")
                    };
                    format!("unix[{} ({}){name}]", u(&ux, "ino"), u(&ux, "peer"))
                }
                None => "unix[?]".into(),
            },
            other => format!("{other}.{id}"),
        };
        self.cache.insert(key, s.clone());
        Ok(s)
    }

    fn fds(&mut self) -> Result<(), Failure> {
        for (pid, _) in self.pids()? {
            if !self.has(pid, &format!("ids-{pid}.img")) {
                continue;
            }
            let ids = self.first(&format!("ids-{pid}.img"))?;
            let fdinfo = self.entries(&format!("fdinfo-{}.img", u(&ids, "files_id")))?;
            let _ = writeln!(self.out, "{pid}");
            for fd in fdinfo {
                let ftype = fd
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let s = self.file_str(&ftype, u(&fd, "id"))?;
                let _ = writeln!(self.out, "\t{:>7}: {s}", u(&fd, "fd"));
            }
            let fs = self.first(&format!("fs-{pid}.img"))?;
            for (label, key) in [("cwd", "cwd_id"), ("root", "root_id")] {
                let s = self.file_str("REG", u(&fs, key))?;
                let _ = writeln!(self.out, "\t{label:>7}: {s}");
            }
        }
        Ok(())
    }

    fn mems(&mut self) -> Result<(), Failure> {
        let mut vids: HashMap<u64, u64> = HashMap::new();
        let mut vid = |id: u64| {
            let next = vids.len() as u64 + 1;
            *vids.entry(id).or_insert(next)
        };
        for (pid, _) in self.pids()? {
            if !self.has(pid, &format!("mm-{pid}.img")) {
                continue;
            }
            let mm = self.first(&format!("mm-{pid}.img"))?;
            let _ = writeln!(self.out, "{pid}");
            let exe = self.file_str("REG", u(&mm, "exe_file_id"))?;
            let _ = writeln!(self.out, "\t{:<36}    {exe}", "exe");
            for vma in mm
                .get("vmas")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let st = u(&vma, "status");
                let mut f = if st & (1 << 10) != 0 {
                    format!(" ips[{:x}]", vid(u(&vma, "shmid")))
                } else if st & (1 << 8) != 0 {
                    format!(" shmem[{:x}]", vid(u(&vma, "shmid")))
                } else if st & (1 << 11) != 0 {
                    format!(" packet[{:x}]", vid(u(&vma, "shmid")))
                } else if st & ((1 << 6) | (1 << 7)) != 0 {
                    let mut s = format!(" {}", self.file_str("REG", u(&vma, "shmid"))?);
                    if u(&vma, "pgoff") != 0 {
                        let _ = write!(s, " + {:#x}", u(&vma, "pgoff"));
                    }
                    if st & (1 << 7) != 0 {
                        s.push_str(" (s)");
                    }
                    s
                } else if st & (1 << 1) != 0 {
                    " [stack]".into()
                } else if st & (1 << 2) != 0 {
                    " [vsyscall]".into()
                } else if st & (1 << 3) != 0 {
                    " [vdso]".into()
                } else if u(&vma, "flags") & 0x100 != 0 {
                    " [stack?]".into()
                } else {
                    String::new()
                };
                if st & 1 == 0 {
                    f.push_str(" *");
                }
                let prot = u(&vma, "prot");
                let p: String = [(1, 'r'), (2, 'w'), (4, 'x')]
                    .iter()
                    .map(|&(bit, c)| if prot & bit != 0 { c } else { '-' })
                    .collect();
                let range = format!("{:08x}-{:08x}", u(&vma, "start"), u(&vma, "end"));
                let _ = writeln!(self.out, "\t{range:<36}{p}{f}");
            }
        }
        Ok(())
    }

    fn rss(&mut self) -> Result<(), Failure> {
        for (pid, _) in self.pids()? {
            if !self.has(pid, &format!("mm-{pid}.img")) {
                continue;
            }
            let mm = self.first(&format!("mm-{pid}.img"))?;
            let vmas = mm
                .get("vmas")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let pms = self.entries(&format!("pagemap-{pid}.img"))?;
            let _ = writeln!(self.out, "{pid}");
            let mut vmi = 0usize;
            let mut pvmi: Option<usize> = None;
            for pm in pms.iter().skip(1) {
                // CRIU before 4.2 counts in field 2 (`compat_nr_pages`).
                let nr = match pm.get("nr_pages") {
                    Some(n) => n.as_u64().unwrap_or(0),
                    None => u(pm, "compat_nr_pages"),
                };
                let vaddr = u(pm, "vaddr");
                let pstr = format!("\t{vaddr:x} / {nr:<8}");
                while vmi < vmas.len() && u(&vmas[vmi], "end") <= vaddr {
                    vmi += 1;
                }
                let pme = vaddr.saturating_add(nr << 12);
                let mut vstr = String::new();
                while vmi < vmas.len() && u(&vmas[vmi], "start") < pme {
                    let vma = &vmas[vmi];
                    if pvmi == Some(vmi) {
                        vstr.push_str(" ~");
                    } else {
                        let (start, end) = (u(vma, "start"), u(vma, "end"));
                        let _ = write!(
                            vstr,
                            " {start:08x} / {:<8}",
                            end.saturating_sub(start) >> 12
                        );
                        if u(vma, "status") & ((1 << 6) | (1 << 7)) != 0 {
                            let _ = write!(vstr, " {}", self.file_str("REG", u(vma, "shmid"))?);
                        }
                        pvmi = Some(vmi);
                    }
                    let _ = write!(vstr, "\n\t{:23}", "");
                    vmi += 1;
                }
                vmi = vmi.saturating_sub(1);
                let _ = writeln!(self.out, "{pstr:<24}{vstr}");
            }
        }
        Ok(())
    }
}
