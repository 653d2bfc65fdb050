//! ppc64 and s390x: the kernel's hardware capabilities (`AT_HWCAP`,
//! `AT_HWCAP2`), as CRIU records them. The check refuses an image with a
//! capability this CPU lacks. CRIU's s390x check is exactly that; on ppc64
//! CRIU compares a named list of capabilities (and requires some in the
//! image), so this check is stricter there: any capability of the image
//! counts. The names of the bits are not repeated here (they would be
//! hand-copied kernel constants); the message gives word and bit.

use super::CpuinfoError;
use crate::images::pb;
use crate::opts::CpuCap;

pub const RECORDS: bool = true;

fn host() -> [u64; 2] {
    let (a, b) = rustix::param::linux_hwcap();
    [a as u64, b as u64]
}

#[cfg(target_arch = "powerpc64")]
pub fn describe() -> Result<Option<pb::CpuinfoEntry>, CpuinfoError> {
    let endian = if cfg!(target_endian = "little") {
        pb::cpuinfo_ppc64_entry::Endianness::Littleendian
    } else {
        pb::cpuinfo_ppc64_entry::Endianness::Bigendian
    };
    Ok(Some(pb::CpuinfoEntry {
        ppc64_entry: vec![pb::CpuinfoPpc64Entry {
            endian: endian as i32,
            hwcap: host().to_vec(),
        }],
        ..Default::default()
    }))
}

#[cfg(target_arch = "s390x")]
pub fn describe() -> Result<Option<pb::CpuinfoEntry>, CpuinfoError> {
    Ok(Some(pb::CpuinfoEntry {
        s390_entry: vec![pb::CpuinfoS390Entry {
            hwcap: host().to_vec(),
        }],
        ..Default::default()
    }))
}

/// The image's hwcap words, with CRIU's messages for a wrong image.
#[cfg(target_arch = "powerpc64")]
fn image_hwcap(e: &pb::CpuinfoEntry) -> Result<&[u64], CpuinfoError> {
    let [p] = e.ppc64_entry.as_slice() else {
        return Err(CpuinfoError::BadImage(
            "No PPC64 related entry in image".into(),
        ));
    };
    let ours = if cfg!(target_endian = "little") {
        pb::cpuinfo_ppc64_entry::Endianness::Littleendian
    } else {
        pb::cpuinfo_ppc64_entry::Endianness::Bigendian
    };
    if p.endian != ours as i32 {
        return Err(CpuinfoError::BadImage("Bad endianness".into()));
    }
    Ok(&p.hwcap)
}

#[cfg(target_arch = "s390x")]
fn image_hwcap(e: &pb::CpuinfoEntry) -> Result<&[u64], CpuinfoError> {
    let [s] = e.s390_entry.as_slice() else {
        return Err(CpuinfoError::BadImage(
            "No S390 related entry in image".into(),
        ));
    };
    Ok(&s.hwcap)
}

pub fn validate(e: &pb::CpuinfoEntry, _: CpuCap) -> Result<(), CpuinfoError> {
    let img = image_hwcap(e)?;
    if img.len() != 2 {
        return Err(CpuinfoError::BadImage(
            "Hardware capabilities information missing".into(),
        ));
    }
    let host = host();
    for (nr, (&want, &have)) in img.iter().zip(host.iter()).enumerate() {
        let missing = want & !have;
        if missing != 0 {
            let bit = missing.trailing_zeros();
            return Err(CpuinfoError::Mismatch(format!(
                "CPU Feature {nr}/{:#x} not supported on host",
                1u64 << bit
            )));
        }
    }
    Ok(())
}
