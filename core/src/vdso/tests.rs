use super::*;

const PAGE: u64 = 0x1000;

fn layout(vvar: (u64, u64), vdso: (u64, u64)) -> Layout {
    Layout {
        vdso,
        vvar: Some(vvar),
    }
}

#[test]
fn symbols_of_a_synthetic_vdso_and_of_this_kernels() {
    let img = synthetic::image(
        0x2000,
        &[("__vdso_time", 0xae0), ("__vdso_clock_gettime", 0xb10)],
    );
    let s = symbols_of("synthetic", &img).unwrap();
    assert_eq!(s.offset_of("__vdso_clock_gettime"), Some(0xb10));
    assert_eq!(s.symbols[0].name, "__vdso_time");
    // Damaged images are errors, not panics.
    assert!(symbols_of("x", &img[..0x30]).is_err());
    let mut bad = img.clone();
    bad[0x184..0x188].copy_from_slice(&u32::MAX.to_ne_bytes()); // nchain
    assert!(symbols_of("x", &bad).is_err());
    assert!(symbols_of("x", b"not an elf at all, really").is_err());
    // This kernel's own vDSO parses too and has a clock_gettime. Natively
    // there is one; qemu-user (Debian 12's) maps none for a foreign guest.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let Some(line) = maps.lines().find(|l| l.ends_with("[vdso]")) else {
        if cfg!(target_arch = "x86_64") {
            panic!("no [vdso] in /proc/self/maps");
        }
        return;
    };
    let (s, e) = line
        .split_whitespace()
        .next()
        .unwrap()
        .split_once('-')
        .unwrap();
    let (s, e) = (
        u64::from_str_radix(s, 16).unwrap(),
        u64::from_str_radix(e, 16).unwrap(),
    );
    let mut data = vec![0u8; (e - s) as usize];
    let mem = std::fs::File::open("/proc/self/mem").unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&mem, &mut data, s).unwrap();
    let rt = symbols_of("[vdso]", &data).unwrap();
    // The symbols CRIU looks up on each arch (its ARCH_VDSO_SYMBOLS),
    // which every kernel it supports exports; elsewhere a clock_gettime.
    // s390x's (vdso64.lds.S: also restart_syscall and the sigreturns)
    // sit behind a hash table of 8-byte entries: read as 4-byte ones,
    // only the first few symbols were seen.
    let wanted: &[&str] = if cfg!(target_arch = "x86_64") {
        &[
            "__vdso_clock_gettime",
            "__vdso_getcpu",
            "__vdso_gettimeofday",
            "__vdso_time",
        ]
    } else if cfg!(target_arch = "s390x") {
        &[
            "__kernel_gettimeofday",
            "__kernel_clock_gettime",
            "__kernel_clock_getres",
            "__kernel_getcpu",
        ]
    } else {
        &[]
    };
    for name in wanted {
        assert!(rt.offset_of(name).is_some(), "no {name} in {rt:?}");
    }
    assert!(
        rt.symbols.iter().any(|s| s.name.ends_with("clock_gettime")),
        "{rt:?}"
    );
}

/// s390x (and alpha) `DT_HASH` tables have 8-byte entries: nchain, the
/// symbol count, is the second 8-byte word, not the second 4-byte one.
#[test]
fn an_s390x_vdso_hash_table_has_eight_byte_entries() {
    let syms = [
        ("__kernel_clock_getres", 0x410),
        ("__kernel_clock_gettime", 0x440),
        ("__kernel_gettimeofday", 0x480),
        ("__kernel_getcpu", 0x4c0),
    ];
    let mut img = synthetic::image(0x2000, &syms);
    img[0x12..0x14].copy_from_slice(&22u16.to_ne_bytes()); // EM_S390
    // Rewrite the hash table (at 0x180) as nbucket, nchain in 8 bytes
    // each: read as 4-byte words, nchain would be nbucket's other half.
    let (nbucket, nchain) = (3u64, syms.len() as u64 + 1);
    img[0x180..0x188].copy_from_slice(&nbucket.to_ne_bytes());
    img[0x188..0x190].copy_from_slice(&nchain.to_ne_bytes());
    let s = symbols_of("s390x", &img).unwrap();
    assert_eq!(s.symbols.len(), syms.len(), "{s:?}");
    assert_eq!(s.offset_of("__kernel_getcpu"), Some(0x4c0));
    // The same bytes as another machine's: 4-byte entries, so nchain is
    // read from the middle of nbucket (0 or 3) and fewer symbols are seen.
    img[0x12..0x14].copy_from_slice(&62u16.to_ne_bytes()); // EM_X86_64
    let other = symbols_of("x86_64", &img).unwrap();
    assert!(other.symbols.len() < syms.len(), "{other:?}");
}

#[test]
fn the_same_vdso_is_remapped_in_place_whatever_its_vvar_parts() {
    let syms = [("__vdso_clock_gettime", 0xb10), ("__vdso_time", 0xae0)];
    let s = symbols_of("s", &synthetic::image(0x2000, &syms)).unwrap();
    // CRIU records vvar as one area, we once recorded two: one span.
    let dumped = Layout::from_areas(&[(0x7f0_6000, 0x7f0_8000)], &[(0x7f0_0000, 0x7f0_6000)])
        .unwrap()
        .unwrap();
    let rt = Layout::from_areas(
        &[(0x500_6000, 0x500_8000)],
        &[(0x500_0000, 0x500_4000), (0x500_4000, 0x500_6000)],
    )
    .unwrap()
    .unwrap();
    assert_eq!(rt.vvar, Some((0x500_0000, 0x500_6000)));
    assert_eq!(choose(&dumped, &s, &rt, &s, false), Mode::InPlace);
    assert!(matches!(
        choose(&dumped, &s, &rt, &s, true),
        Mode::Proxy { .. }
    ));
    // Apart vvar parts are refused.
    assert!(
        Layout::from_areas(&[(0x9000, 0xa000)], &[(0x1000, 0x2000), (0x3000, 0x4000)]).is_err()
    );
}

/// A task dumped under another layout (an older kernel: a smaller vvar,
/// other symbol offsets, a symbol this kernel dropped) gets a proxy: each
/// function this kernel has jumps to it, by name.
#[test]
fn another_layout_gets_a_proxy_with_a_jump_per_symbol() {
    let old_img = synthetic::image(
        0x2000,
        &[
            ("__vdso_gettimeofday", 0x700),
            ("gettimeofday", 0x700),
            ("__vdso_clock_gettime", 0xc70),
            ("__vdso_getcpu", 0x18d0),
            ("__vdso_gone", 0x1900),
        ],
    );
    let old = symbols_of("old", &old_img).unwrap();
    let new = symbols_of(
        "new",
        &synthetic::image(
            0x3000,
            &[
                ("__vdso_clock_gettime", 0xb10),
                ("__vdso_getcpu", 0xf20),
                ("__vdso_gettimeofday", 0x830),
                ("gettimeofday", 0x830),
            ],
        ),
    )
    .unwrap();
    let dumped = layout((0x7f00_0000, 0x7f00_4000), (0x7f00_4000, 0x7f00_6000));
    let rt = layout((0x5000_0000, 0x5000_6000), (0x5000_6000, 0x5000_9000));
    let Mode::Proxy { why } = choose(&dumped, &old, &rt, &new, false) else {
        panic!("in place");
    };
    assert!(why.contains("size"), "{why}");
    let rt_at = 0x6000_6000;
    let tr = trampolines(&old, &old_img, &dumped, &new, rt_at).unwrap();
    let (patches, missing) = (tr.patches, tr.missing);
    assert_eq!(missing, ["__vdso_gone"]);
    assert!(tr.stubs.is_empty());
    let at = |a| patches.iter().find(|p| p.addr == a).unwrap().code;
    assert_eq!(patches.len(), 3, "aliases share one jump: {patches:x?}");
    assert_eq!(at(0x7f00_4700), vdso_jump(rt_at + 0x830));
    assert_eq!(at(0x7f00_4c70), vdso_jump(rt_at + 0xb10));
    assert_eq!(at(0x7f00_58d0), vdso_jump(rt_at + 0xf20));
    // A function too short for the jump is refused, by name.
    let mut tight_img =
        synthetic::image(0x2000, &[("__vdso_time", 0x800), ("__vdso_getcpu", 0x804)]);
    let tight = symbols_of("tight", &tight_img).unwrap();
    // (Only a patched function needs the room: getcpu, the last, has it.)
    assert!(trampolines(&tight, &tight_img, &dumped, &new, rt_at).is_ok());
    let new_time = symbols_of(
        "t",
        &synthetic::image(PAGE as usize * 2, &[("__vdso_time", 0x100)]),
    )
    .unwrap();
    let err = trampolines(&tight, &tight_img, &dumped, &new_time, rt_at).unwrap_err();
    assert!(
        err.to_string().contains("__vdso_time at 0x800 has 4 bytes"),
        "{err}"
    );
    // Unless it is a lone system call (s390x's `svc 173; .word 0`, as its
    // sigreturns and restart_syscall are): then it stays as dumped.
    tight_img[0x800..0x804].copy_from_slice(&[0x0a, 0xad, 0x00, 0x00]);
    let got = trampolines(&tight, &tight_img, &dumped, &new_time, rt_at);
    if cfg!(target_arch = "s390x") {
        let tr = got.unwrap();
        assert_eq!(tr.stubs, ["__vdso_time"]);
        assert!(tr.patches.is_empty(), "{tr:x?}");
    } else {
        assert!(got.is_err(), "{got:x?}");
    }
    // Code after the call is not a stub's.
    tight_img[0x802..0x804].copy_from_slice(&[0x07, 0xfe]); // br %r14
    assert!(trampolines(&tight, &tight_img, &dumped, &new_time, rt_at).is_err());
}
