use super::*;

const SMAPS: &[u8] = b"\
56541738b000-56541738d000 r--p 00000000 fe:00 247030                     /usr/bin/cat
Size:                  8 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   8 kB
Anonymous:             0 kB
Swap:                  0 kB
THPeligible:           0
VmFlags: rd mr mw me 
7f75bbfcd000-7f75bbfd1000 r--p 00000000 00:00 0                          [vvar]
Size:                 16 kB
VmFlags: rd mr pf io de dd 
7ffc9db80000-7ffc9dba1000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  20 kB
Anonymous:            20 kB
VmFlags: rd wr mr mw me gd ac 
";

#[test]
fn smaps_sample() {
    let v = parse(SMAPS, true).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].start, 0x56541738b000);
    assert_eq!(v[0].end, 0x56541738d000);
    assert_eq!(v[0].prot, PROT_READ);
    assert!(!v[0].shared);
    assert_eq!(
        (v[0].dev_major, v[0].dev_minor, v[0].inode),
        (0xfe, 0, 247030)
    );
    assert_eq!(v[0].path(), Some(Path::new("/usr/bin/cat")));
    let s0 = v[0].smaps.as_ref().unwrap();
    assert_eq!((s0.size_kb, s0.rss_kb, s0.kernel_page_size_kb), (8, 8, 4));
    assert!(s0.has_vm_flags);
    assert_eq!(v[1].name, VmaName::Special(SpecialVma::Vvar));
    assert!(v[1].vm_flags().contains(VmFlags::IO | VmFlags::PFNMAP));
    assert_eq!(v[2].name, VmaName::Special(SpecialVma::Stack));
    assert_eq!(v[2].prot, PROT_READ | PROT_WRITE);
    assert!(v[2].vm_flags().contains(VmFlags::GROWSDOWN));
    assert_eq!(v[2].smaps.as_ref().unwrap().anonymous_kb, 20);
    assert_eq!(v[2].map_files_name(), "7ffc9db80000-7ffc9dba1000");
}

#[test]
fn names() {
    let line = |name: &str| {
        format!("1000-2000 rw-s 00001000 103:2a 42                         {name}").into_bytes()
    };
    let v = parse_vma_line(&line("/tmp/a file with  spaces (deleted)")).unwrap();
    assert!(v.shared);
    assert_eq!(v.offset, 0x1000);
    assert_eq!((v.dev_major, v.dev_minor), (0x103, 0x2a));
    assert_eq!(
        v.name,
        VmaName::File {
            path: PathBuf::from("/tmp/a file with  spaces"),
            deleted: true
        }
    );
    let v = parse_vma_line(&line("/tmp/new\\012line")).unwrap();
    assert_eq!(v.path(), Some(Path::new("/tmp/new\nline")));
    assert_eq!(
        parse_vma_line(&line("[anon:my buffer]")).unwrap().name,
        VmaName::AnonNamed(b"my buffer".to_vec())
    );
    assert_eq!(
        parse_vma_line(&line("[anon_shmem:x]")).unwrap().name,
        VmaName::AnonShmemNamed(b"x".to_vec())
    );
    for (n, s) in SPECIALS {
        let name = std::str::from_utf8(n).unwrap();
        assert_eq!(
            parse_vma_line(&line(name)).unwrap().name,
            VmaName::Special(*s)
        );
    }
    assert_eq!(
        parse_vma_line(&line("[stack:123]")).unwrap().name,
        VmaName::OtherBracketed(b"stack:123".to_vec())
    );
    assert_eq!(
        parse_vma_line(b"1000-2000 ---p 0 00:00 0").unwrap().name,
        VmaName::Anonymous
    );
    assert_eq!(
        parse_vma_line(b"1000-2000 ---p 0 00:00 0   ").unwrap().name,
        VmaName::Anonymous
    );
    assert_eq!(
        parse_vma_line(b"1000-2000 ---p 0 00:00 0 weird")
            .unwrap()
            .name,
        VmaName::Other(b"weird".to_vec())
    );
    let v = parse_vma_line(b"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0   [vsyscall]")
        .unwrap();
    assert_eq!(v.prot, PROT_EXEC);
    assert_eq!(v.end, 0xffffffffff601000);
}

#[test]
fn bad_lines_are_errors_not_panics() {
    let bad: &[&[u8]] = &[
        b"",
        b"1000",
        b"1000-",
        b"2000-1000 rw-p 0 0:0 0",
        b"1000-1000 rw-p 0 0:0 0",
        b"1000-2000 rw-q 0 0:0 0",
        b"1000-2000 rwxps 0 0:0 0",
        b"1000-2000 rw 0 0:0 0",
        b"1000-2000 rw-p",
        b"1000-2000 rw-p zz 0:0 0",
        b"1000-2000 rw-p 0 00 0",
        b"1000-2000 rw-p 0 0:0",
        b"1000-2000 rw-p 0 0:0 -1",
        b"1000-2000 rw-p 0 0:0 99999999999999999999999",
        b"10000000000000000-10000000000000001 rw-p 0 0:0 0",
        b"1000-2000 rw-p 0 fffffffff:0 0",
        b"\xff\xfe-\x00 \x01",
    ];
    for l in bad {
        assert!(
            parse_vma_line(l).is_err(),
            "{:?}",
            String::from_utf8_lossy(l)
        );
    }
}

#[test]
fn parser_errors_carry_line_numbers() {
    let e = parse(b"1000-2000 rw-p 0 0:0 0\nSize: 4 kB\n", false).unwrap_err();
    assert_eq!(e.line, 2);
    let e = parse(b"Size: 4 kB\n", true).unwrap_err();
    assert_eq!(e.line, 1);
    let e = parse(b"1000-2000 rw-p 0 0:0 0\nSize: lots kB\n", true).unwrap_err();
    assert_eq!(e.line, 2);
    // Truncated text: the last VMA simply has no details.
    let v = parse(
        b"1000-2000 rw-p 0 0:0 0\nSize: 4 kB\n2000-3000 r--p 0 0:0 0",
        true,
    )
    .unwrap();
    assert_eq!(v.len(), 2);
    assert!(!v[1].smaps.as_ref().unwrap().has_vm_flags);
    // Unknown keys and odd shapes after a header are ignored.
    let v = parse(
        b"1000-2000 rw-p 0 0:0 0\nFutureKey: 1 2 3\nno colon\nNonlinear: 4 kB\n",
        true,
    )
    .unwrap();
    assert!(v[0].smaps.as_ref().unwrap().nonlinear);
}

#[test]
fn garbage_never_panics() {
    // A cheap deterministic fuzz: every prefix and byte-flipped variant of
    // the sample parses or errors, and never panics.
    for n in 0..SMAPS.len() {
        let _ = parse(&SMAPS[..n], true);
        let mut m = SMAPS.to_vec();
        m[n] ^= 0x55;
        let _ = parse(&m, true);
        let _ = parse(&m, false);
    }
}
