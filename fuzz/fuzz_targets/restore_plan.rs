//! An arbitrary image set → restore's checks and planning up to the first
//! fork (`criu_core::restore::check_images`). Oracle: no panic, no hang,
//! no huge allocation; whatever the images say, the answer is `Ok` or a
//! typed error.
//!
//! Input: records `[kind u8][id u32 LE][len u16 LE][len bytes]`, each
//! written as the image file of that kind and id (`core-<id>.img`, ...)
//! into a scratch directory emptied before each run. A `pages-<id>.img`
//! record holds only the file's length (u64 LE, at most 1 GiB): its
//! contents are never checked, and a sparse file keeps runs fast.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use criu_core::images::Kind;
use libfuzzer_sys::fuzz_target;

/// The images a restore reads before its first fork (a tree's tasks and
/// every kind of file it restores).
const KINDS: &[Kind] = &[
    Kind::Inventory,
    Kind::Pstree,
    Kind::Core,
    Kind::Mm,
    Kind::Pagemap,
    Kind::Pages,
    Kind::Files,
    Kind::RegFiles,
    Kind::Fdinfo,
    Kind::Ids,
    Kind::Fs,
    Kind::MemfdInode,
    Kind::ShmemPagemap,
    Kind::Pipes,
    Kind::PipesData,
    Kind::Fifo,
    Kind::FifoData,
    Kind::Unixsk,
    Kind::SkQueues,
    Kind::GhostFile,
    Kind::RemapFpath,
    Kind::FileLocks,
];

const PAGE: u64 = 4096;
/// x86_64's 47-bit user address space, as restore computes it.
const TASK_SIZE: u64 = (1 << 47) - PAGE;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("criu-fuzz-restore-plan-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    for e in std::fs::read_dir(dir).expect("read scratch dir").flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    let mut rest = data;
    while rest.len() >= 7 {
        let kind = KINDS[usize::from(rest[0]) % KINDS.len()];
        let id = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = usize::from(u16::from_le_bytes([rest[5], rest[6]])).min(rest.len() - 7);
        let body = &rest[7..7 + len];
        rest = &rest[7 + len..];
        let path = dir.join(kind.file_name(u64::from(id)));
        if kind == Kind::Pages {
            let mut size = [0u8; 8];
            for (d, s) in size.iter_mut().zip(body) {
                *d = *s;
            }
            let f = std::fs::File::create(&path).expect("create pages");
            f.set_len(u64::from_le_bytes(size).min(1 << 30))
                .expect("size pages");
        } else {
            std::fs::write(&path, body).expect("write image");
        }
    }
    let _ = criu_core::restore::check_images(dir, PAGE, TASK_SIZE);
});
