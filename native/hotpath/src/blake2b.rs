//! BLAKE2b-128 keyed, with the key block compressed once (hashlib copies a state that
//! still holds it, so it compresses it again for every contact).

const IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

const SIGMA: [[usize; 16]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

/// One round: G on the four columns, then on the four diagonals (the scalar and the
/// four-lane compression share it).
macro_rules! one_round {
    ($g:ident, $v:ident, $m:ident, $s:ident) => {
        $g($v, 0, 4, 8, 12, $m[$s[0]], $m[$s[1]]);
        $g($v, 1, 5, 9, 13, $m[$s[2]], $m[$s[3]]);
        $g($v, 2, 6, 10, 14, $m[$s[4]], $m[$s[5]]);
        $g($v, 3, 7, 11, 15, $m[$s[6]], $m[$s[7]]);
        $g($v, 0, 5, 10, 15, $m[$s[8]], $m[$s[9]]);
        $g($v, 1, 6, 11, 12, $m[$s[10]], $m[$s[11]]);
        $g($v, 2, 7, 8, 13, $m[$s[12]], $m[$s[13]]);
        $g($v, 3, 4, 9, 14, $m[$s[14]], $m[$s[15]]);
    };
}

/// BLAKE2b's twelve rounds written out (the scalar and the four-lane compression): constant
/// message indices (a loop over `r % 10` measured 12 % slower), written once here.
macro_rules! twelve_rounds {
    ($round:ident, $v:ident, $m:ident) => {
        $round(&mut $v, &$m, &SIGMA[0]);
        $round(&mut $v, &$m, &SIGMA[1]);
        $round(&mut $v, &$m, &SIGMA[2]);
        $round(&mut $v, &$m, &SIGMA[3]);
        $round(&mut $v, &$m, &SIGMA[4]);
        $round(&mut $v, &$m, &SIGMA[5]);
        $round(&mut $v, &$m, &SIGMA[6]);
        $round(&mut $v, &$m, &SIGMA[7]);
        $round(&mut $v, &$m, &SIGMA[8]);
        $round(&mut $v, &$m, &SIGMA[9]);
        $round(&mut $v, &$m, &SIGMA[0]);
        $round(&mut $v, &$m, &SIGMA[1]);
    };
}

pub const BLOCK: usize = 128;
const OUT: u64 = 16;

#[inline(always)]
fn g(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

#[inline(always)]
fn round(v: &mut [u64; 16], m: &[u64; 16], s: &[usize; 16]) {
    one_round!(g, v, m, s);
}

fn compress(h: &mut [u64; 8], block: &[u8; BLOCK], t: u64, last: bool) {
    let mut m = [0u64; 16];
    for (i, w) in m.iter_mut().enumerate() {
        *w = u64::from_le_bytes(block[i * 8..i * 8 + 8].try_into().unwrap());
    }
    let mut v = [0u64; 16];
    v[..8].copy_from_slice(h);
    v[8..].copy_from_slice(&IV);
    v[12] ^= t;
    if last {
        v[14] = !v[14];
    }
    twelve_rounds!(round, v, m);
    for i in 0..8 {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/// The chaining value after the key block: every contact id starts from here.
#[derive(Clone)]
pub struct Keyed {
    h: [u64; 8],
}

impl Keyed {
    /// `key`: 1-64 bytes.
    pub fn new(key: &[u8]) -> Self {
        let mut h = IV;
        h[0] ^= 0x0101_0000 ^ ((key.len() as u64) << 8) ^ OUT;
        let mut block = [0u8; BLOCK];
        block[..key.len()].copy_from_slice(key);
        compress(&mut h, &block, BLOCK as u64, false);
        Keyed { h }
    }

    /// BLAKE2b-128 of `data` (at least one byte) under the key, as hashlib.blake2b gives it.
    pub fn hash(&self, data: &[u8]) -> [u8; 16] {
        let mut h = self.h;
        let mut t = BLOCK as u64;
        let mut rest = data;
        while rest.len() > BLOCK {
            let (block, tail) = rest.split_at(BLOCK);
            t += BLOCK as u64;
            compress(&mut h, block.try_into().expect("a whole block"), t, false);
            rest = tail;
        }
        let mut block = [0u8; BLOCK];
        block[..rest.len()].copy_from_slice(rest);
        compress(&mut h, &block, t + rest.len() as u64, true);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&h[0].to_le_bytes());
        out[8..].copy_from_slice(&h[1].to_le_bytes());
        out
    }
}

/// Four contact ids at once (AVX2: one message per 64-bit lane), each contact at most one
/// block: the same bytes as `Keyed::hash` of each, in a quarter of the time per id.
#[cfg(target_arch = "x86_64")]
pub mod x4 {
    use super::{Keyed, BLOCK, IV, SIGMA};
    use std::arch::x86_64::*;

    /// Whether this CPU can run `hash4` (checked once by the caller).
    pub fn available() -> bool {
        is_x86_feature_detected!("avx2")
    }

    #[inline(always)]
    unsafe fn rot32(x: __m256i) -> __m256i {
        _mm256_shuffle_epi32(x, 0b10_11_00_01)
    }

    /// Each 64-bit lane rotated right by `BYTES` whole bytes (24 and 16 bits): one byte
    /// shuffle (its indices count within each 128-bit half).
    #[inline(always)]
    unsafe fn rot_bytes<const BYTES: usize>(x: __m256i) -> __m256i {
        let index: [u8; 32] =
            std::array::from_fn(|i| ((i % 16) / 8 * 8 + (i % 8 + BYTES) % 8) as u8);
        _mm256_shuffle_epi8(x, _mm256_loadu_si256(index.as_ptr().cast()))
    }

    #[inline(always)]
    unsafe fn rot63(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi64(x, 63), _mm256_add_epi64(x, x))
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn g(
        v: &mut [__m256i; 16],
        a: usize,
        b: usize,
        c: usize,
        d: usize,
        x: __m256i,
        y: __m256i,
    ) {
        v[a] = _mm256_add_epi64(_mm256_add_epi64(v[a], v[b]), x);
        v[d] = rot32(_mm256_xor_si256(v[d], v[a]));
        v[c] = _mm256_add_epi64(v[c], v[d]);
        v[b] = rot_bytes::<3>(_mm256_xor_si256(v[b], v[c]));
        v[a] = _mm256_add_epi64(_mm256_add_epi64(v[a], v[b]), y);
        v[d] = rot_bytes::<2>(_mm256_xor_si256(v[d], v[a]));
        v[c] = _mm256_add_epi64(v[c], v[d]);
        v[b] = rot63(_mm256_xor_si256(v[b], v[c]));
    }

    #[inline(always)]
    unsafe fn round(v: &mut [__m256i; 16], m: &[__m256i; 16], s: &[usize; 16]) {
        one_round!(g, v, m, s);
    }

    fn word(block: &[u8; BLOCK], i: usize) -> i64 {
        i64::from_le_bytes(block[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    }

    /// BLAKE2b-128 under `key` of four inputs of 1-128 bytes each (`blocks[i][..lens[i]]`,
    /// zero-padded), as `key.hash` gives them.
    ///
    /// # Safety
    /// Only where `available()` said so.
    #[target_feature(enable = "avx2")]
    pub unsafe fn hash4(key: &Keyed, blocks: &[[u8; BLOCK]; 4], lens: [usize; 4]) -> [[u8; 16]; 4] {
        let mut m = [_mm256_setzero_si256(); 16];
        for (i, w) in m.iter_mut().enumerate() {
            *w = _mm256_setr_epi64x(
                word(&blocks[0], i),
                word(&blocks[1], i),
                word(&blocks[2], i),
                word(&blocks[3], i),
            );
        }
        let h = key.h;
        let mut v = [_mm256_setzero_si256(); 16];
        for i in 0..8 {
            v[i] = _mm256_set1_epi64x(h[i] as i64);
            v[i + 8] = _mm256_set1_epi64x(IV[i] as i64);
        }
        // The byte counter: the key block, then this one.
        let t = |n: usize| (BLOCK + n) as i64;
        let counts = _mm256_setr_epi64x(t(lens[0]), t(lens[1]), t(lens[2]), t(lens[3]));
        v[12] = _mm256_xor_si256(v[12], counts);
        v[14] = _mm256_xor_si256(v[14], _mm256_set1_epi64x(-1)); // the last block
        twelve_rounds!(round, v, m);
        let mut out = [[0u8; 16]; 4];
        for (word_index, half) in [(0usize, 0usize), (1, 8)] {
            let x = _mm256_xor_si256(
                _mm256_xor_si256(_mm256_set1_epi64x(h[word_index] as i64), v[word_index]),
                v[word_index + 8],
            );
            let mut lanes = [0u64; 4];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), x);
            for (lane, o) in out.iter_mut().enumerate() {
                o[half..half + 8].copy_from_slice(&lanes[lane].to_le_bytes());
            }
        }
        out
    }
}
