//! Seccomp is not restored yet: a task whose images say it ran under a
//! seccomp mode is refused by name before anything is created. Our own
//! dump refuses such a task, but CRIU dumps it (the mode in each thread's
//! core image, the filters in `seccomp.img`); restoring it without its
//! filters would lift its sandbox and exit 0 with state lost.

use super::RestoreError;
use crate::images::pb;

/// The seccomp mode `core` records (the per-thread field, or the older
/// per-task one), if it is one other than `disabled`.
fn mode(core: &pb::CoreEntry) -> Option<i32> {
    let thread = core.thread_core.as_ref().and_then(|t| t.seccomp_mode);
    let task = core.tc.as_ref().and_then(|t| t.old_seccomp_mode);
    [thread, task]
        .into_iter()
        .flatten()
        .find(|&m| m != pb::SeccompMode::Disabled as i32)
}

/// Refuses `core` (of thread `tid`, from image `file`) if it ran under
/// seccomp.
pub fn refuse(core: &pb::CoreEntry, tid: u32, file: &str) -> Result<(), RestoreError> {
    let Some(m) = mode(core) else { return Ok(()) };
    let name = pb::SeccompMode::try_from(m).map_or("unknown", |m| m.as_str_name());
    Err(RestoreError::Unsupported(format!(
        "{file}: thread {tid} ran under seccomp ({name} mode), which cannot be restored yet \
         (restoring it without its filters would lift its sandbox)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(thread: Option<i32>, task: Option<i32>) -> pb::CoreEntry {
        pb::CoreEntry {
            thread_core: Some(pb::ThreadCoreEntry {
                seccomp_mode: thread,
                ..Default::default()
            }),
            tc: Some(pb::TaskCoreEntry {
                old_seccomp_mode: task,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_seccomp_mode_is_refused() {
        assert!(refuse(&core(None, None), 7, "core-7.img").is_ok());
        assert!(refuse(&core(Some(0), Some(0)), 7, "core-7.img").is_ok());
        let e = refuse(&core(Some(2), None), 7, "core-7.img").unwrap_err();
        assert_eq!(
            e.to_string(),
            "core-7.img: thread 7 ran under seccomp (filter mode), which cannot be restored \
             yet (restoring it without its filters would lift its sandbox)"
        );
        let e = refuse(&core(None, Some(1)), 9, "core-9.img").unwrap_err();
        assert!(e.to_string().contains("(strict mode)"), "{e}");
    }
}
