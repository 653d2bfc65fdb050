//! The UTS namespace: host name and NIS domain name (`utsns-ID.img`).

use std::ffi::CStr;

use crate::images::{ImageDir, Kind, pb};

use super::NsError;

/// The calling thread's UTS namespace, as `utsns_entry`.
pub fn read_current() -> pb::UtsnsEntry {
    let u = rustix::system::uname();
    let text = |c: &CStr| String::from_utf8_lossy(c.to_bytes()).into_owned();
    pb::UtsnsEntry {
        nodename: text(u.nodename()),
        domainname: text(u.domainname()),
    }
}

/// Write `utsns-ID.img`.
pub fn write(dir: &ImageDir, id: u32, e: &pb::UtsnsEntry) -> Result<(), NsError> {
    dir.write_one(Kind::Utsns, u64::from(id), e)?;
    Ok(())
}

/// Read `utsns-ID.img`, checked against what the kernel takes (at most
/// 64 bytes each, `__NEW_UTS_LEN`).
pub fn read(dir: &ImageDir, id: u32) -> Result<pb::UtsnsEntry, NsError> {
    let e: pb::UtsnsEntry = dir.read_one(Kind::Utsns, u64::from(id))?;
    for (what, name) in [("nodename", &e.nodename), ("domainname", &e.domainname)] {
        if name.len() > 64 || name.contains('\0') {
            return Err(NsError::Invalid {
                file: Kind::Utsns.file_name(u64::from(id)),
                what: format!("{what} {name:?} is no UTS name (at most 64 bytes, no NUL)"),
            });
        }
    }
    Ok(e)
}

/// Give the calling thread's UTS namespace these names.
pub fn restore_current(e: &pb::UtsnsEntry) -> Result<(), NsError> {
    rustix::system::sethostname(e.nodename.as_bytes())
        .map_err(NsError::sys(format!("sethostname({:?})", e.nodename)))?;
    rustix::system::setdomainname(e.domainname.as_bytes())
        .map_err(NsError::sys(format!("setdomainname({:?})", e.domainname)))?;
    Ok(())
}
