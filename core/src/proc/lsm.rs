//! Linux security module labels: which LSM labels tasks here (CRIU's
//! `kerndat_lsm`, recorded as `lsmtype` in the inventory) and a task's
//! label (`/proc/PID/attr/...`, recorded per thread in `creds.lsm_profile`
//! as CRIU's `dump_lsm_profile` does).

use std::path::Path;

use rustix::io::Errno;

use super::ProcDir;
use super::error::ProcError;

/// The LSM that labels tasks, as far as images can say (`lsmtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lsm {
    /// No labelling LSM (`lockdown`, `capability`, `landlock`, `yama`,
    /// `bpf` label nothing a restore must put back).
    None,
    AppArmor,
    SeLinux,
}

impl Lsm {
    /// The LSM active on this machine. AppArmor and SELinux are found by
    /// their filesystems, like CRIU (`/sys/kernel/security/apparmor`,
    /// `/sys/fs/selinux`), and by the securityfs list of active LSMs where
    /// securityfs is mounted; AppArmor also by its own `/proc` attribute
    /// directory, which exists only while it is active.
    pub fn active() -> Lsm {
        let listed = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
        let listed = |name: &str| listed.trim().split(',').any(|l| l == name);
        if listed("apparmor")
            || Path::new("/sys/kernel/security/apparmor").exists()
            || Path::new("/proc/self/attr/apparmor/current").exists()
        {
            Lsm::AppArmor
        } else if listed("selinux") || Path::new("/sys/fs/selinux/enforce").exists() {
            Lsm::SeLinux
        } else {
            Lsm::None
        }
    }

    /// CRIU's name for it in messages.
    pub fn name(self) -> &'static str {
        match self {
            Lsm::None => "no LSM",
            Lsm::AppArmor => "AppArmor",
            Lsm::SeLinux => "SELinux",
        }
    }
}

/// The AppArmor label of an unconfined task.
pub const APPARMOR_UNCONFINED: &str = "unconfined";

/// What a task's label file says, trimmed of the trailing newline and NUL.
fn trim_label(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.trim_end_matches(['\n', '\0']).to_string()
}

/// The label as CRIU records it in `creds.lsm_profile`: AppArmor's profile
/// name without its mode (`name (enforce)` → `name`), none for an
/// unconfined task; SELinux's whole context.
pub fn profile_for_image(lsm: Lsm, label: &str) -> Option<String> {
    match lsm {
        Lsm::None => None,
        Lsm::AppArmor => {
            let name = label.split(" (").next().unwrap_or(label);
            (name != APPARMOR_UNCONFINED).then(|| name.to_string())
        }
        Lsm::SeLinux => Some(label.to_string()),
    }
}

impl ProcDir {
    /// This task's (or thread's) label under `lsm`, as the kernel prints
    /// it; `None` without a labelling LSM.
    pub fn lsm_label(&self, lsm: Lsm) -> Result<Option<String>, ProcError> {
        let name = match lsm {
            Lsm::None => return Ok(None),
            // Stacking kernels give AppArmor its own directory.
            Lsm::AppArmor => match self.read_small("attr/apparmor/current") {
                Ok(b) => return Ok(Some(trim_label(&b))),
                Err(e) if e.errno() == Some(Errno::NOENT) => "attr/current",
                Err(e) => return Err(e),
            },
            Lsm::SeLinux => "attr/current",
        };
        self.read_small(name).map(|b| Some(trim_label(&b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_as_images_hold_them() {
        assert_eq!(profile_for_image(Lsm::AppArmor, "unconfined"), None);
        assert_eq!(
            profile_for_image(Lsm::AppArmor, "docker-default (enforce)"),
            Some("docker-default".into())
        );
        assert_eq!(
            profile_for_image(Lsm::SeLinux, "system_u:system_r:container_t:s0"),
            Some("system_u:system_r:container_t:s0".into())
        );
        assert_eq!(profile_for_image(Lsm::None, "x"), None);
        assert_eq!(trim_label(b"unconfined\n"), "unconfined");
        assert_eq!(trim_label(b"ctx\0"), "ctx");
    }

    #[test]
    fn this_machine_answers() {
        let lsm = Lsm::active();
        let me = ProcDir::open_self().unwrap();
        let label = me.lsm_label(lsm).unwrap();
        assert_eq!(label.is_some(), lsm != Lsm::None, "{lsm:?}");
    }
}
