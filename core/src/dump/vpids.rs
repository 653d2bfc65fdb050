//! Outer PIDs (criu's namespace) to PIDs in the tree's own pid namespace,
//! for the images (see [`super::pidns`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::DumpError;

/// Outer PID → PID in the tree's namespace, for every task and thread of
/// the tree (`None`: the identity).
#[derive(Clone, Debug, Default)]
pub struct VPids(Option<Arc<HashMap<i32, i32>>>);

impl VPids {
    /// Outer PID → PID inside, for every task and thread of the tree.
    pub fn from_map(map: HashMap<i32, i32>) -> VPids {
        VPids(Some(Arc::new(map)))
    }

    /// Whether the tree is in criu's own pid namespace.
    pub fn is_identity(&self) -> bool {
        self.0.is_none()
    }

    /// The PID `outer` has in the tree's namespace, if it has one there.
    pub fn get(&self, outer: i32) -> Option<i32> {
        match &self.0 {
            None => Some(outer),
            Some(m) => m.get(&outer).copied(),
        }
    }

    /// [`VPids::get`] of a task or thread of the tree (which always has
    /// one; an unknown PID stays as it is).
    pub fn of(&self, outer: i32) -> i32 {
        self.get(outer).unwrap_or(outer)
    }

    /// `outer`, named by `what`, in the tree's namespace, or refused.
    pub fn inside(&self, outer: i32, what: impl FnOnce() -> String) -> Result<i32, DumpError> {
        self.get(outer).ok_or_else(|| DumpError::OutsidePidNs {
            what: what(),
            pid: outer,
        })
    }
}
