//! Redis Cluster key slots: CRC16-XMODEM & 0x3FFF, and an even split of the 16384 slots
//! over the live nodes in node order.

use super::{from_stored, to_stored, NodeIndex};
use crate::hash::crc16_xmodem;
use crate::node::Node;
use crate::tag::HashTag;

/// Number of Redis Cluster slots.
pub const SLOT_COUNT: u16 = 16384;

/// The slot of an already tag-extracted key.
#[inline]
pub(super) fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(key) & (SLOT_COUNT - 1)
}

/// Redis Cluster's key slot: CRC16-XMODEM of the hash tag (or of the whole key) & 0x3FFF,
/// with Cluster's `{...}` rule applied here.
pub fn cluster_slot(key: &[u8]) -> u16 {
    key_slot(HashTag::Cluster.apply(key))
}

#[derive(Debug, Clone)]
pub(super) struct Slots {
    owners: Box<[NodeIndex]>,
}

impl Slots {
    /// Live node `i` of `n` gets slots `[i * 16384 / n, (i + 1) * 16384 / n)`.
    pub(super) fn build(live: &[(usize, &Node)]) -> Slots {
        let n = live.len();
        let slots = usize::from(SLOT_COUNT);
        let owners = (0..slots)
            .map(|slot| {
                // Largest i with i * slots / n <= slot, i.e. the range holding `slot`.
                let i = ((slot + 1) * n - 1) / slots;
                live.get(i)
                    .map_or(NodeIndex::MAX, |&(index, _)| to_stored(index))
            })
            .collect();
        Slots { owners }
    }

    /// Slots owned as a cluster's slot map says: `owners[slot]`, None for
    /// a slot no node serves. Missing entries own nothing.
    pub(super) fn from_owners(owners: &[Option<usize>]) -> Slots {
        let owners = (0..usize::from(SLOT_COUNT))
            .map(|slot| match owners.get(slot).copied().flatten() {
                Some(index) => to_stored(index),
                None => NodeIndex::MAX,
            })
            .collect();
        Slots { owners }
    }

    pub(super) fn owner(&self, slot: u16) -> Option<usize> {
        from_stored(*self.owners.get(usize::from(slot))?)
    }
}

#[cfg(test)]
mod tests {
    use super::{cluster_slot, Slots};
    use crate::node::Node;

    #[test]
    fn known_slots() {
        assert_eq!(cluster_slot(b"foo"), 12182);
        assert_eq!(cluster_slot(b"foo{}{bar}"), 8363);
        assert_eq!(cluster_slot(b"foo{{bar}}zap"), 4015);
        assert_eq!(cluster_slot(b"foo{bar}{zap}"), 5061);
        assert_eq!(
            cluster_slot(b"{user1000}.following"),
            cluster_slot(b"user1000")
        );
    }

    #[test]
    fn a_cluster_map_owns_slots_as_given_and_unserved_slots_locate_nowhere() {
        let mut owners = vec![None; 16384];
        owners[12182] = Some(2);
        owners[0] = Some(0);
        let d = crate::Distribution::from_slot_owners(&owners);
        assert_eq!(d.locate(b"foo"), Some(2));
        assert_eq!(d.slot_owner(0), Some(0));
        assert_eq!(d.slot_owner(1), None);
        assert_eq!(d.live_count(), 2);
        // A short table: the rest is unserved.
        let d = crate::Distribution::from_slot_owners(&[Some(1)]);
        assert_eq!(d.slot_owner(0), Some(1));
        assert_eq!(d.slot_owner(16383), None);
    }

    #[test]
    fn ranges_follow_the_formula() {
        for n in 1..=7usize {
            let nodes: Vec<Node> = (0..n).map(|i| Node::new(format!("n{i}"), 1)).collect();
            let live: Vec<_> = nodes.iter().enumerate().collect();
            let s = Slots::build(&live);
            for i in 0..n {
                let lo = i * 16384 / n;
                let hi = (i + 1) * 16384 / n;
                for slot in lo..hi {
                    assert_eq!(s.owner(slot as u16), Some(i), "n={n} slot={slot}");
                }
            }
        }
    }
}
