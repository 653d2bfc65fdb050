//! x86_64 CPU capabilities as CRIU records them in `cpuinfo.img`
//! (`--cpu-cap`, `criu cpuinfo dump|check`): CPUID leaves gathered into
//! CRIU's capability words (compel's `compel_cpuid`), plus the XSAVE
//! feature mask and sizes (`compel_fpuid`).
//!
//! The word layout and the bit numbers are CRIU's image ABI (compel's
//! `cpu.h`, adopted from the kernel's `cpufeatures.h` and frozen there),
//! not a kernel interface: they must stay where CRIU has them.

use core::arch::x86_64::{__cpuid, __cpuid_count};

/// Words of capability bits in CRIU's second layout (`NCAPINTS_V2`), the
/// one it writes; images of the first one carry [`NCAPINTS_V1`].
pub const NCAPINTS: usize = 19;
pub const NCAPINTS_V1: usize = 12;

/// CRIU's capability words: which CPUID register each one holds.
pub mod word {
    pub const CPUID_1_EDX: usize = 0;
    pub const CPUID_8000_0001_EDX: usize = 1;
    pub const LNX_1: usize = 3;
    pub const CPUID_1_ECX: usize = 4;
    pub const CPUID_8000_0001_ECX: usize = 6;
    pub const CPUID_7_0_EBX: usize = 9;
    pub const CPUID_D_1_EAX: usize = 10;
    pub const CPUID_7_0_ECX: usize = 11;
    pub const CPUID_F_1_EDX: usize = 12;
    pub const CPUID_8000_0008_EBX: usize = 13;
    pub const CPUID_6_EAX: usize = 14;
    pub const CPUID_8000_000A_EDX: usize = 15;
    pub const CPUID_F_0_EDX: usize = 16;
    pub const CPUID_8000_0007_EBX: usize = 17;
    pub const CPUID_7_0_EDX: usize = 18;
}

/// A capability bit: `word * 32 + bit`.
pub mod feature {
    pub const FPU: u32 = 0;
    pub const FXSR: u32 = 24;
    pub const XMM: u32 = 25;
    pub const REP_GOOD: u32 = 3 * 32 + 16;
    pub const NOPL: u32 = 3 * 32 + 20;
    pub const CPUID: u32 = 3 * 32 + 25;
    pub const XSAVE: u32 = 4 * 32 + 26;
    pub const OSXSAVE: u32 = 4 * 32 + 27;
    pub const AVX: u32 = 4 * 32 + 28;
    pub const ERMS: u32 = 9 * 32 + 9;
    pub const MPX: u32 = 9 * 32 + 14;
    pub const AVX512F: u32 = 9 * 32 + 16;
    pub const INTEL_PT: u32 = 9 * 32 + 25;
    pub const XSAVES: u32 = 10 * 32 + 3;
    pub const PKU: u32 = 11 * 32 + 3;
    pub const HDC: u32 = 14 * 32 + 13;
    pub const CQM_LLC: u32 = 16 * 32 + 1;
}

/// The capability bit each XSAVE component (by number) depends on: a
/// component whose bit is off is taken out of the mask (compel's
/// `xsave_cpuid_features`).
const XSAVE_COMPONENT_FEATURE: [u32; 11] = [
    feature::FPU,
    feature::XMM,
    feature::AVX,
    feature::MPX,
    feature::MPX,
    feature::AVX512F,
    feature::AVX512F,
    feature::AVX512F,
    feature::INTEL_PT,
    feature::PKU,
    feature::HDC,
];

/// The XSAVE components CRIU records. This is the mask CRIU 4.1/4.2 apply
/// (read from its binary: x87, AVX, MPX CSR, AVX-512 and PKRU; its mask
/// leaves SSE and MPX BNDREGS out). Using the same one keeps images
/// comparable between the two tools: a mask with more bits written here
/// would be refused by CRIU's check on the same machine.
pub const RECORDED_XFEATURES: u64 = 0x2f5;

/// Instruction-level capability bits (CRIU's `x86_ins_capability_mask`):
/// what `--cpu-cap=ins` compares, per word.
pub const INS_CAPABILITY_MASK: [u32; NCAPINTS] = {
    let mut m = [0u32; NCAPINTS];
    m[word::CPUID_1_EDX] = bits(&[0, 4, 8, 11, 15, 19, 23, 24, 25, 26]);
    m[word::CPUID_8000_0001_EDX] = bits(&[11, 22, 27, 30, 31]);
    m[word::LNX_1] = bits(&[16, 20]);
    m[word::CPUID_1_ECX] = bits(&[0, 1, 3, 9, 13, 19, 20, 22, 23, 25, 26, 27, 28, 29, 30]);
    m[word::CPUID_8000_0001_ECX] = bits(&[5, 6, 7, 8, 11, 16, 21]);
    m[word::CPUID_7_0_EBX] = bits(&[
        0, 3, 4, 5, 8, 9, 11, 14, 16, 17, 18, 19, 23, 26, 27, 28, 29, 30, 31,
    ]);
    m[word::CPUID_D_1_EAX] = bits(&[0, 1, 2]);
    m[word::CPUID_7_0_ECX] = bits(&[1, 6, 8, 9, 10, 11, 12, 13, 14, 22]);
    m[word::CPUID_8000_0008_EBX] = bits(&[0]);
    m[word::CPUID_7_0_EDX] = bits(&[2, 3]);
    m
};

const fn bits(list: &[u32]) -> u32 {
    let mut v = 0;
    let mut i = 0;
    while i < list.len() {
        v |= 1 << list[i];
        i += 1;
    }
    v
}

/// CPU vendors CRIU knows (`cpuinfo_x86_entry.vendor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    /// AMD and Hygon.
    Amd,
}

/// What CRIU records about this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    pub vendor: Vendor,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub capability: [u32; NCAPINTS],
    /// NUL-padded brand string (CPUID 0x80000002..4, leading blanks removed).
    pub model_id: [u8; 48],
    /// XSAVE components in use ([`RECORDED_XFEATURES`] at most); 0 without
    /// XSAVE.
    pub xfeatures_mask: u64,
    /// XSAVE area size for the enabled components, and for all.
    pub xsave_size: u32,
    pub xsave_size_max: u32,
}

/// Why the CPU cannot be described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuError {
    /// Neither Intel nor AMD (the 12-byte vendor string).
    UnsupportedVendor([u8; 12]),
    NoFpu,
    /// XSAVE without x87 and SSE state (the mask found).
    NoFpSse(u64),
}

impl CpuInfo {
    pub fn has(&self, feature: u32) -> bool {
        has(&self.capability, feature)
    }
}

/// Whether capability `feature` is set in `words`.
pub fn has(words: &[u32; NCAPINTS], feature: u32) -> bool {
    let (w, b) = ((feature / 32) as usize, feature % 32);
    w < NCAPINTS && words[w] & (1 << b) != 0
}

fn set(words: &mut [u32; NCAPINTS], feature: u32, on: bool) {
    let (w, b) = ((feature / 32) as usize, feature % 32);
    if on {
        words[w] |= 1 << b;
    } else {
        words[w] &= !(1 << b);
    }
}

/// This CPU, read with CPUID (unprivileged, no side effects).
pub fn probe() -> Result<CpuInfo, CpuError> {
    let l0 = __cpuid(0);
    let level = l0.eax;
    let mut vendor_id = [0u8; 12];
    vendor_id[..4].copy_from_slice(&l0.ebx.to_le_bytes());
    vendor_id[4..8].copy_from_slice(&l0.edx.to_le_bytes());
    vendor_id[8..].copy_from_slice(&l0.ecx.to_le_bytes());
    let vendor = match &vendor_id {
        b"GenuineIntel" => Vendor::Intel,
        b"AuthenticAMD" | b"HygonGenuine" => Vendor::Amd,
        _ => return Err(CpuError::UnsupportedVendor(vendor_id)),
    };
    let mut c = CpuInfo {
        vendor,
        family: 4,
        model: 0,
        stepping: 0,
        capability: [0; NCAPINTS],
        model_id: [0; 48],
        xfeatures_mask: 0,
        xsave_size: 0,
        xsave_size_max: 0,
    };
    let w = &mut c.capability;
    if level >= 1 {
        let r = __cpuid(1);
        c.family = (r.eax >> 8) & 0xf;
        c.model = (r.eax >> 4) & 0xf;
        c.stepping = r.eax & 0xf;
        if c.family == 0xf {
            c.family += (r.eax >> 20) & 0xff;
        }
        if c.family >= 6 {
            c.model += ((r.eax >> 16) & 0xf) << 4;
        }
        w[word::CPUID_1_EDX] = r.edx;
        w[word::CPUID_1_ECX] = r.ecx;
    }
    if level >= 6 {
        w[word::CPUID_6_EAX] = __cpuid(6).eax;
    }
    if level >= 7 {
        let r = __cpuid_count(7, 0);
        w[word::CPUID_7_0_EBX] = r.ebx;
        w[word::CPUID_7_0_ECX] = r.ecx;
        w[word::CPUID_7_0_EDX] = r.edx;
    }
    if level >= 0xd {
        w[word::CPUID_D_1_EAX] = __cpuid_count(0xd, 1).eax;
    }
    if level >= 0xf {
        w[word::CPUID_F_0_EDX] = __cpuid_count(0xf, 0).edx;
        if has(w, feature::CQM_LLC) {
            w[word::CPUID_F_1_EDX] = __cpuid_count(0xf, 1).edx;
        }
    }
    let ext = __cpuid(0x8000_0000).eax;
    if ext & 0xffff_0000 == 0x8000_0000 && ext >= 0x8000_0001 {
        let r = __cpuid(0x8000_0001);
        w[word::CPUID_8000_0001_ECX] = r.ecx;
        w[word::CPUID_8000_0001_EDX] = r.edx;
    }
    if ext >= 0x8000_0004 {
        let mut raw = [0u8; 48];
        for (i, leaf) in (0x8000_0002..=0x8000_0004u32).enumerate() {
            let r = __cpuid(leaf);
            for (j, v) in [r.eax, r.ebx, r.ecx, r.edx].iter().enumerate() {
                let at = i * 16 + j * 4;
                raw[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        let skip = raw.iter().take_while(|&&b| b == b' ').count();
        c.model_id[..48 - skip].copy_from_slice(&raw[skip..]);
    }
    if ext >= 0x8000_0007 {
        w[word::CPUID_8000_0007_EBX] = __cpuid(0x8000_0007).ebx;
    }
    if ext >= 0x8000_000a {
        w[word::CPUID_8000_000A_EDX] = __cpuid(0x8000_000a).edx;
    }
    if ext >= 0x8000_0008 {
        w[word::CPUID_8000_0008_EBX] = __cpuid(0x8000_0008).ebx;
    }
    // Always there on x86_64, as compel (and the kernel) say.
    set(w, feature::CPUID, true);
    set(w, feature::NOPL, true);
    if level < 0xd {
        set(w, feature::XSAVE, false);
    }
    match vendor {
        Vendor::Intel if c.family == 15 => {
            set(w, feature::REP_GOOD, false);
            set(w, feature::ERMS, false);
        }
        Vendor::Intel if c.family == 6 => set(w, feature::REP_GOOD, true),
        Vendor::Intel => {}
        Vendor::Amd => {
            // Bit 31 of leaf 1 EDX is a non-standard 3DNow flag there.
            set(w, 31, false);
            if c.family >= 0x10 {
                set(w, feature::REP_GOOD, true);
            }
            if c.family == 0xf {
                let sig = __cpuid(1).eax;
                if (0x0f48..0x0f50).contains(&sig) || sig >= 0x0f58 {
                    set(w, feature::REP_GOOD, true);
                }
            }
        }
    }
    probe_xsave(&mut c)?;
    Ok(c)
}

/// The XSAVE part (compel's `compel_fpuid`).
fn probe_xsave(c: &mut CpuInfo) -> Result<(), CpuError> {
    if !c.has(feature::FPU) {
        return Err(CpuError::NoFpu);
    }
    if !c.has(feature::XSAVE) {
        return Ok(());
    }
    let r = __cpuid_count(0xd, 0);
    let mut mask = u64::from(r.eax) | u64::from(r.edx) << 32;
    if mask & 0b11 != 0b11 {
        return Err(CpuError::NoFpSse(mask));
    }
    for (i, &f) in XSAVE_COMPONENT_FEATURE.iter().enumerate() {
        if !c.has(f) {
            mask &= !(1 << i);
        }
    }
    c.xfeatures_mask = mask & RECORDED_XFEATURES;
    c.xsave_size = r.ebx;
    c.xsave_size_max = r.ecx;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ins_mask_words_match_criu() {
        // CRIU's x86_ins_capability_mask (criu/arch/x86/cpu.c), summed up.
        assert_eq!(INS_CAPABILITY_MASK[word::CPUID_1_EDX], 0x0788_8911);
        assert_eq!(INS_CAPABILITY_MASK[word::CPUID_D_1_EAX], 0x7);
        assert_eq!(INS_CAPABILITY_MASK[word::CPUID_7_0_EDX], 0xc);
    }

    #[test]
    fn this_cpu_has_an_fpu_and_sse() {
        let c = probe().expect("x86_64 CPUs are Intel or AMD here");
        assert!(c.has(feature::FPU) && c.has(feature::FXSR) && c.has(feature::XMM));
        assert!(c.has(feature::CPUID) && c.has(feature::NOPL));
        if c.has(feature::XSAVE) {
            assert_ne!(c.xfeatures_mask & 1, 0);
            assert!(c.xsave_size >= 576 && c.xsave_size <= c.xsave_size_max);
        }
    }
}
