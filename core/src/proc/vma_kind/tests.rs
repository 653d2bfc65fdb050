use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::*;
use crate::proc::map_files::FileId;
use crate::proc::maps;

const SHMEM_DEV: u64 = 1;
const CFG: ClassifyConfig = ClassifyConfig {
    shmem_dev: SHMEM_DEV,
    allow_uprobes: false,
};

fn vma(line: &str, flags: &str) -> Vma {
    let text = format!("{line}\nVmFlags: {flags}\n");
    maps::parse(text.as_bytes(), true).unwrap().remove(0)
}

fn file(dev: u64, ino: u64, mode: u32) -> MapFile {
    let fd: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    MapFile::File {
        fd: Arc::new(fd),
        id: FileId {
            dev,
            ino,
            mode,
            rdev: 0,
            nlink: 1,
            size: 0,
        },
    }
}

#[test]
fn special_areas() {
    let v = vma(
        "7fff0000-7fff2000 r-xp 0 00:00 0 [vdso]",
        "rd ex mr mw me de",
    );
    let e = classify(&v, &MapFile::NoFile, None, &CFG).unwrap();
    assert_eq!(
        e.status,
        VMA_AREA_REGULAR | VMA_AREA_VDSO | VMA_ANON_PRIVATE
    );
    assert_eq!(e.flags, MAP_PRIVATE | MAP_ANONYMOUS);
    assert_eq!(e.prot, PROT_READ | PROT_EXEC);

    for name in ["[vvar]", "[vvar_vclock]"] {
        let v = vma(
            &format!("7ffe0000-7ffe4000 r--p 0 00:00 0 {name}"),
            "rd mr pf io de dd",
        );
        let e = classify(&v, &MapFile::NoFile, None, &CFG).unwrap();
        assert_eq!(
            e.status,
            VMA_AREA_REGULAR | VMA_AREA_VVAR | VMA_ANON_PRIVATE,
            "{name}"
        );
        assert_eq!(e.madv, 1 << MADV_DONTDUMP);
    }

    let v = vma(
        "ffffffffff600000-ffffffffff601000 --xp 0 00:00 0 [vsyscall]",
        "ex",
    );
    let e = classify(&v, &MapFile::NoFile, None, &CFG).unwrap();
    assert_eq!(e.status, VMA_AREA_VSYSCALL | VMA_ANON_PRIVATE);

    let v = vma("1000-5000 rw-p 0 00:00 0 [heap]", "rd wr mr mw me ac");
    let e = classify(&v, &MapFile::NoFile, None, &CFG).unwrap();
    assert_eq!(e.status, 0x221);

    let v = vma(
        "7ff0000-8000000 rw-p 0 00:00 0 [stack]",
        "rd wr mr mw me gd ac",
    );
    let e = classify(&v, &MapFile::NoFile, None, &CFG).unwrap();
    assert_eq!(e.status, VMA_AREA_REGULAR | VMA_ANON_PRIVATE);
    assert_eq!(e.flags, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN);

    let v = vma("1000-2000 r-xp 0 00:00 0 [uprobes]", "rd ex");
    assert_eq!(
        classify(&v, &MapFile::NoFile, None, &CFG),
        Err(VmaError::Uprobes { start: 0x1000 })
    );
    let allow = ClassifyConfig {
        allow_uprobes: true,
        ..CFG
    };
    let e = classify(&v, &MapFile::NoFile, None, &allow).unwrap();
    assert_eq!(e.status, VMA_AREA_UPROBES | VMA_ANON_PRIVATE);
}

#[test]
fn files_and_shared_memory() {
    let reg = S_IFREG | 0o644;
    let v = vma(
        "1000-3000 r--p 00002000 fe:00 77 /usr/lib/libc.so.6",
        "rd mr mw me",
    );
    let e = classify(&v, &file(0xfe00, 77, reg), Some(0), &CFG).unwrap();
    assert_eq!(e.status, VMA_AREA_REGULAR | VMA_FILE_PRIVATE);
    assert_eq!(
        (e.flags, e.pgoff, e.fdflags),
        (MAP_PRIVATE, 0x2000, Some(0))
    );

    let v = vma(
        "1000-3000 rw-s 0 fe:00 78 /tmp/data",
        "rd wr sh mr mw me ms",
    );
    let e = classify(&v, &file(0xfe00, 78, reg), None, &CFG).unwrap();
    assert_eq!(e.status, VMA_AREA_REGULAR | VMA_FILE_SHARED);
    assert_eq!(e.flags, MAP_SHARED);

    let v = vma(
        "1000-3000 rw-s 0 00:01 4242 /dev/zero (deleted)",
        "rd wr sh mr mw me ms",
    );
    let e = classify(&v, &file(SHMEM_DEV, 4242, reg | 0o777), None, &CFG).unwrap();
    assert_eq!(e.status, VMA_AREA_REGULAR | VMA_ANON_SHARED);
    assert_eq!((e.flags, e.shmid), (MAP_SHARED | MAP_ANONYMOUS, 4242));

    let v = vma(
        "1000-3000 rw-s 0 00:01 9 /SYSV00001234 (deleted)",
        "rd wr sh",
    );
    let e = classify(&v, &file(SHMEM_DEV, 9, reg), None, &CFG).unwrap();
    assert_eq!(
        e.status,
        VMA_AREA_REGULAR | VMA_ANON_SHARED | VMA_AREA_SYSVIPC
    );

    let v = vma(
        "1000-3000 rw-p 0 00:01 10 /memfd:buf (deleted)",
        "rd wr mr mw me",
    );
    let e = classify(&v, &file(SHMEM_DEV, 10, reg), None, &CFG).unwrap();
    assert_eq!(
        e.status,
        VMA_AREA_REGULAR | VMA_AREA_MEMFD | VMA_FILE_PRIVATE
    );

    let v = vma("1000-3000 rw-p 0 00:01 4242 /dev/zero (deleted)", "rd wr");
    assert!(matches!(
        classify(&v, &file(SHMEM_DEV, 4242, reg), None, &CFG),
        Err(VmaError::Bogus { .. })
    ));

    let v = vma("1000-3000 rw-s 0 00:06 5 /dev/fb0", "rd wr sh io pf");
    assert!(matches!(
        classify(&v, &file(6, 5, S_IFCHR | 0o600), None, &CFG),
        Err(VmaError::NonRegularFile { .. })
    ));

    // Shared anonymous memory with no map_files link: the inode from maps.
    let v = vma("1000-3000 rw-s 0 00:01 31337", "rd wr sh");
    let e = classify(&v, &MapFile::NoFile, None, &CFG).unwrap();
    assert_eq!(
        (e.status, e.shmid),
        (VMA_AREA_REGULAR | VMA_ANON_SHARED, 31337)
    );

    let v = vma("1000-3000 rw-s 0 00:00 0", "rd wr sh");
    let e = classify(&v, &MapFile::Socket { ino: 55 }, None, &CFG).unwrap();
    assert_eq!(
        (e.status, e.shmid),
        (VMA_AREA_REGULAR | VMA_AREA_SOCKET, 55)
    );

    let e = classify(&v, &MapFile::AioRing, None, &CFG).unwrap();
    assert_eq!(e.status, VMA_AREA_AIORING);
}

#[test]
fn vm_flags_to_flags_and_madv() {
    let v = vma(
        "1000-3000 rw-p 0 00:00 0",
        "rd wr lo nr ht sr rr dc dd mg hg nh wf ss",
    );
    let e = classify(&v, &MapFile::NoFile, None, &CFG).unwrap();
    assert_eq!(
        e.flags,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_NORESERVE | MAP_HUGETLB
    );
    let want = [
        MADV_SEQUENTIAL,
        MADV_RANDOM,
        MADV_DONTFORK,
        MADV_DONTDUMP,
        MADV_MERGEABLE,
        MADV_HUGEPAGE,
        MADV_NOHUGEPAGE,
        MADV_WIPEONFORK,
    ]
    .iter()
    .fold(0u64, |m, a| m | 1 << a);
    assert_eq!(e.madv, want);
    assert!(e.is(VMA_AREA_SHSTK));

    let v = vma("1000-3000 rw-p 0 00:00 0", "rd wr dp wf");
    let e = classify(&v, &MapFile::NoFile, None, &CFG).unwrap();
    assert_eq!(e.flags & MAP_TYPE, MAP_DROPPABLE);

    let v = vma("1000-3000 rw-p 0 00:00 0", "rd wr io");
    assert!(matches!(
        classify(&v, &MapFile::NoFile, None, &CFG),
        Err(VmaError::Unsupported { .. })
    ));
}

#[test]
fn guard_pages_and_privacy() {
    let mut list = [
        VmaEntryBits {
            start: 0x1000,
            end: 0x2000,
            flags: MAP_GROWSDOWN,
            ..Default::default()
        },
        VmaEntryBits {
            start: 0x2000,
            end: 0x3000,
            flags: MAP_GROWSDOWN,
            ..Default::default()
        },
        VmaEntryBits {
            start: 0x8000,
            end: 0x9000,
            flags: MAP_GROWSDOWN,
            status: VMA_AREA_REGULAR | VMA_ANON_PRIVATE,
            ..Default::default()
        },
    ];
    add_stack_guard_pages(&mut list, 0x1000);
    assert_eq!(list[0].start, 0x0);
    assert_eq!(list[1].start, 0x2000, "no room below: adjacent to previous");
    assert_eq!(list[2].start, 0x7000);
    assert!(list[2].is_private(u64::MAX));
    assert!(!list[2].is_private(0x8000));
    assert!(!list[0].is_private(u64::MAX));
}
