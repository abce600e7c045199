//! The erasure code: a systematic Cauchy Reed-Solomon code over GF(2^8)
//! (polynomial x^8+x^4+x^3+x^2+1, reed-solomon-erasure's `galois_8`).
//!
//! Data part `i` is shard `i` as it is; parity part `j` is, byte by byte,
//! `sum_i c(j, i) * data_i` with `c(j, i) = 1 / (x_j + y_i)`, `x_j = 255 - j`,
//! `y_i = i`. The coefficient of a data part does not depend on how many data
//! parts there are, so parity is accumulated while the parts are written,
//! before their number is known. Every square submatrix of a Cauchy matrix is
//! invertible, so any `data` of the `data + parity` parts give back the rest.
use reed_solomon_erasure::galois_8::{div, mul};

/// At most this many parts, data and parity together (the field's size).
pub const MAX_PARTS: usize = 256;

/// The coefficient of data part `data` in parity part `parity`.
pub fn coefficient(parity: usize, data: usize) -> u8 {
    debug_assert!(parity + data < 255, "x_j and y_i stay distinct");
    div(1, (255 - parity) as u8 ^ data as u8)
}

/// A shard's row of the generator matrix: how it is made from the `data` data parts.
/// Shards `0..data` are the data parts, `data..` the parity parts.
fn generator_row(data: usize, shard: usize) -> Vec<u8> {
    if shard < data {
        (0..data).map(|i| u8::from(i == shard)).collect()
    } else {
        (0..data).map(|i| coefficient(shard - data, i)).collect()
    }
}

/// Weights `w` such that `shard = sum_k w[k] * available[k]`, byte by byte,
/// from exactly `data` available shards (indexes as in [`generator_row`]).
pub fn weights(data: usize, available: &[usize], shard: usize) -> Option<Vec<u8>> {
    assert_eq!(available.len(), data, "one available shard per data part");
    let rows: Vec<Vec<u8>> = available.iter().map(|&s| generator_row(data, s)).collect();
    let inverse = invert(rows)?;
    let target = generator_row(data, shard);
    // target · inverse: the shard in terms of the available ones.
    Some((0..data).map(|k| (0..data).fold(0u8, |acc, i| acc ^ mul(target[i], inverse[i][k]))).collect())
}

/// Gauss-Jordan inversion over GF(2^8); `None` when singular (never for this code).
fn invert(mut m: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    let n = m.len();
    let mut inv: Vec<Vec<u8>> = (0..n).map(|r| (0..n).map(|c| u8::from(r == c)).collect()).collect();
    for col in 0..n {
        let pivot = (col..n).find(|&r| m[r][col] != 0)?;
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let scale = div(1, m[col][col]);
        for c in 0..n {
            m[col][c] = mul(m[col][c], scale);
            inv[col][c] = mul(inv[col][c], scale);
        }
        for r in 0..n {
            let factor = m[r][col];
            if r != col && factor != 0 {
                for c in 0..n {
                    m[r][c] ^= mul(factor, m[col][c]);
                    inv[r][c] ^= mul(factor, inv[col][c]);
                }
            }
        }
    }
    Some(inv)
}

/// Test data and the parity the code gives for it, computed the plain way.
#[cfg(test)]
pub(crate) mod testing {
    use reed_solomon_erasure::galois_8::mul_slice_xor;

    /// Pseudo-random parts of the given sizes (xorshift from `seed`).
    pub fn random_parts(mut x: u64, sizes: &[usize]) -> Vec<Vec<u8>> {
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        sizes.iter().map(|&n| (0..n).map(|_| next()).collect()).collect()
    }

    /// `parity` parity parts of `len` bytes for `data`.
    pub fn reference_parity(data: &[Vec<u8>], parity: usize, len: usize) -> Vec<Vec<u8>> {
        (0..parity)
            .map(|j| {
                let mut p = vec![0u8; len];
                for (i, d) in data.iter().enumerate() {
                    mul_slice_xor(super::coefficient(j, i), d, &mut p[..d.len()]);
                }
                p
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reed_solomon_erasure::galois_8::mul_slice_xor;

    proptest::proptest! {
        /// Any `data` surviving shards give back every lost one.
        #[test]
        fn any_data_shards_rebuild_the_rest(data in 1usize..12, parity in 1usize..5, seed: u64, lost_seed: u64) {
            let mut x = seed | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 };
            let len = 37;
            let shards: Vec<Vec<u8>> = (0..data).map(|_| (0..len).map(|_| next()).collect()).collect();
            let all: Vec<Vec<u8>> = shards.iter().cloned().chain(super::testing::reference_parity(&shards, parity, len)).collect();
            // Lose `parity` shards, chosen by lost_seed.
            let mut order: Vec<usize> = (0..data + parity).collect();
            let mut y = lost_seed | 1;
            for k in (1..order.len()).rev() { y ^= y << 13; y ^= y >> 7; y ^= y << 17; order.swap(k, (y % (k as u64 + 1)) as usize); }
            let (lost, kept) = order.split_at(parity);
            for &target in lost {
                let w = weights(data, kept, target).expect("Cauchy: invertible");
                let mut out = vec![0u8; len];
                for (k, &s) in kept.iter().enumerate() { mul_slice_xor(w[k], &all[s], &mut out); }
                proptest::prop_assert_eq!(&out, &all[target]);
            }
        }
    }

    #[test]
    fn largest_geometry_is_invertible() {
        let (data, parity) = (MAX_PARTS - 4, 4);
        let kept: Vec<usize> = (4..data + parity).collect();
        assert!(weights(data, &kept, 0).is_some());
    }
}
