//! The `VmFlags:` line of `/proc/PID/smaps`: the kernel's two-letter names
//! for a VMA's `vm_flags` bits (`show_smap_vma_flags` in fs/proc/task_mmu.c).
//!
//! The bit positions here are ours (the kernel's differ between arches and
//! versions); only the two-letter names are ABI.

/// A set of VMA flags as shown in smaps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VmFlags {
    bits: u64,
    unknown: u32,
}

macro_rules! vm_flags {
    ($($name:ident = $bit:expr, $code:literal, $doc:literal;)*) => {
        impl VmFlags {
            $(
                #[doc = $doc]
                pub const $name: VmFlags = VmFlags { bits: 1 << $bit, unknown: 0 };
            )*
        }
        /// Every known name with its flag.
        pub const NAMES: &[(&[u8; 2], VmFlags)] = &[$(($code, VmFlags::$name)),*];
    };
}

vm_flags! {
    READ = 0, b"rd", "`rd`: readable.";
    WRITE = 1, b"wr", "`wr`: writable.";
    EXEC = 2, b"ex", "`ex`: executable.";
    SHARED = 3, b"sh", "`sh`: shared.";
    MAYREAD = 4, b"mr", "`mr`: may become readable.";
    MAYWRITE = 5, b"mw", "`mw`: may become writable.";
    MAYEXEC = 6, b"me", "`me`: may become executable.";
    MAYSHARE = 7, b"ms", "`ms`: may share.";
    GROWSDOWN = 8, b"gd", "`gd`: stack that grows down.";
    PFNMAP = 9, b"pf", "`pf`: pure PFN range (no struct page).";
    LOCKED = 10, b"lo", "`lo`: pages locked in memory.";
    IO = 11, b"io", "`io`: memory-mapped I/O.";
    SEQ_READ = 12, b"sr", "`sr`: MADV_SEQUENTIAL.";
    RAND_READ = 13, b"rr", "`rr`: MADV_RANDOM.";
    DONTCOPY = 14, b"dc", "`dc`: MADV_DONTFORK.";
    DONTEXPAND = 15, b"de", "`de`: cannot be expanded by mremap.";
    LOCKONFAULT = 16, b"lf", "`lf`: mlock2(MLOCK_ONFAULT).";
    ACCOUNT = 17, b"ac", "`ac`: accounted.";
    NORESERVE = 18, b"nr", "`nr`: no swap reserved.";
    HUGETLB = 19, b"ht", "`ht`: hugetlbfs.";
    SYNC = 20, b"sf", "`sf`: synchronous page faults (MAP_SYNC).";
    ARCH_1 = 21, b"ar", "`ar`: architecture-specific flag.";
    WIPEONFORK = 22, b"wf", "`wf`: MADV_WIPEONFORK.";
    DONTDUMP = 23, b"dd", "`dd`: MADV_DONTDUMP.";
    ARM64_BTI = 24, b"bt", "`bt`: arm64 BTI guarded.";
    SOFTDIRTY = 25, b"sd", "`sd`: soft-dirty.";
    MIXEDMAP = 26, b"mm", "`mm`: mixed map.";
    HUGEPAGE = 27, b"hg", "`hg`: MADV_HUGEPAGE.";
    NOHUGEPAGE = 28, b"nh", "`nh`: MADV_NOHUGEPAGE.";
    MERGEABLE = 29, b"mg", "`mg`: MADV_MERGEABLE (KSM).";
    UFFD_MISSING = 30, b"um", "`um`: userfaultfd missing-page tracking.";
    UFFD_WP = 31, b"uw", "`uw`: userfaultfd write protection.";
    MTE = 32, b"mt", "`mt`: arm64 memory tagging.";
    UFFD_MINOR = 33, b"ui", "`ui`: userfaultfd minor faults.";
    SHADOW_STACK = 34, b"ss", "`ss`: shadow stack.";
    SEALED = 35, b"sl", "`sl`: mseal()ed.";
    DROPPABLE = 36, b"dp", "`dp`: MAP_DROPPABLE.";
    MAYBE_GUARD = 37, b"gu", "`gu`: may hold MADV_GUARD_INSTALL guard regions.";
}

impl VmFlags {
    /// The empty set.
    pub const EMPTY: VmFlags = VmFlags {
        bits: 0,
        unknown: 0,
    };

    /// Parse the value of a `VmFlags:` line (the text after the colon).
    /// Names we do not know are counted, not rejected: kernels add new ones.
    pub fn parse(value: &[u8]) -> VmFlags {
        let mut set = VmFlags::EMPTY;
        for tok in super::text::fields(value) {
            match NAMES.iter().find(|(code, _)| &code[..] == tok) {
                Some((_, f)) => set.bits |= f.bits,
                None => set.unknown = set.unknown.saturating_add(1),
            }
        }
        set
    }

    /// True when every flag of `other` is set.
    pub fn contains(self, other: VmFlags) -> bool {
        self.bits & other.bits == other.bits
    }

    /// True when no known flag is set.
    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// How many names were not recognised.
    pub fn unknown_count(self) -> u32 {
        self.unknown
    }

    /// The two-letter names of the flags set, in kernel order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .filter(move |(_, f)| self.contains(*f))
            // The table holds only ASCII letters.
            .map(|(code, _)| std::str::from_utf8(&code[..]).unwrap_or("??"))
    }
}

impl std::ops::BitOr for VmFlags {
    type Output = VmFlags;
    fn bitor(self, rhs: VmFlags) -> VmFlags {
        VmFlags {
            bits: self.bits | rhs.bits,
            unknown: self.unknown.saturating_add(rhs.unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_counts_unknown() {
        let f = VmFlags::parse(b"rd wr mr mw me gd ac zz sd ");
        assert!(f.contains(VmFlags::READ | VmFlags::WRITE | VmFlags::GROWSDOWN));
        assert!(f.contains(VmFlags::SOFTDIRTY));
        assert!(!f.contains(VmFlags::EXEC));
        assert_eq!(f.unknown_count(), 1);
        assert_eq!(
            f.names().collect::<Vec<_>>(),
            ["rd", "wr", "mr", "mw", "me", "gd", "ac", "sd"]
        );
    }

    #[test]
    fn odd_input() {
        assert!(VmFlags::parse(b"").is_empty());
        assert_eq!(VmFlags::parse(b"r rdx \xff\xfe").unknown_count(), 3);
        assert!(VmFlags::parse(b"\tdd\t\tsl").contains(VmFlags::DONTDUMP | VmFlags::SEALED));
    }

    #[test]
    fn names_are_unique() {
        for (i, (a, fa)) in NAMES.iter().enumerate() {
            for (b, fb) in &NAMES[i + 1..] {
                assert_ne!(a, b);
                assert_ne!(fa, fb);
            }
        }
    }
}
