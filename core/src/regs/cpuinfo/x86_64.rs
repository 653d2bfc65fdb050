//! x86_64: CRIU's CPUID capability words and XSAVE layout
//! (`criu/arch/x86/cpu.c`), from [`criu_arch::cpu`].

use criu_arch::cpu::{self, CpuInfo, NCAPINTS, NCAPINTS_V1, Vendor, feature};

use super::CpuinfoError;
use crate::images::pb::{self, cpuinfo_x86_entry::Vendor as PbVendor};
use crate::opts::CpuCap;

pub const RECORDS: bool = true;

/// The capability layout CRIU writes (`capability_ver`).
const CAPABILITY_VER: u32 = 2;

fn host() -> Result<CpuInfo, CpuinfoError> {
    cpu::probe().map_err(|e| {
        CpuinfoError::Host(match e {
            cpu::CpuError::UnsupportedVendor(v) => {
                format!("Unsupported CPU vendor {}", String::from_utf8_lossy(&v))
            }
            cpu::CpuError::NoFpu => "fpu: No FPU detected".into(),
            cpu::CpuError::NoFpSse(m) => {
                format!("fpu: FP/SSE not present amongst the CPU's xstate features: {m:#x}")
            }
        })
    })
}

pub fn describe() -> Result<Option<pb::CpuinfoEntry>, CpuinfoError> {
    let c = host()?;
    let model_id = String::from_utf8_lossy(&c.model_id)
        .trim_end_matches('\0')
        .to_owned();
    let x86 = pb::CpuinfoX86Entry {
        vendor_id: match c.vendor {
            Vendor::Intel => PbVendor::Intel,
            Vendor::Amd => PbVendor::Amd,
        } as i32,
        cpu_family: c.family,
        model: c.model,
        stepping: c.stepping,
        capability_ver: CAPABILITY_VER,
        capability: c.capability.to_vec(),
        model_id: (!model_id.is_empty()).then_some(model_id),
        xfeatures_mask: Some(c.xfeatures_mask),
        xsave_size: Some(c.xsave_size),
        xsave_size_max: Some(c.xsave_size_max),
    };
    Ok(Some(pb::CpuinfoEntry {
        x86_entry: vec![x86],
        ..Default::default()
    }))
}

/// The image's CPU, with what it does not say taken from this one
/// (CRIU's `img_to_cpuinfo`: a version-1 image has fewer words, an old one
/// no XSAVE fields).
fn image_cpu(e: &pb::CpuinfoEntry, host: &CpuInfo) -> Result<CpuInfo, CpuinfoError> {
    let bad = |m: String| Err(CpuinfoError::BadImage(m));
    let [x] = e.x86_entry.as_slice() else {
        return bad(format!(
            "No x86 related cpuinfo in image, corruption (n_x86_entry = {})",
            e.x86_entry.len()
        ));
    };
    let vendor = match PbVendor::try_from(x.vendor_id) {
        Ok(PbVendor::Intel) => Vendor::Intel,
        Ok(PbVendor::Amd) => Vendor::Amd,
        _ => return bad(format!("Unknown cpu vendor {}", x.vendor_id)),
    };
    let words = match x.capability_ver {
        1 => NCAPINTS_V1,
        2 => NCAPINTS,
        v => return bad(format!("Image carries unknown capability version {v}")),
    };
    if x.capability.len() != words {
        return bad(format!(
            "Image carries {} words while {words} expected",
            x.capability.len()
        ));
    }
    let mut capability = host.capability;
    capability[..words].copy_from_slice(&x.capability);
    Ok(CpuInfo {
        vendor,
        family: x.cpu_family,
        model: x.model,
        stepping: x.stepping,
        capability,
        model_id: host.model_id,
        xfeatures_mask: x.xfeatures_mask.unwrap_or(host.xfeatures_mask),
        xsave_size: x.xsave_size.unwrap_or(host.xsave_size),
        xsave_size_max: x.xsave_size_max.unwrap_or(host.xsave_size_max),
    })
}

pub fn validate(e: &pb::CpuinfoEntry, cap: CpuCap) -> Result<(), CpuinfoError> {
    let host = host()?;
    let img = image_cpu(e, &host)?;
    check(&img, &host, cap)
}

/// CRIU's `cpu_validate_features`: the saved task's CPU against this one.
fn check(img: &CpuInfo, host: &CpuInfo, cap: CpuCap) -> Result<(), CpuinfoError> {
    let mismatch = |m: String| Err(CpuinfoError::Mismatch(m));
    if cap.0 & CpuCap::FPU != 0 {
        let lacks = |f: u32| u8::from(img.has(f) && !host.has(f));
        let [fpu, fxsr, osxsave, xsaves] = [
            feature::FPU,
            feature::FXSR,
            feature::OSXSAVE,
            feature::XSAVES,
        ]
        .map(lacks);
        if fpu + fxsr + osxsave + xsaves != 0 {
            return mismatch(format!(
                "FPU feature required by image is not supported on host \
                 (fpu:{fpu} fxsr:{fxsr} osxsave:{osxsave} xsaves:{xsaves})"
            ));
        }
        let extra = img.xfeatures_mask & !host.xfeatures_mask;
        if extra != 0 {
            return mismatch(format!("CPU xfeatures has unsupported bits ({extra:#x})"));
        }
        if img.xsave_size != host.xsave_size {
            return mismatch(format!(
                "CPU xsave size mismatch ({}/{})",
                img.xsave_size, host.xsave_size
            ));
        }
        if img.xsave_size_max != host.xsave_size_max {
            return mismatch(format!(
                "CPU xsave max size mismatch ({}/{})",
                img.xsave_size_max, host.xsave_size_max
            ));
        }
    }
    if cap.0 & CpuCap::INS != 0 {
        let lacking = (0..NCAPINTS).any(|i| {
            let m = cpu::INS_CAPABILITY_MASK[i];
            img.capability[i] & m & !(host.capability[i] & m) != 0
        });
        if lacking {
            return mismatch("CPU instruction capabilities do not match run time".into());
        }
    }
    if cap.0 & CpuCap::CPU != 0 && img.capability != host.capability {
        return mismatch("CPU capabilities do not match run time".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this() -> CpuInfo {
        host().expect("this CPU")
    }

    #[test]
    fn this_cpu_matches_itself_in_every_mode() {
        let e = describe().unwrap().unwrap();
        for cap in [CpuCap::FPU, CpuCap::INS, CpuCap::CPU, CpuCap::ALL] {
            validate(&e, CpuCap(cap | CpuCap::IMAGE)).unwrap();
        }
    }

    #[test]
    fn a_missing_fpu_feature_or_xsave_component_is_refused() {
        let host = this();
        let fpu = CpuCap(CpuCap::FPU);
        let mut img = host;
        // A task dumped on a CPU with XSAVES, restored on one without.
        img.capability[10] |= 1 << 3;
        let mut without = host;
        without.capability[10] &= !(1 << 3);
        let e = check(&img, &without, fpu).unwrap_err().to_string();
        assert_eq!(
            e,
            "cpu: FPU feature required by image is not supported on host \
             (fpu:0 fxsr:0 osxsave:0 xsaves:1)"
        );
        let mut img = host;
        img.xfeatures_mask |= 1 << 9;
        let mut without = host;
        without.xfeatures_mask &= !(1 << 9);
        let e = check(&img, &without, fpu).unwrap_err().to_string();
        assert_eq!(e, "cpu: CPU xfeatures has unsupported bits (0x200)");
        let mut img = host;
        img.xsave_size += 64;
        let e = check(&img, &host, fpu).unwrap_err().to_string();
        assert!(e.starts_with("cpu: CPU xsave size mismatch"), "{e}");
    }

    #[test]
    fn instructions_may_be_more_but_not_fewer() {
        let host = this();
        let ins = CpuCap(CpuCap::INS);
        let mut fewer = host;
        fewer.capability[9] &= !(1 << 5);
        // Restoring on a richer CPU is fine, the other way round is not.
        check(&fewer, &host, ins).unwrap();
        if host.has(9 * 32 + 5) {
            let e = check(&host, &fewer, ins).unwrap_err().to_string();
            assert_eq!(e, "cpu: CPU instruction capabilities do not match run time");
        }
        let e = check(&fewer, &host, CpuCap(CpuCap::CPU));
        assert!(host.has(9 * 32 + 5) == e.is_err());
    }

    #[test]
    fn bad_images() {
        let host = this();
        let mut e = describe().unwrap().unwrap();
        e.x86_entry[0].capability.pop();
        let err = validate(&e, CpuCap(CpuCap::ALL)).unwrap_err().to_string();
        assert_eq!(err, "cpu: Image carries 18 words while 19 expected");
        e.x86_entry[0].capability_ver = 7;
        let err = validate(&e, CpuCap(CpuCap::ALL)).unwrap_err().to_string();
        assert_eq!(err, "cpu: Image carries unknown capability version 7");
        let v1 = pb::CpuinfoEntry {
            x86_entry: vec![pb::CpuinfoX86Entry {
                capability_ver: 1,
                capability: host.capability[..NCAPINTS_V1].to_vec(),
                xfeatures_mask: None,
                ..describe().unwrap().unwrap().x86_entry[0].clone()
            }],
            ..Default::default()
        };
        validate(&v1, CpuCap(CpuCap::ALL)).unwrap();
        let none = pb::CpuinfoEntry::default();
        let err = validate(&none, CpuCap(CpuCap::FPU))
            .unwrap_err()
            .to_string();
        assert!(err.contains("n_x86_entry = 0"), "{err}");
    }
}
