use super::*;

const SAMPLE: &[u8] = b"Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t20926\nNgid:\t0\nPid:\t20926\nPPid:\t20914\nTracerPid:\t0\nUid:\t0\t1\t2\t3\nGid:\t4\t5\t6\t7\nFDSize:\t256\nGroups:\t 10 20 \nNStgid:\t20926\t1\nNSpid:\t20926\t1\nNSpgid:\t20914\t0\nNSsid:\t16743\t0\nKthread:\t0\nVmPeak:\t    3060 kB\nThreads:\t1\nSigQ:\t3/96365\nSigPnd:\t0000000000000100\nShdPnd:\t0000000000000200\nSigBlk:\t0000000000010000\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\nSpeculation_Store_Bypass:\tvulnerable\nvoluntary_ctxt_switches:\t0\n";

#[test]
fn sample() {
    let s = parse(SAMPLE).unwrap();
    assert_eq!(s.name, b"cat");
    assert_eq!(s.umask, Some(0o022));
    assert_eq!(s.state, b'R');
    assert_eq!(
        (s.tgid, s.pid, s.ppid, s.tracer_pid),
        (20926, 20926, 20914, 0)
    );
    assert_eq!(s.uid, [0, 1, 2, 3]);
    assert_eq!(s.gid, [4, 5, 6, 7]);
    assert_eq!(s.groups, [10, 20]);
    assert_eq!(s.ns_pid, [20926, 1]);
    assert_eq!(s.ns_sid, [16743, 0]);
    assert_eq!(s.threads, 1);
    assert_eq!(s.sigq, (3, 96365));
    assert_eq!((s.sig_pnd, s.shd_pnd, s.sig_blk), (0x100, 0x200, 0x10000));
    assert_eq!((s.sig_ign, s.sig_cgt), (4, 0x4002));
    assert_eq!(s.cap_prm, 0x1fffeffffff);
    assert_eq!(Status::cap_words(s.cap_eff), [0xfeffffff, 0x1ff]);
    assert_eq!(s.cap_amb, Some(0));
    assert_eq!(s.no_new_privs, Some(true));
    assert_eq!((s.seccomp, s.seccomp_filters), (Some(2), Some(3)));
}

#[test]
fn escaped_name() {
    let t = b"Name:\ta\\nb\\\\c d\\011e\nState:\tS\nTgid:\t1\nPid:\t1\nPPid:\t0\nUid:\t0 0 0 0\nGid:\t0 0 0 0\nSigBlk:\t0\n";
    let s = parse(t).unwrap();
    assert_eq!(s.name, b"a\nb\\c d\te");
    assert_eq!(s.seccomp, None);
    assert_eq!(s.groups, Vec::<u32>::new());
}

#[test]
fn errors() {
    let e = parse(b"Name:\tx\n").unwrap_err();
    assert_eq!((e.line, e.error), (0, ParseError::Missing("State")));
    let mut t = SAMPLE.to_vec();
    t.extend_from_slice(b"Uid:\t1 2 3\n");
    assert_eq!(parse(&t).unwrap_err().line, 36);
    let t = b"Name:\tx\nSigBlk:\t1ffffffffffffffff\n";
    assert!(matches!(
        parse(t).unwrap_err().error,
        ParseError::Bad { what: "SigBlk", .. }
    ));
    assert!(parse(b"SigQ:\t3\n").is_err());
    assert!(parse(b"Uid:\t1 2 3 4 5\n").is_err());
    for n in 0..SAMPLE.len() {
        let _ = parse(&SAMPLE[..n]);
        let mut m = SAMPLE.to_vec();
        m[n] = b'\\';
        let _ = parse(&m);
    }
}
