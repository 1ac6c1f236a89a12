//! Maglev as Envoy builds it (`maglev_lb.cc`, `OriginalMaglevTable`).
//!
//! Hosts are sorted by key (here the ring name; ties by node order), each gets
//! `offset = xxh64(name, 0) % M` and `skip = xxh64(name, 1) % (M - 1) + 1`, and the table
//! is filled round by round: in round `r` a host takes its next free preferred entry
//! unless `r * weight < target`, where `target` grows by the largest weight each time the
//! host takes one. Weights are normalised to `weight / sum` in `f64`, as Envoy does, so
//! the comparisons round the same way. A key goes to `table[hash % M]`.

use super::{from_stored, to_stored, NodeIndex};
use crate::node::Node;
use xxhash_rust::xxh64::xxh64;

/// Envoy's default (and the Maglev paper's recommended) table size; a prime.
pub const MAGLEV_TABLE_SIZE: u64 = 65537;

const EMPTY: NodeIndex = NodeIndex::MAX;

#[derive(Debug, Clone)]
pub(super) struct Maglev {
    table: Box<[NodeIndex]>,
}

struct Entry {
    node: NodeIndex,
    offset: u64,
    skip: u64,
    weight: f64,
    target: f64,
    next: u64,
}

impl Entry {
    fn permutation(&self, size: u64) -> u64 {
        self.offset.wrapping_add(self.skip.wrapping_mul(self.next)) % size
    }
}

impl Maglev {
    pub(super) fn build(live: &[(usize, &Node)]) -> Maglev {
        Maglev::build_sized(live, MAGLEV_TABLE_SIZE)
    }

    /// Builds a table of `size` entries; `size` must be prime (Envoy checks this; here
    /// only the tests use sizes other than [`MAGLEV_TABLE_SIZE`], to replay Envoy's own
    /// unit-test tables).
    fn build_sized(live: &[(usize, &Node)], size: u64) -> Maglev {
        let sum: u64 = live
            .iter()
            .map(|(_, n)| u64::from(n.effective_weight()))
            .sum();
        let mut sorted: Vec<&(usize, &Node)> = live.iter().collect();
        sorted.sort_by(|a, b| a.1.name.cmp(&b.1.name).then(a.0.cmp(&b.0)));
        let mut entries: Vec<Entry> = sorted
            .iter()
            .map(|&&(index, node)| {
                let name = node.name.as_bytes();
                Entry {
                    node: to_stored(index),
                    offset: xxh64(name, 0) % size,
                    skip: xxh64(name, 1) % (size - 1) + 1,
                    weight: f64::from(node.effective_weight()) / sum as f64,
                    target: 0.0,
                    next: 0,
                }
            })
            .collect();
        let max_weight = entries.iter().map(|e| e.weight).fold(0.0, f64::max);

        let len = usize::try_from(size).unwrap_or(0);
        let mut table = vec![EMPTY; len].into_boxed_slice();
        let mut filled = 0usize;
        let mut round: u32 = 1;
        while filled < len && !entries.is_empty() {
            for entry in entries.iter_mut() {
                if filled >= len {
                    break;
                }
                if f64::from(round) * entry.weight < entry.target {
                    continue;
                }
                entry.target += max_weight;
                // A permutation of 0..M (M prime, skip in 1..M) always reaches a free
                // slot while the table is not full.
                loop {
                    let slot = table.get_mut(entry.permutation(size) as usize);
                    entry.next += 1;
                    if let Some(slot) = slot.filter(|s| **s == EMPTY) {
                        *slot = entry.node;
                        break;
                    }
                }
                filled += 1;
            }
            round += 1;
        }
        Maglev { table }
    }

    pub(super) fn locate(&self, hash: u64) -> Option<usize> {
        let at = usize::try_from(hash.checked_rem(self.table.len() as u64)?).ok()?;
        match *self.table.get(at)? {
            EMPTY => None,
            index => from_stored(index),
        }
    }

    #[cfg(test)]
    pub(super) fn counts(&self, nodes: usize) -> Vec<usize> {
        let mut counts = vec![0; nodes];
        for &i in self.table.iter() {
            counts[i as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::{Maglev, MAGLEV_TABLE_SIZE};
    use crate::node::Node;

    fn build(nodes: &[Node]) -> Maglev {
        let live: Vec<_> = nodes.iter().enumerate().collect();
        Maglev::build(&live)
    }

    #[test]
    fn table_is_full_and_balanced() {
        let nodes: Vec<Node> = (0..5)
            .map(|i| Node::new(format!("10.0.0.{i}:6379"), 1))
            .collect();
        let counts = build(&nodes).counts(5);
        assert_eq!(counts.iter().sum::<usize>(), MAGLEV_TABLE_SIZE as usize);
        // Envoy's equal-weight fill gives every host floor or ceil of M / n entries.
        for c in counts {
            assert!((13107..=13108).contains(&c), "{c}");
        }
    }

    #[test]
    fn weights_scale_entries() {
        let nodes = [Node::new("a", 1), Node::new("b", 2), Node::new("c", 3)];
        let counts = build(&nodes).counts(3);
        let m = MAGLEV_TABLE_SIZE as f64;
        for (c, w) in counts.iter().zip([1.0, 2.0, 3.0]) {
            let want = m * w / 6.0;
            assert!((*c as f64 - want).abs() < 4.0, "{c} vs {want}");
        }
    }

    /// Hosts of the table, by name, for hashes 0..size.
    fn names(nodes: &[Node], size: u64) -> Vec<String> {
        let live: Vec<_> = nodes.iter().enumerate().collect();
        let m = Maglev::build_sized(&live, size);
        (0..size)
            .map(|h| nodes[m.locate(h).unwrap()].name.clone())
            .collect()
    }

    #[test]
    fn replays_envoys_unit_test_tables() {
        // Envoy's maglev_lb_test.cc: Basic (hosts keyed by address), BasicWithHostName,
        // Weighted, WeightedSingleHost; the expected tables are copied from its comments.
        let addrs: Vec<Node> = (90..96)
            .map(|p| Node::new(format!("127.0.0.1:{p}"), 1))
            .collect();
        let want: Vec<String> = [92, 94, 90, 91, 95, 90, 93]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        assert_eq!(names(&addrs, 7), want);

        let hostnames: Vec<Node> = (90..96).map(|p| Node::new(p.to_string(), 1)).collect();
        let want: Vec<String> = [92, 95, 90, 93, 94, 91, 90]
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(names(&hostnames, 7), want);

        let weighted = [Node::new("127.0.0.1:90", 1), Node::new("127.0.0.1:91", 2)];
        let want: Vec<String> = [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1]
            .iter()
            .map(|&i| weighted[i].name.clone())
            .collect();
        assert_eq!(names(&weighted, 17), want);

        let single = [Node::new("127.0.0.1:90", 7)];
        assert!(names(&single, 17).iter().all(|n| n == "127.0.0.1:90"));
    }

    #[test]
    fn node_order_does_not_matter() {
        let a = [Node::new("x", 1), Node::new("y", 1), Node::new("z", 1)];
        let b = [Node::new("z", 1), Node::new("x", 1), Node::new("y", 1)];
        let (ta, tb) = (build(&a), build(&b));
        let names_a: Vec<&str> = ta
            .table
            .iter()
            .map(|&i| a[i as usize].name.as_str())
            .collect();
        let names_b: Vec<&str> = tb
            .table
            .iter()
            .map(|&i| b[i as usize].name.as_str())
            .collect();
        assert_eq!(names_a, names_b);
    }
}
