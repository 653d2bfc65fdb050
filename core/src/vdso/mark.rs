//! CRIU's mark in a proxied vDSO. When a restore has to keep the dumped
//! vDSO as a proxy (its functions jumping into this kernel's vDSO), the
//! runtime vDSO, mapped at a new place, gets this record over the start of
//! its ELF header: the next dump finds it there, drops the runtime vDSO and
//! vvar (the next restore brings its own kernel's) and records the proxy
//! and the vvar area beside it as the task's vDSO and vvar again. Same
//! layout as CRIU's `struct vdso_mark` (five native words), so either tool
//! dumps what the other restored.

/// "CRIUvDSO", the current signature (version 3, with `rt_vvar`).
pub const MARK_MAGIC_V3: u64 = 0x4f53_4476_5549_5243;
/// "criuvDSO": version 2 (no `rt_vvar`).
pub const MARK_MAGIC_V2: u64 = 0x4f53_4476_7569_7263;
/// "criuvdso": version 1 (no vvar at all).
pub const MARK_MAGIC_V1: u64 = 0x6f73_6476_7569_7263;
const VERSION: u64 = 3;
/// CRIU's "no such address" (`VVAR_BAD_ADDR`).
pub const BAD_ADDR: u64 = u64::MAX;
/// Bytes of the mark.
pub const LEN: usize = 40;

/// What a mark says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The dumped vDSO kept as the proxy.
    pub orig_vdso: u64,
    /// The vvar area beside it, if there was one.
    pub orig_vvar: Option<u64>,
    /// The runtime vvar (to drop with the runtime vDSO), if recorded.
    pub rt_vvar: Option<u64>,
}

fn addr(a: u64) -> Option<u64> {
    (a != BAD_ADDR).then_some(a)
}

impl Mark {
    /// The record's words, in order: signature, orig_vdso, version,
    /// orig_vvar, rt_vvar.
    pub fn words(&self) -> [u64; 5] {
        [
            MARK_MAGIC_V3,
            self.orig_vdso,
            VERSION,
            self.orig_vvar.unwrap_or(BAD_ADDR),
            self.rt_vvar.unwrap_or(BAD_ADDR),
        ]
    }

    /// The record as bytes (native order).
    pub fn to_bytes(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        for (i, w) in self.words().iter().enumerate() {
            b[8 * i..8 * i + 8].copy_from_slice(&w.to_ne_bytes());
        }
        b
    }

    /// The mark at the start of `bytes` (a vDSO's first bytes), of any
    /// version CRIU ever wrote; `None` for an ordinary vDSO.
    pub fn parse(bytes: &[u8]) -> Option<Mark> {
        let w = |i: usize| -> Option<u64> {
            let b = bytes.get(8 * i..8 * i + 8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Some(u64::from_ne_bytes(a))
        };
        match w(0)? {
            MARK_MAGIC_V3 => Some(Mark {
                orig_vdso: w(1)?,
                orig_vvar: addr(w(3)?),
                rt_vvar: addr(w(4)?),
            }),
            MARK_MAGIC_V2 => Some(Mark {
                orig_vdso: w(1)?,
                orig_vvar: addr(w(3)?),
                rt_vvar: None,
            }),
            MARK_MAGIC_V1 => Some(Mark {
                orig_vdso: w(1)?,
                orig_vvar: None,
                rt_vvar: None,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_of_every_version_parse_and_ours_round_trip() {
        let m = Mark {
            orig_vdso: 0x7f00_0000_6000,
            orig_vvar: Some(0x7f00_0000_0000),
            rt_vvar: Some(0x7e00_0000_0000),
        };
        assert_eq!(Mark::parse(&m.to_bytes()), Some(m));
        let mut v2 = m.to_bytes();
        v2[..8].copy_from_slice(&MARK_MAGIC_V2.to_ne_bytes());
        assert_eq!(Mark::parse(&v2).unwrap().rt_vvar, None);
        let mut v1 = m.to_bytes();
        v1[..8].copy_from_slice(&MARK_MAGIC_V1.to_ne_bytes());
        assert_eq!(Mark::parse(&v1).unwrap().orig_vvar, None);
        // An ELF header is no mark; nor is a short read.
        assert_eq!(Mark::parse(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"), None);
        assert_eq!(Mark::parse(&m.to_bytes()[..20]), None);
    }
}
