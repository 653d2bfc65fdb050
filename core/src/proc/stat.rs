//! `/proc/PID/stat`: one line, `pid (comm) state field…` (`do_task_stat`).
//!
//! `comm` may hold spaces, parentheses and even newlines, so it is taken
//! between the first `(` and the **last** `)`. Field numbers below are the
//! 1-based ones of proc(5).

use super::ProcDir;
use super::error::{ParseError, ProcError, TextError};
use super::text::{dec_i32, dec_i64, dec_u32, dec_u64, fields};

/// The fields of `stat` (all of them through 52, `exit_code`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// 1.
    pub pid: i32,
    /// 2: the task name, raw bytes (at most 64 are kept).
    pub comm: Vec<u8>,
    /// 3: `R`, `S`, `D`, `T`, `t`, `Z`, `X`, `I`, `P`…
    pub state: u8,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub tty_nr: i32,
    pub tpgid: i32,
    /// 9: `PF_*` flags.
    pub flags: u32,
    pub minflt: u64,
    pub cminflt: u64,
    pub majflt: u64,
    pub cmajflt: u64,
    pub utime: u64,
    pub stime: u64,
    pub cutime: i64,
    pub cstime: i64,
    pub priority: i64,
    pub nice: i64,
    pub num_threads: i64,
    pub itrealvalue: i64,
    /// 22: start time in clock ticks after boot.
    pub start_time: u64,
    pub vsize: u64,
    /// 24: resident pages.
    pub rss: i64,
    pub rsslim: u64,
    /// 26–28 and 45–51 (the mm boundaries) read as 0 without ptrace access.
    pub start_code: u64,
    pub end_code: u64,
    pub start_stack: u64,
    pub kstkesp: u64,
    pub kstkeip: u64,
    pub signal: u64,
    pub blocked: u64,
    pub sigignore: u64,
    pub sigcatch: u64,
    pub wchan: u64,
    pub nswap: u64,
    pub cnswap: u64,
    /// 38.
    pub exit_signal: i32,
    pub processor: i32,
    pub rt_priority: u32,
    pub policy: u32,
    pub delayacct_blkio_ticks: u64,
    pub guest_time: u64,
    pub cguest_time: i64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    /// 52 (Linux 3.5+); `None` on kernels that stop at 51.
    pub exit_code: Option<i32>,
}

/// Longest `comm` kept (the kernel's is 16 bytes, 64 for kthreads).
const COMM_MAX: usize = 64;

/// Parse the text of `stat`.
pub fn parse(text: &[u8]) -> Result<Stat, TextError> {
    parse_inner(text).map_err(|e| TextError::new(1, e))
}

fn parse_inner(text: &[u8]) -> Result<Stat, ParseError> {
    let open = text
        .iter()
        .position(|&b| b == b'(')
        .ok_or(ParseError::Missing("'(' before comm"))?;
    let close = text
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&c| c > open)
        .ok_or(ParseError::Missing("')' after comm"))?;
    let pid = dec_i32("pid", text[..open].trim_ascii())?;
    let comm = &text[open + 1..close];
    // Fields 3.. (index 0 here is field 3).
    let mut f: [&[u8]; 50] = [&[]; 50];
    let mut n = 0;
    for tok in fields(&text[close + 1..]).take(f.len()) {
        f[n] = tok;
        n += 1;
    }
    // Field 51 (env_end) is the last one CRIU requires.
    if n < 49 {
        return Err(ParseError::Missing("fields after comm (need 51)"));
    }
    let u = |i: usize, what| dec_u64(what, f[i - 3]);
    let s = |i: usize, what| dec_i64(what, f[i - 3]);
    let d = |i: usize, what| dec_i32(what, f[i - 3]);
    let state = match f[0] {
        [c] => *c,
        other => return Err(ParseError::bad("state", other)),
    };
    Ok(Stat {
        pid,
        comm: comm[..comm.len().min(COMM_MAX)].to_vec(),
        state,
        ppid: d(4, "ppid")?,
        pgrp: d(5, "pgrp")?,
        session: d(6, "session")?,
        tty_nr: d(7, "tty_nr")?,
        tpgid: d(8, "tpgid")?,
        flags: dec_u32("flags", f[9 - 3])?,
        minflt: u(10, "minflt")?,
        cminflt: u(11, "cminflt")?,
        majflt: u(12, "majflt")?,
        cmajflt: u(13, "cmajflt")?,
        utime: u(14, "utime")?,
        stime: u(15, "stime")?,
        cutime: s(16, "cutime")?,
        cstime: s(17, "cstime")?,
        priority: s(18, "priority")?,
        nice: s(19, "nice")?,
        num_threads: s(20, "num_threads")?,
        itrealvalue: s(21, "itrealvalue")?,
        start_time: u(22, "starttime")?,
        vsize: u(23, "vsize")?,
        rss: s(24, "rss")?,
        rsslim: u(25, "rsslim")?,
        start_code: u(26, "startcode")?,
        end_code: u(27, "endcode")?,
        start_stack: u(28, "startstack")?,
        kstkesp: u(29, "kstkesp")?,
        kstkeip: u(30, "kstkeip")?,
        signal: u(31, "signal")?,
        blocked: u(32, "blocked")?,
        sigignore: u(33, "sigignore")?,
        sigcatch: u(34, "sigcatch")?,
        wchan: u(35, "wchan")?,
        nswap: u(36, "nswap")?,
        cnswap: u(37, "cnswap")?,
        exit_signal: d(38, "exit_signal")?,
        processor: d(39, "processor")?,
        rt_priority: dec_u32("rt_priority", f[40 - 3])?,
        policy: dec_u32("policy", f[41 - 3])?,
        delayacct_blkio_ticks: u(42, "delayacct_blkio_ticks")?,
        guest_time: u(43, "guest_time")?,
        cguest_time: s(44, "cguest_time")?,
        start_data: u(45, "start_data")?,
        end_data: u(46, "end_data")?,
        start_brk: u(47, "start_brk")?,
        arg_start: u(48, "arg_start")?,
        arg_end: u(49, "arg_end")?,
        env_start: u(50, "env_start")?,
        env_end: u(51, "env_end")?,
        exit_code: if n > 49 {
            Some(d(52, "exit_code")?)
        } else {
            None
        },
    })
}

impl ProcDir {
    /// Read and parse `stat`.
    pub fn stat(&self) -> Result<Stat, ProcError> {
        let text = self.read_small("stat")?;
        parse(&text).map_err(|e| e.in_file(self.path_of("stat")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAT: &[u8] = b"20925 (cat) R 20914 20914 16743 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 160855 3133440 413 18446744073709551615 94551694577664 94551694597545 140736497777504 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94551694613552 94551694615168 94552000004096 140736497781474 140736497781494 140736497781494 140736497782763 0\n";

    #[test]
    fn sample() {
        let s = parse(CAT).unwrap();
        assert_eq!((s.pid, &s.comm[..], s.state), (20925, &b"cat"[..], b'R'));
        assert_eq!(
            (s.ppid, s.pgrp, s.session, s.tty_nr, s.tpgid),
            (20914, 20914, 16743, 0, -1)
        );
        assert_eq!(s.flags, 4194304);
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.start_time, 160855);
        assert_eq!(s.vsize, 3133440);
        assert_eq!(s.rss, 413);
        assert_eq!(s.rsslim, u64::MAX);
        assert_eq!(s.start_code, 94551694577664);
        assert_eq!(s.exit_signal, 17);
        assert_eq!(s.start_data, 94551694613552);
        assert_eq!(s.env_end, 140736497782763);
        assert_eq!(s.exit_code, Some(0));
    }

    #[test]
    fn odd_comm() {
        let mut t = b"7 (a) b) (c\nd) S".to_vec();
        t.extend_from_slice(&CAT[CAT.iter().position(|&b| b == b')').unwrap() + 3..]);
        let s = parse(&t).unwrap();
        assert_eq!(s.comm, b"a) b) (c\nd");
        assert_eq!(s.state, b'S');
        assert_eq!(s.pid, 7);
    }

    #[test]
    fn old_kernel_without_exit_code() {
        let cut = CAT.trim_ascii_end().strip_suffix(b" 0").unwrap();
        assert_eq!(parse(cut).unwrap().exit_code, None);
    }

    #[test]
    fn bad_input_is_an_error() {
        let bad: &[&[u8]] = &[
            b"",
            b"1 (x",
            b"1 x) R",
            b") 1 (",
            b"1 (x) R 1 2 3",
            b"x (cat) R 1",
        ];
        for t in bad {
            assert!(parse(t).is_err(), "{:?}", String::from_utf8_lossy(t));
        }
        let mut big = CAT.to_vec();
        big.splice(
            b"20925 (cat) R ".len()..b"20925 (cat) R 20914".len(),
            *b"99999999999999",
        );
        assert!(parse(&big).is_err());
        for n in 0..CAT.len() {
            let _ = parse(&CAT[..n]);
        }
    }
}
