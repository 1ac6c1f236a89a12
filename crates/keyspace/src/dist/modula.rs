//! twemproxy's modula (`nc_modula.c`): each live server appears `weight` times, in
//! twemproxy's server order (see `twemproxy_order`); the owner of a key is entry
//! `hash % entries`.

use super::{from_stored, to_stored, NodeIndex};
use crate::node::Node;

#[derive(Debug, Clone)]
pub(super) struct Modula {
    entries: Box<[NodeIndex]>,
}

impl Modula {
    pub(super) fn build(live: &[(usize, &Node)]) -> Modula {
        let entries = live
            .iter()
            .flat_map(|&(index, node)| {
                std::iter::repeat_n(to_stored(index), node.effective_weight() as usize)
            })
            .collect();
        Modula { entries }
    }

    pub(super) fn locate(&self, hash: u32) -> Option<usize> {
        let len = u32::try_from(self.entries.len()).ok().filter(|&l| l > 0)?;
        let at = usize::try_from(hash % len).ok()?;
        from_stored(*self.entries.get(at)?)
    }
}
