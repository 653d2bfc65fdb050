//! `/proc/PID/cgroup`: `HIERARCHY:CONTROLLERS:PATH` lines; cgroup v2 is
//! `0::PATH`. The path may itself contain `:`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::error::{ParseError, ProcError, TextError};
use super::text::dec_u32;
use super::{MAX_ENTRIES, ProcDir};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLine {
    pub hierarchy: u32,
    /// Controllers (`cpu`, `cpuacct`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

/// Parse cgroup text.
pub fn parse(text: &[u8]) -> Result<Vec<CgroupLine>, TextError> {
    let mut out = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let at = |e| TextError::new(i + 1, e);
        if out.len() >= MAX_ENTRIES {
            return Err(at(ParseError::TooMany(MAX_ENTRIES)));
        }
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(h), Some(c), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(at(ParseError::bad("cgroup line", line)));
        };
        out.push(CgroupLine {
            hierarchy: dec_u32("hierarchy", h).map_err(at)?,
            controllers: c
                .split(|&b| b == b',')
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
            path: PathBuf::from(OsString::from_vec(p.to_vec())),
        });
    }
    Ok(out)
}

impl ProcDir {
    /// Read and parse `cgroup`.
    pub fn cgroup(&self) -> Result<Vec<CgroupLine>, ProcError> {
        let text = self.read_small("cgroup")?;
        parse(&text).map_err(|e| e.in_file(self.path_of("cgroup")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2() {
        let c = parse(b"4:cpu,cpuacct:/a:b\n2:name=systemd:/user.slice\n0::/\n").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(c[0].path, PathBuf::from("/a:b"));
        assert_eq!(c[1].controllers, ["name=systemd"]);
        assert_eq!((c[2].hierarchy, c[2].controllers.len()), (0, 0));
        assert!(parse(b"x::/\n").is_err());
        assert!(parse(b"1:cpu\n").is_err());
    }
}
