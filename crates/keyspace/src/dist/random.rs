//! twemproxy's random distribution: any live server, uniformly, ignoring weights.

use super::{from_stored, to_stored, NodeIndex};
use crate::node::Node;

#[derive(Debug, Clone)]
pub(super) struct Random {
    live: Box<[NodeIndex]>,
}

impl Random {
    pub(super) fn build(live: &[(usize, &Node)]) -> Random {
        Random {
            live: live.iter().map(|&(index, _)| to_stored(index)).collect(),
        }
    }

    pub(super) fn pick(&self) -> Option<usize> {
        if self.live.is_empty() {
            return None;
        }
        from_stored(*self.live.get(fastrand::usize(..self.live.len()))?)
    }
}
