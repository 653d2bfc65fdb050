//! Every /proc parser on arbitrary and mutated input: parse or error,
//! never panic.

use criu_core::proc::maps::VmaName;
use criu_core::proc::vm_flags::VmFlags;
use criu_core::proc::{auxv, cgroup, fdinfo, flock, maps, mountinfo, stat, status, task, timers};
use proptest::prelude::*;

fn all_parsers(input: &[u8]) {
    let _ = maps::parse(input, true);
    let _ = maps::parse(input, false);
    let _ = maps::parse_vma_line(input);
    let _ = VmaName::parse(input);
    let _ = VmFlags::parse(input);
    let _ = stat::parse(input);
    let _ = status::parse(input);
    let _ = auxv::parse(input, 8);
    let _ = auxv::parse(input, 4);
    let _ = fdinfo::parse(input);
    let _ = flock::parse_lock(input);
    let _ = timers::parse(input);
    let _ = mountinfo::parse(input);
    let _ = cgroup::parse(input);
    let _ = task::parse_pid_list(input);
    let _ = task::FdTarget::parse(input);
}

/// Real-looking text to mutate, so the parsers get past their first checks.
const SEEDS: &[&[u8]] = &[
    b"7f0000000000-7f0000002000 rw-s 00001000 00:01 4242      /dev/zero (deleted)\nSize: 8 kB\nVmFlags: rd wr sh mr mw me ms\n",
    b"20925 (c a)t) R 20914 20914 16743 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 160855 3133440 413 18446744073709551615 1 2 3 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 4 5 6 7 8 9 10 0\n",
    b"Name:\tcat\nState:\tS (sleeping)\nTgid:\t1\nPid:\t1\nPPid:\t0\nUid:\t0 0 0 0\nGid:\t0 0 0 0\nSigBlk:\t0000000000000000\nSigQ:\t0/1\n",
    b"pos:\t0\nflags:\t02\nmnt_id:\t15\nclockid: 1\nticks: 0\nsettime flags: 00\nit_value: (1, 2)\nit_interval: (0, 0)\ntfd: 5 events: 19 data: 5 pos:0 ino:3 sdev:f\ninotify wd:1 ino:1a sdev:800001 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:1a0000009c7ed1d0\nlock:\t1: POSIX ADVISORY WRITE 1 08:01:2 0 EOF\n",
    b"ID: 0\nsignal: 14/0000000000000000\nnotify: signal/pid.1\nClockID: 0\n",
    b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
    b"4:cpu,cpuacct:/a\n0::/\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        all_parsers(&input);
    }

    #[test]
    fn mutated_seeds(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut t = SEEDS[seed].to_vec();
        for (pos, byte, op) in edits {
            let i = pos % (t.len() + 1);
            match op {
                0 if i < t.len() => t[i] = byte,
                1 => t.insert(i, byte),
                _ => t.truncate(i),
            }
        }
        all_parsers(&t);
    }
}
