//! TEMPORARY development stand-in (GNU tar); replaced by the real module.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};

#[derive(Debug, thiserror::Error)]
pub enum TmpfsError {
    #[error("tar: {0}")]
    Tar(String),
}

#[derive(Debug, Default)]
pub struct TmpfsStats {
    pub bytes: u64,
}

pub fn image_name(dev: u64) -> String {
    format!("tmpfs-dev-{dev}.tar.gz.img")
}

pub fn dump(dir: BorrowedFd<'_>, out: &mut impl Write) -> Result<TmpfsStats, TmpfsError> {
    let d = format!("/proc/{}/fd/{}", std::process::id(), dir.as_raw_fd());
    let o = std::process::Command::new("tar")
        .args([
            "--create",
            "--gzip",
            "--no-unquote",
            "--no-wildcards",
            "--one-file-system",
        ])
        .args([
            "--check-links",
            "--preserve-permissions",
            "--sparse",
            "--numeric-owner",
        ])
        .args(["--directory", &d, "."])
        .output()
        .map_err(|e| TmpfsError::Tar(e.to_string()))?;
    if !o.status.success() {
        return Err(TmpfsError::Tar(String::from_utf8_lossy(&o.stderr).into()));
    }
    out.write_all(&o.stdout)
        .map_err(|e| TmpfsError::Tar(e.to_string()))?;
    Ok(TmpfsStats {
        bytes: o.stdout.len() as u64,
    })
}

pub fn restore(dir: BorrowedFd<'_>, mut input: impl Read) -> Result<TmpfsStats, TmpfsError> {
    let d = format!("/proc/{}/fd/{}", std::process::id(), dir.as_raw_fd());
    let mut data = Vec::new();
    input
        .read_to_end(&mut data)
        .map_err(|e| TmpfsError::Tar(e.to_string()))?;
    let mut c = std::process::Command::new("tar")
        .args([
            "--extract",
            "--gzip",
            "--no-unquote",
            "--no-wildcards",
            "--directory",
            &d,
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| TmpfsError::Tar(e.to_string()))?;
    c.stdin
        .take()
        .unwrap()
        .write_all(&data)
        .map_err(|e| TmpfsError::Tar(e.to_string()))?;
    let st = c.wait().map_err(|e| TmpfsError::Tar(e.to_string()))?;
    if !st.success() {
        return Err(TmpfsError::Tar(format!("{st}")));
    }
    Ok(TmpfsStats {
        bytes: data.len() as u64,
    })
}
