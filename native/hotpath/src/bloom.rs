//! The gate's contact filter as a Bloom filter of its own, so that the compiled check
//! probes it inside the same loop that computes the keys: no Python object per message.
//! (The Python check probes it with `key in bloom`, as it would rbloom's.)
//!
//! Keys are the index fingerprints masked by `filter_mask` (`dnc.index.layout`); they are
//! mixed again (splitmix64) because the mask leaves runs of zero bits. Positions come from
//! double hashing, reduced to the bit count by multiplication (no division).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

#[pyclass(module = "dnc_hotpath")]
pub struct Bloom {
    bits: Vec<u64>,
    m: u64,
    k: u32,
}

#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline(always)]
fn reduce(h: u64, m: u64) -> u64 {
    ((u128::from(h) * u128::from(m)) >> 64) as u64
}

impl Bloom {
    #[inline]
    pub fn contains_key(&self, key: u64) -> bool {
        let h1 = mix(key);
        let h2 = mix(h1 ^ 0x5851_f42d_4c95_7f2d) | 1;
        let mut h = h1;
        for _ in 0..self.k {
            let i = reduce(h, self.m);
            if self.bits[(i >> 6) as usize] & (1 << (i & 63)) == 0 {
                return false;
            }
            h = h.wrapping_add(h2);
        }
        true
    }

    fn add_key(&mut self, key: u64) {
        let h1 = mix(key);
        let h2 = mix(h1 ^ 0x5851_f42d_4c95_7f2d) | 1;
        let mut h = h1;
        for _ in 0..self.k {
            let i = reduce(h, self.m);
            self.bits[(i >> 6) as usize] |= 1 << (i & 63);
            h = h.wrapping_add(h2);
        }
    }
}

#[pymethods]
impl Bloom {
    /// Sized as rbloom sizes it: `capacity` keys at `error_rate` false positives.
    #[new]
    fn new(capacity: u64, error_rate: f64) -> PyResult<Self> {
        if capacity == 0 || !(error_rate > 0.0 && error_rate < 1.0) {
            return Err(PyValueError::new_err(format!(
                "bloom: capacity {capacity} must be positive and error_rate {error_rate} in (0, 1)"
            )));
        }
        let ln2 = std::f64::consts::LN_2;
        let m = (-(capacity as f64) * error_rate.ln() / (ln2 * ln2)).ceil().max(64.0) as u64;
        let k = ((m as f64 / capacity as f64) * ln2).round().clamp(1.0, 32.0) as u32;
        Ok(Bloom { bits: vec![0; m.div_ceil(64) as usize], m, k })
    }

    fn add(&mut self, key: u64) {
        self.add_key(key);
    }

    /// Add every key of an iterable of ints.
    fn update(&mut self, keys: &Bound<'_, PyAny>) -> PyResult<()> {
        for key in keys.try_iter()? {
            self.add_key(key?.extract::<u64>()?);
        }
        Ok(())
    }

    fn __contains__(&self, key: u64) -> bool {
        self.contains_key(key)
    }

    /// Bits and hash functions (for the start log and the tests).
    #[getter]
    fn size_in_bits(&self) -> u64 {
        self.m
    }

    #[getter]
    fn hashes(&self) -> u32 {
        self.k
    }
}
