//! Self-test of the blob pipeline on the architecture the tests run on
//! (natively or under qemu-user): the embedded parasite and restorer are
//! placed at random addresses in this process, relocated, made executable and
//! called. `PING` answers only if the raw syscall path, the relocated pointers
//! and the writable data all work where the blob was not linked.

use std::io::Read;
use std::os::fd::AsRawFd;

use criu_core::blob::{
    Blob, InProcessCommand, LoadError, LoadedBlob, PARASITE, RESTORER, parasite_abi, restorer_abi,
};

/// Loads `blob`, pings it through a pipe for every table index, and checks
/// the message, the returned values and the `.bss` counter.
fn ping_all<A>(
    blob: &'static Blob,
    make: impl Fn(i32, u32) -> A,
    read_back: impl Fn(&A) -> (i64, u64),
    message: &[u8],
    values: &[u64],
) -> LoadedBlob
where
    A: InProcessCommand,
{
    let loaded = LoadedBlob::load(blob).expect("load blob");
    assert_eq!(loaded.base() % rustix::param::page_size() as u64, 0);
    let (mut rx, tx) = std::io::pipe().expect("pipe");
    for (i, want) in values.iter().enumerate() {
        let mut args = make(tx.as_raw_fd(), i as u32);
        let ret = loaded.run(&mut args).expect("run PING");
        let (written, count) = read_back(&args);
        assert_eq!(
            ret as u64,
            *want,
            "{} at {:#x}: value {i} through the relocated table",
            blob.name,
            loaded.base()
        );
        assert_eq!(written, message.len() as i64, "write(2) result");
        assert_eq!(count, i as u64 + 1, ".bss counter");
        let mut got = vec![0; message.len()];
        rx.read_exact(&mut got).expect("read pipe");
        assert_eq!(got, message, "{} message", blob.name);
    }
    loaded
}

#[test]
fn parasite_ping_at_random_address() {
    let loaded = ping_all(
        &PARASITE,
        |fd, index| parasite_abi::PingArgs {
            fd,
            index,
            ..Default::default()
        },
        |a| (a.written, a.count),
        parasite_abi::PING_MESSAGE,
        &parasite_abi::PING_VALUES,
    );
    eprintln!(
        "parasite: {} bytes at {:#x}, {} relocations, W^X: {}",
        PARASITE.mem_size(),
        loaded.base(),
        PARASITE.relocs.len(),
        loaded.is_w_xor_x()
    );
    assert!(loaded.is_w_xor_x(), "code and data pages kept apart");
}

#[test]
fn restorer_ping_at_random_address() {
    let loaded = ping_all(
        &RESTORER,
        |fd, index| restorer_abi::PingArgs {
            fd,
            index,
            ..Default::default()
        },
        |a| (a.written, a.count),
        restorer_abi::PING_MESSAGE,
        &restorer_abi::PING_VALUES,
    );
    eprintln!(
        "restorer: {} bytes at {:#x}, {} relocations, W^X: {}",
        RESTORER.mem_size(),
        loaded.base(),
        RESTORER.relocs.len(),
        loaded.is_w_xor_x()
    );
    assert!(loaded.is_w_xor_x(), "code and data pages kept apart");
}

#[test]
fn two_copies_at_different_addresses_are_independent() {
    let first = LoadedBlob::load(&PARASITE).expect("load");
    let second = LoadedBlob::load(&PARASITE).expect("load");
    assert_ne!(first.base(), second.base());
    let (_rx, tx) = std::io::pipe().expect("pipe");
    let mut args = parasite_abi::PingArgs {
        fd: tx.as_raw_fd(),
        index: 2,
        ..Default::default()
    };
    assert_eq!(
        first.run(&mut args).unwrap() as u64,
        parasite_abi::PING_VALUES[2]
    );
    assert_eq!(
        first.run(&mut args).unwrap() as u64,
        parasite_abi::PING_VALUES[2]
    );
    assert_eq!(args.count, 2);
    // Each copy has its own .bss.
    assert_eq!(
        second.run(&mut args).unwrap() as u64,
        parasite_abi::PING_VALUES[2]
    );
    assert_eq!(args.count, 1);
}

#[test]
fn errors_come_back_as_negative_errno() {
    let loaded = LoadedBlob::load(&PARASITE).expect("load");
    let mut args = parasite_abi::PingArgs {
        fd: -1,
        index: parasite_abi::PING_VALUES.len() as u32,
        ..Default::default()
    };
    assert_eq!(loaded.run(&mut args).unwrap(), parasite_abi::ERR_BAD_ARGS);
    assert_eq!(args.written, -9, "write to fd -1 gives -EBADF");
}

#[test]
fn command_of_the_other_blob_is_refused() {
    let loaded = LoadedBlob::load(&RESTORER).expect("load");
    let mut args = parasite_abi::PingArgs::default();
    assert!(matches!(
        loaded.run(&mut args),
        Err(LoadError::WrongBlob { .. })
    ));
}

#[test]
fn relocate_into_writes_base_plus_addend_and_nothing_else() {
    for blob in [&PARASITE, &RESTORER] {
        assert_eq!(blob.symbol(blob_entry(blob)), Some(blob.entry_offset()));
        assert!(
            !blob.relocs.is_empty(),
            "{}: the PING table needs relocations",
            blob.name
        );
        assert_eq!(blob.data_offset() % blob.max_page_size, 0);

        let mut at_zero = vec![0xaa; blob.mem_size() + 16];
        let mut moved = vec![0x55; blob.mem_size() + 16];
        let base = 0x1234_5678_9000_u64;
        blob.relocate_into(&mut at_zero, 0).unwrap();
        blob.relocate_into(&mut moved, base).unwrap();
        // Bytes past mem_size are not the blob's: untouched.
        assert!(at_zero[blob.mem_size()..].iter().all(|&b| b == 0xaa));
        assert!(moved[blob.mem_size()..].iter().all(|&b| b == 0x55));
        let (at_zero, moved) = (&at_zero[..blob.mem_size()], &moved[..blob.mem_size()]);
        // .bss is zeroed.
        assert!(at_zero[blob.bytes.len()..].iter().all(|&b| b == 0));

        let mut is_reloc = vec![false; blob.mem_size()];
        for r in blob.relocs {
            let word = |m: &[u8]| u64::from_ne_bytes(m[r.offset..r.offset + 8].try_into().unwrap());
            assert_eq!(word(at_zero), r.addend);
            assert_eq!(word(moved), base + r.addend);
            is_reloc[r.offset..r.offset + 8].fill(true);
        }
        for (i, (a, b)) in at_zero.iter().zip(moved).enumerate() {
            if !is_reloc[i] {
                assert_eq!(a, b, "{}: byte {i:#x} changed by relocation", blob.name);
            }
        }

        let mut small = vec![0; blob.mem_size() - 1];
        assert!(blob.relocate_into(&mut small, 0).is_err());
        assert!(
            blob.relocate_into(&mut vec![0; blob.mem_size()], u64::MAX - 8)
                .is_err()
        );
    }
}

fn blob_entry(blob: &Blob) -> &'static str {
    if std::ptr::eq(blob, &PARASITE) {
        parasite_abi::ENTRY_SYMBOL
    } else {
        restorer_abi::ENTRY_SYMBOL
    }
}
