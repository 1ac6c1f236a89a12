//! twemproxy's ketama continuum (`nc_ketama.c`), including its float arithmetic.

use super::{from_stored, to_stored, NodeIndex};
use crate::hash::md5_digest;
use crate::node::Node;

/// Points per server at equal weights; each MD5 digest yields 4.
const POINTS_PER_SERVER: f32 = 160.0;
const POINTS_PER_HASH: u32 = 4;

/// The sorted ring: `values[i]` is a point owned by node `owners[i]`. Two arrays rather
/// than pairs, so the binary search touches only the values.
#[derive(Debug, Clone)]
pub(super) struct Continuum {
    values: Box<[u32]>,
    owners: Box<[NodeIndex]>,
}

/// How many ring points twemproxy gives a server: float math exactly as in C, where
/// `pct * 160 / 4 * nlive` is float, `+ 1e-10` promotes to double, and the result is
/// cast back to float before `floorf`. Unequal weights can lose digests to truncation
/// (weights 1,2 give 104 + 212 points, not 107 + 213).
pub(super) fn points_for(weight: u32, total_weight: u64, nlive: usize) -> u32 {
    let pct = weight as f32 / total_weight as f32;
    let scaled = pct * POINTS_PER_SERVER / 4.0 * nlive as f32;
    let floored = ((f64::from(scaled) + 0.000_000_000_1) as f32).floor();
    (floored * 4.0) as u32
}

impl Continuum {
    pub(super) fn build(live: &[(usize, &Node)]) -> Continuum {
        let total_weight: u64 = live
            .iter()
            .map(|(_, n)| u64::from(n.effective_weight()))
            .sum();
        let mut points: Vec<(u32, NodeIndex)> = Vec::new();
        for &(index, node) in live {
            let count = points_for(node.effective_weight(), total_weight, live.len());
            for digest_index in 0..count / POINTS_PER_HASH {
                // twemproxy formats into an 86-byte buffer; names over ~80 bytes are
                // undefined behaviour there, and hashed in full here.
                let digest = md5_digest(format!("{}-{}", node.name, digest_index).as_bytes());
                for word in digest.chunks_exact(4) {
                    points.push((crate::hash::le_u32(word), to_stored(index)));
                }
            }
        }
        // twemproxy's qsort leaves equal points in arbitrary order; a stable sort keeps
        // config order. MD5 collisions among a few hundred points are vanishingly rare.
        points.sort_by_key(|&(value, _)| value);
        let (values, owners): (Vec<u32>, Vec<NodeIndex>) = points.into_iter().unzip();
        Continuum {
            values: values.into_boxed_slice(),
            owners: owners.into_boxed_slice(),
        }
    }

    /// The owner of the first point >= `hash`, wrapping to the first point.
    pub(super) fn locate(&self, hash: u32) -> Option<usize> {
        let at = self.values.partition_point(|&v| v < hash);
        let owner = self.owners.get(at).or_else(|| self.owners.first())?;
        from_stored(*owner)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{points_for, Continuum};
    use crate::node::Node;

    #[test]
    fn equal_weights_get_160_points() {
        for n in 1..=20 {
            assert_eq!(points_for(1, n, n as usize), 160, "n={n}");
            assert_eq!(points_for(7, 7 * n, n as usize), 160, "n={n}");
        }
    }

    #[test]
    fn unequal_weights_match_the_c_expression() {
        // Expected values printed by the same expression compiled with gcc on x86-64.
        let cases: [(&[u32], &[u32]); 5] = [
            (&[1, 2, 3], &[80, 160, 240]),
            (&[1, 2, 3, 1, 2], &[88, 176, 264, 88, 176]),
            (&[3, 5, 7], &[96, 160, 224]),
            (&[1, 2], &[104, 212]),
            (&[2, 3, 5, 7, 11], &[56, 84, 140, 200, 312]),
        ];
        for (weights, want) in cases {
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            let got: Vec<u32> = weights
                .iter()
                .map(|&w| points_for(w, total, weights.len()))
                .collect();
            assert_eq!(got, want, "weights {weights:?}");
        }
    }

    #[test]
    fn continuum_is_sorted_and_sized() {
        let nodes = [Node::new("a", 1), Node::new("b", 2), Node::new("c", 3)];
        let live: Vec<_> = nodes.iter().enumerate().collect();
        let c = Continuum::build(&live);
        assert_eq!(c.len(), 80 + 160 + 240);
        assert!(c.values.windows(2).all(|w| w[0] <= w[1]));
        // Past the last point the ring wraps to the first.
        assert_eq!(c.locate(u32::MAX), c.locate(0));
    }
}
