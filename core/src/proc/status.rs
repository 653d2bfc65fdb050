//! `/proc/PID/status`: `Key:\tvalue` lines (`proc_pid_status`). Unknown keys
//! are ignored; the keys every supported kernel prints are required.

use super::ProcDir;
use super::error::{ParseError, ProcError, TextError};
use super::text::{dec_i32, dec_u32, dec_u64, fields, hex_u64, key_value};

/// Longest list kept for `Groups` and the `NS*` lines (NGROUPS_MAX is 65536;
/// PID namespaces nest at most 32 deep).
const LIST_MAX: usize = 65536;

/// The fields of `status` dump uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The name, unescaped (`\n` and `\\` are escaped by the kernel).
    pub name: Vec<u8>,
    pub umask: Option<u32>,
    /// The state letter.
    pub state: u8,
    pub tgid: i32,
    pub pid: i32,
    pub ppid: i32,
    pub tracer_pid: i32,
    /// Real, effective, saved, filesystem.
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    pub groups: Vec<u32>,
    /// The PID in each nested PID namespace, outermost first.
    pub ns_tgid: Vec<i32>,
    pub ns_pid: Vec<i32>,
    pub ns_pgid: Vec<i32>,
    pub ns_sid: Vec<i32>,
    pub threads: u32,
    /// `SigQ`: queued signals and the limit.
    pub sigq: (u64, u64),
    pub sig_pnd: u64,
    pub shd_pnd: u64,
    pub sig_blk: u64,
    pub sig_ign: u64,
    pub sig_cgt: u64,
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: Option<u64>,
    pub no_new_privs: Option<bool>,
    /// Seccomp mode (0 none, 1 strict, 2 filter), when the kernel has it.
    pub seccomp: Option<u32>,
    pub seccomp_filters: Option<u32>,
}

impl Status {
    /// A capability set as the two 32-bit words CRIU's creds image stores
    /// (low word first).
    pub fn cap_words(caps: u64) -> [u32; 2] {
        [caps as u32, (caps >> 32) as u32]
    }
}

/// Parse the text of `status`.
pub fn parse(text: &[u8]) -> Result<Status, TextError> {
    let mut st = Status::default();
    let mut seen = 0u32;
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let Some((key, value)) = key_value(line) else {
            continue;
        };
        let at = |e| TextError::new(i + 1, e);
        if let Some(bit) = parse_field(&mut st, key, value).map_err(at)? {
            seen |= bit;
        }
    }
    for (bit, name) in REQUIRED {
        if seen & bit == 0 {
            return Err(TextError::new(0, ParseError::Missing(name)));
        }
    }
    Ok(st)
}

const REQUIRED: [(u32, &str); 8] = [
    (1 << 0, "Name"),
    (1 << 1, "State"),
    (1 << 2, "Tgid"),
    (1 << 3, "Pid"),
    (1 << 4, "PPid"),
    (1 << 5, "Uid"),
    (1 << 6, "Gid"),
    (1 << 7, "SigBlk"),
];

/// Store one field; returns the `REQUIRED` bit it satisfies, if any.
fn parse_field(st: &mut Status, key: &[u8], v: &[u8]) -> Result<Option<u32>, ParseError> {
    let first = || fields(v).next().unwrap_or(b"");
    match key {
        b"Name" => {
            st.name = unescape_name(v);
            return Ok(Some(1 << 0));
        }
        b"Umask" => st.umask = Some(super::text::oct_u32("Umask", v)?),
        b"State" => {
            st.state = *first().first().ok_or(ParseError::Missing("State"))?;
            return Ok(Some(1 << 1));
        }
        b"Tgid" => {
            st.tgid = dec_i32("Tgid", v)?;
            return Ok(Some(1 << 2));
        }
        b"Pid" => {
            st.pid = dec_i32("Pid", v)?;
            return Ok(Some(1 << 3));
        }
        b"PPid" => {
            st.ppid = dec_i32("PPid", v)?;
            return Ok(Some(1 << 4));
        }
        b"TracerPid" => st.tracer_pid = dec_i32("TracerPid", v)?,
        b"Uid" => {
            st.uid = four_ids("Uid", v)?;
            return Ok(Some(1 << 5));
        }
        b"Gid" => {
            st.gid = four_ids("Gid", v)?;
            return Ok(Some(1 << 6));
        }
        b"Groups" => st.groups = list(v, |t| dec_u32("Groups", t))?,
        b"NStgid" => st.ns_tgid = list(v, |t| dec_i32("NStgid", t))?,
        b"NSpid" => st.ns_pid = list(v, |t| dec_i32("NSpid", t))?,
        b"NSpgid" => st.ns_pgid = list(v, |t| dec_i32("NSpgid", t))?,
        b"NSsid" => st.ns_sid = list(v, |t| dec_i32("NSsid", t))?,
        b"Threads" => st.threads = dec_u32("Threads", v)?,
        b"SigQ" => {
            let (a, b) = v
                .iter()
                .position(|&c| c == b'/')
                .map(|i| (&v[..i], &v[i + 1..]))
                .ok_or_else(|| ParseError::bad("SigQ", v))?;
            st.sigq = (dec_u64("SigQ", a)?, dec_u64("SigQ", b)?);
        }
        b"SigPnd" => st.sig_pnd = hex_u64("SigPnd", v)?,
        b"ShdPnd" => st.shd_pnd = hex_u64("ShdPnd", v)?,
        b"SigBlk" => {
            st.sig_blk = hex_u64("SigBlk", v)?;
            return Ok(Some(1 << 7));
        }
        b"SigIgn" => st.sig_ign = hex_u64("SigIgn", v)?,
        b"SigCgt" => st.sig_cgt = hex_u64("SigCgt", v)?,
        b"CapInh" => st.cap_inh = hex_u64("CapInh", v)?,
        b"CapPrm" => st.cap_prm = hex_u64("CapPrm", v)?,
        b"CapEff" => st.cap_eff = hex_u64("CapEff", v)?,
        b"CapBnd" => st.cap_bnd = hex_u64("CapBnd", v)?,
        b"CapAmb" => st.cap_amb = Some(hex_u64("CapAmb", v)?),
        b"NoNewPrivs" => st.no_new_privs = Some(dec_u32("NoNewPrivs", v)? != 0),
        b"Seccomp" => st.seccomp = Some(dec_u32("Seccomp", v)?),
        b"Seccomp_filters" => st.seccomp_filters = Some(dec_u32("Seccomp_filters", v)?),
        _ => {}
    }
    Ok(None)
}

fn four_ids(what: &'static str, v: &[u8]) -> Result<[u32; 4], ParseError> {
    let mut out = [0u32; 4];
    let mut it = fields(v);
    for slot in &mut out {
        *slot = dec_u32(what, it.next().ok_or(ParseError::Missing(what))?)?;
    }
    if it.next().is_some() {
        return Err(ParseError::bad(what, v));
    }
    Ok(out)
}

fn list<T>(v: &[u8], f: impl Fn(&[u8]) -> Result<T, ParseError>) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::new();
    for t in fields(v) {
        if out.len() >= LIST_MAX {
            return Err(ParseError::TooMany(LIST_MAX));
        }
        out.push(f(t)?);
    }
    Ok(out)
}

/// Undo `seq_escape_str(…, ESCAPE_SPACE | ESCAPE_SPECIAL, "\n\\")`: C-style
/// `\n`, `\t`, `\\`, … and `\ooo` octal. Other text is kept as is.
fn unescape_name(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 1 < v.len() {
            let simple = match v[i + 1] {
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'f' => Some(0x0c),
                b'v' => Some(0x0b),
                b'a' => Some(0x07),
                b'e' => Some(0x1b),
                b'\\' => Some(b'\\'),
                b'"' => Some(b'"'),
                _ => None,
            };
            if let Some(c) = simple {
                out.push(c);
                i += 2;
                continue;
            }
            let oct = super::text::unescape_octal(&v[i..(i + 4).min(v.len())]);
            if oct.len() == 1 {
                out.push(oct[0]);
                i += 4;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

impl ProcDir {
    /// Read and parse `status`.
    pub fn status(&self) -> Result<Status, ProcError> {
        let text = self.read_small("status")?;
        parse(&text).map_err(|e| e.in_file(self.path_of("status")))
    }
}

#[cfg(test)]
mod tests;
