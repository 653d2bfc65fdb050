//! The root task's own user namespace (`userns-ID.img`): its uid and gid
//! maps as criu's namespace sees them (`/proc/PID/uid_map`, CRIU's
//! `dump_user_ns`), and whether `setgroups` is denied in it.
//!
//! At restore the root is cloned with `CLONE_NEWUSER` (with the other
//! namespaces its clone flags make, which the new user namespace then
//! owns), and the tool writes the maps from outside before the root runs
//! on ([`restore`]): `setgroups` first (the kernel takes it only before
//! `gid_map`), then `uid_map` and `gid_map`. Credentials in `core-*.img`
//! are as the tasks see them inside (the parasite reads them there), as
//! CRIU writes them, so they are set again from inside.

use crate::images::{ImageDir, Kind, pb};

use super::NsError;

/// Up to this many extents a map may have (the kernel's limit since 4.15).
const MAX_EXTENTS: usize = 340;

/// Parse a `uid_map`/`gid_map` text (`FIRST LOWER_FIRST COUNT` a line).
pub fn parse_map(path: &str, text: &str) -> Result<Vec<pb::UidGidExtent>, NsError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let nums: Vec<u32> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| NsError::Parse {
                path: path.into(),
                text: line.into(),
            })?;
        let [first, lower_first, count] = nums[..] else {
            return Err(NsError::Parse {
                path: path.into(),
                text: line.into(),
            });
        };
        out.push(pb::UidGidExtent {
            first,
            lower_first,
            count,
        });
    }
    Ok(out)
}

/// The text the kernel takes for a map.
pub fn map_text(map: &[pb::UidGidExtent]) -> String {
    map.iter()
        .map(|e| format!("{} {} {}\n", e.first, e.lower_first, e.count))
        .collect()
}

/// Task `pid`'s user namespace, from criu's side.
pub fn read(pid: i32) -> Result<pb::UsernsEntry, NsError> {
    let file = |name: &str| {
        let path = format!("/proc/{pid}/{name}");
        std::fs::read_to_string(&path)
            .map(|t| (path.clone(), t))
            .map_err(|source| NsError::Sysctl { path, source })
    };
    let (up, ut) = file("uid_map")?;
    let (gp, gt) = file("gid_map")?;
    let (sp, st) = file("setgroups")?;
    let deny = match st.trim() {
        "deny" => true,
        "allow" => false,
        other => {
            return Err(NsError::Parse {
                path: sp,
                text: other.into(),
            });
        }
    };
    Ok(pb::UsernsEntry {
        uid_map: parse_map(&up, &ut)?,
        gid_map: parse_map(&gp, &gt)?,
        setgroups_deny: Some(deny),
    })
}

/// Write `userns-ID.img`.
pub fn write(dir: &ImageDir, id: u32, e: &pb::UsernsEntry) -> Result<(), NsError> {
    dir.write_one(Kind::Userns, u64::from(id), e)?;
    Ok(())
}

/// Read `userns-ID.img`, checked against what the kernel takes: at most
/// [`MAX_EXTENTS`] extents a map, none empty or wrapping past `u32::MAX`.
pub fn read_image(dir: &ImageDir, id: u32) -> Result<pb::UsernsEntry, NsError> {
    let e: pb::UsernsEntry = dir.read_one(Kind::Userns, u64::from(id))?;
    let file = || Kind::Userns.file_name(u64::from(id));
    for (what, map) in [("uid_map", &e.uid_map), ("gid_map", &e.gid_map)] {
        if map.len() > MAX_EXTENTS {
            return Err(NsError::Invalid {
                file: file(),
                what: format!(
                    "{what} has {} extents (the kernel takes {MAX_EXTENTS})",
                    map.len()
                ),
            });
        }
        for x in map {
            let fits = |start: u32| u64::from(start) + u64::from(x.count) <= 1 << 32;
            if x.count == 0 || !fits(x.first) || !fits(x.lower_first) {
                return Err(NsError::Invalid {
                    file: file(),
                    what: format!(
                        "{what} extent {} {} {} is no id range",
                        x.first, x.lower_first, x.count
                    ),
                });
            }
        }
    }
    Ok(e)
}

/// Give task `pid`'s new user namespace (it was cloned with
/// `CLONE_NEWUSER` and waits) the maps of `e`, from outside.
pub fn restore(pid: i32, e: &pb::UsernsEntry) -> Result<(), NsError> {
    let write = |name: &str, text: &str| {
        let path = format!("/proc/{pid}/{name}");
        std::fs::write(&path, text).map_err(|source| NsError::Sysctl { path, source })
    };
    if e.setgroups_deny == Some(true) {
        write("setgroups", "deny")?;
    }
    if !e.uid_map.is_empty() {
        write("uid_map", &map_text(&e.uid_map))?;
    }
    if !e.gid_map.is_empty() {
        write("gid_map", &map_text(&e.gid_map))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parse_as_the_kernel_prints_them() {
        let text = "         0     100000      65536\n     65536          0          1\n";
        let m = parse_map("uid_map", text).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].first, m[0].lower_first, m[0].count),
            (0, 100000, 65536)
        );
        assert_eq!(map_text(&m), "0 100000 65536\n65536 0 1\n");
        assert!(parse_map("uid_map", "0 1\n").is_err());
        assert!(parse_map("uid_map", "").unwrap().is_empty());
    }
}
