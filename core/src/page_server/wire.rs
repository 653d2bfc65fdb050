//! CRIU's page server protocol, as CRIU 4.1 speaks it.
//!
//! Every message starts with a `page_server_iov`: four fields in the
//! host's byte order, 24 bytes, no padding:
//!
//! | field      | type | what |
//! |------------|------|------|
//! | `cmd`      | u32  | the command in the low 16 bits, `pagemap_entry` flags above (`PS_IOV_ADD_F`) |
//! | `nr_pages` | u32  | pages of the run |
//! | `vaddr`    | u64  | first address of the run |
//! | `dst_id`   | u64  | which pagemap: the image's id shifted left by 8, its type below |
//!
//! `PS_IOV_OPEN2` opens a pagemap and is answered with one byte (1: the
//! server has a parent image for it); `PS_IOV_PARENT` asks only that, and
//! is answered with an `int`. `PS_IOV_ADD_F` with `PE_PRESENT` is followed
//! by the run's pages; without it (`PE_PARENT`: the pages are in the parent
//! images; `PE_LAZY` alone: they stay on the source for lazy restore) it
//! carries no data. `PS_IOV_ADD` and `PS_IOV_HOLE` are the older spellings
//! of an `ADD_F` with `PE_PRESENT` and with `PE_PARENT`. `PS_IOV_FLUSH`
//! and `PS_IOV_FLUSH_N_CLOSE` end the transfer and are answered with an
//! `int` 0 once everything is written; after `FLUSH_N_CLOSE` the server
//! stops reading (the socket may be held open by someone else,
//! `--ps-socket`), after `FLUSH` it waits for the sender to close.

/// Size of a `page_server_iov` on the wire.
pub const IOV_SIZE: usize = 24;

/// The commands (low 16 bits of `cmd`).
pub mod cmd {
    pub const ADD: u32 = 1;
    pub const HOLE: u32 = 2;
    pub const OPEN: u32 = 3;
    pub const OPEN2: u32 = 4;
    pub const PARENT: u32 = 5;
    pub const ADD_F: u32 = 6;
    pub const GET: u32 = 7;
    pub const FLUSH: u32 = 0x1023;
    pub const FLUSH_N_CLOSE: u32 = 0x1024;
}

const CMD_BITS: u32 = 16;
const CMD_MASK: u32 = (1 << CMD_BITS) - 1;
const TYPE_BITS: u32 = 8;
const TYPE_MASK: u64 = (1 << TYPE_BITS) - 1;
/// `PS_TYPE_PID` and `PS_TYPE_SHMEM`.
const TYPE_PID: u64 = 1;
const TYPE_SHMEM: u64 = 2;

/// The pagemap a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `pagemap-<pid>.img` of a task.
    Task(u64),
    /// `pagemap-shmem-<shmid>.img` of a shared memory object.
    Shmem(u64),
}

impl Target {
    /// The `dst_id` naming this pagemap.
    pub fn dst_id(self) -> u64 {
        match self {
            Target::Task(id) => (id << TYPE_BITS) | TYPE_PID,
            Target::Shmem(id) => (id << TYPE_BITS) | TYPE_SHMEM,
        }
    }

    /// The pagemap `dst_id` names. Older CRIUs put their image-type enum
    /// values there; those that ever meant a task's or a shared memory
    /// object's pagemap are accepted too (as CRIU does).
    pub fn from_dst_id(dst_id: u64) -> Option<Target> {
        let id = dst_id >> TYPE_BITS;
        match dst_id & TYPE_MASK {
            TYPE_PID | 10 | 11 | 16 | 17 => Some(Target::Task(id)),
            TYPE_SHMEM | 27 | 28 | 29 | 32 | 33 | 34 => Some(Target::Shmem(id)),
            _ => None,
        }
    }
}

/// One `page_server_iov`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Iov {
    pub cmd: u32,
    pub nr_pages: u32,
    pub vaddr: u64,
    pub dst_id: u64,
}

impl Iov {
    /// A command without flags.
    pub fn new(command: u32, nr_pages: u32, vaddr: u64, dst_id: u64) -> Iov {
        Iov {
            cmd: command,
            nr_pages,
            vaddr,
            dst_id,
        }
    }

    /// `PS_IOV_ADD_F` of a run with its pagemap flags.
    pub fn add(flags: u32, nr_pages: u32, vaddr: u64, dst_id: u64) -> Iov {
        Iov::new((flags << CMD_BITS) | cmd::ADD_F, nr_pages, vaddr, dst_id)
    }

    pub fn command(&self) -> u32 {
        self.cmd & CMD_MASK
    }

    pub fn flags(&self) -> u32 {
        self.cmd >> CMD_BITS
    }

    pub fn to_bytes(self) -> [u8; IOV_SIZE] {
        let mut b = [0u8; IOV_SIZE];
        b[0..4].copy_from_slice(&self.cmd.to_ne_bytes());
        b[4..8].copy_from_slice(&self.nr_pages.to_ne_bytes());
        b[8..16].copy_from_slice(&self.vaddr.to_ne_bytes());
        b[16..24].copy_from_slice(&self.dst_id.to_ne_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; IOV_SIZE]) -> Iov {
        let mut w4 = [0u8; 4];
        let mut w8 = [0u8; 8];
        let mut u32_at = |i: usize| {
            w4.copy_from_slice(&b[i..i + 4]);
            u32::from_ne_bytes(w4)
        };
        let (cmd, nr_pages) = (u32_at(0), u32_at(4));
        let mut u64_at = |i: usize| {
            w8.copy_from_slice(&b[i..i + 8]);
            u64::from_ne_bytes(w8)
        };
        Iov {
            cmd,
            nr_pages,
            vaddr: u64_at(8),
            dst_id: u64_at(16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iov_round_trips_in_host_order() {
        let iov = Iov::add(4 | 2, 3, 0x7f00_1234_5000, Target::Task(42).dst_id());
        let b = iov.to_bytes();
        assert_eq!(Iov::from_bytes(&b), iov);
        assert_eq!(iov.command(), cmd::ADD_F);
        assert_eq!(iov.flags(), 6);
        if cfg!(target_endian = "little") {
            assert_eq!(&b[0..4], &[6, 0, 6, 0]);
            assert_eq!(&b[16..24], &[1, 42, 0, 0, 0, 0, 0, 0]);
        }
    }

    #[test]
    fn targets_decode_like_criu_including_old_type_numbers() {
        assert_eq!(Target::from_dst_id(0x101), Some(Target::Task(1)));
        assert_eq!(Target::from_dst_id(0x202), Some(Target::Shmem(2)));
        assert_eq!(Target::from_dst_id((7 << 8) | 11), Some(Target::Task(7)));
        assert_eq!(Target::from_dst_id((7 << 8) | 34), Some(Target::Shmem(7)));
        assert_eq!(Target::from_dst_id((7 << 8) | 3), None);
        assert_eq!(Target::Shmem(9).dst_id(), 0x902);
    }
}
