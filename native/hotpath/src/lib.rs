//! The gate's per-message check, compiled: the common case of
//! `dnc.gate.reader.OutboundReader.check`, and nothing else.
//!
//! A message is decided here only when it is exactly understood: a compact-enough JSON
//! object (strict grammar, no `\u` escapes, plain numbers, shallow nesting) whose five
//! required fields are plain strings given once, from an account and a sender the Python
//! side has already validated (it teaches them with `learn_account` / `learn_sender`), a
//! canonical channel, and a destination the phone or e-mail fast path accepts.
//! Anything else is "ask Python": the careful path keeps every rule and every error.

mod blake2b;
mod bloom;
mod email;
mod json;
mod verdict;

use std::collections::HashMap;

use blake2b::{Keyed, BLOCK};
use bloom::Bloom;
use json::{scan, Fields};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use xxhash_rust::xxh3::xxh3_64;

const CACHE_LIMIT: usize = 100_000; // as the reader's caches
const MAX_ADDRESS: usize = 320;
const MAX_MESSAGE_ID: usize = 256;
const MAX_PHONE_INPUT: usize = 64;

/// What `national_prefix_for_parsing` means for the fast path of one calling code.
enum Prefix {
    None,
    /// Digit literals (`0|180020`): `re.match` succeeds iff one is a prefix.
    Literals(Vec<Vec<u8>>),
    /// A real pattern: numbers of this calling code are Python's to read.
    Unknown,
}

struct CallingCode {
    len: usize,
    lengths: u32, // bit n: a national number of n digits is possible
    prefix: Prefix,
}

// Calling codes of 1, 2 and 3 digits in one table: code c of n digits is at OFFSET[n] + c.
const OFFSET: [usize; 4] = [0, 0, 10, 110];
const CODES: usize = 1110;

/// A canonical phone number: at most MAX_PHONE_INPUT ASCII digits, on the stack.
struct Phone {
    digits: [u8; MAX_PHONE_INPUT],
    len: usize,
}

impl Phone {
    fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

#[pyclass(module = "dnc_hotpath")]
struct Checker {
    key: Keyed,
    codes: Vec<Option<CallingCode>>,
    channels: Vec<String>,
    accounts: HashMap<String, Vec<u8>>,
    senders: HashMap<String, String>,
    simd: bool,
}

#[pymethods]
impl Checker {
    /// `key`: the one contact-id key; `table`: calling code → (its length, possible
    /// national lengths, national_prefix_for_parsing pattern or None); `channels`: the
    /// canonical channel names.
    #[new]
    fn new(
        key: &[u8],
        table: HashMap<String, (usize, Vec<usize>, Option<String>)>,
        channels: Vec<String>,
    ) -> PyResult<Self> {
        if key.is_empty() || key.len() > 64 {
            return Err(PyValueError::new_err("key: must be 1-64 bytes"));
        }
        let mut codes: Vec<Option<CallingCode>> = (0..CODES).map(|_| None).collect();
        for (cc, (len, lengths, pattern)) in table {
            let number: usize = cc.parse().map_err(|_| PyValueError::new_err(cc.clone()))?;
            if !(1..=3).contains(&cc.len()) || len != cc.len() || cc.starts_with('0') {
                return Err(PyValueError::new_err(format!(
                    "calling code {cc:?}: not 1-3 digits"
                )));
            }
            let mut bits = 0u32;
            for n in lengths {
                if n < 32 {
                    bits |= 1 << n;
                }
            }
            let prefix = match pattern {
                None => Prefix::None,
                Some(p) => literals(&p).map_or(Prefix::Unknown, Prefix::Literals),
            };
            codes[OFFSET[len] + number] = Some(CallingCode {
                len,
                lengths: bits,
                prefix,
            });
        }
        Ok(Checker {
            key: Keyed::new(key),
            codes,
            channels,
            accounts: HashMap::new(),
            senders: HashMap::new(),
            simd: simd_available(),
        })
    }

    /// A valid account and its field prefix (``account_prefix``), as the reader caches it.
    /// A string that is not valid UTF-8 (a lone surrogate) is not learned: Python's.
    fn learn_account(&mut self, account: &Bound<'_, PyAny>, prefix: Vec<u8>) {
        let Ok(account) = account.extract::<String>() else {
            return;
        };
        if self.accounts.len() < CACHE_LIMIT {
            self.accounts.insert(account, prefix);
        }
    }

    /// A sender as written and its canonical form, as the reader caches it.
    fn learn_sender(&mut self, raw: &Bound<'_, PyAny>, canonical: &Bound<'_, PyAny>) {
        let (Ok(raw), Ok(canonical)) = (raw.extract::<String>(), canonical.extract::<String>())
        else {
            return;
        };
        if self.senders.len() >= CACHE_LIMIT {
            self.senders.clear();
        }
        self.senders.insert(raw, canonical);
    }

    /// The fingerprints and the filter probe in one loop: the positions decided here
    /// whose key `bloom` may hold (all of them without a filter), and the positions Python
    /// must read. No Python object is made for a message the filter rules out. Contact
    /// ids are computed four at a time where the CPU has AVX2.
    fn probe<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
        mask: u64,
        bloom: Option<PyRef<'py, Bloom>>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let mut ask: Vec<usize> = Vec::new();
        let mut slow: Vec<usize> = Vec::new();
        let mut memo = Memo::default();
        let mut out = Out::default();
        let mut lanes = Lanes::default();
        let filter = bloom.as_deref();
        let mut maybe = |field: &[u8], i: usize| {
            if filter.is_none_or(|f| f.contains_key(xxh3_64(field) & mask)) {
                ask.push(i);
            }
        };
        for (i, value) in values.iter().enumerate() {
            let read = match value.downcast::<PyBytes>() {
                Ok(b) => self.read(b.as_bytes(), &mut memo, &mut out),
                Err(_) => None,
            };
            let Some((_, prefix)) = read else {
                slow.push(i);
                continue;
            };
            if self.simd && out.contact.len() <= BLOCK {
                if lanes.push(i, prefix, &out.contact) {
                    lanes.flush(&self.key, &mut out.field, &mut maybe);
                }
            } else {
                self.field(prefix, &mut out);
                maybe(&out.field, i);
            }
        }
        lanes.finish(&self.key, &mut out.field, &mut maybe);
        ask.sort_unstable(); // lanes finish after single ones
        Ok((PyList::new(py, ask)?, PyList::new(py, slow)?))
    }

    /// Whether contact ids are computed four at a time (AVX2); tests turn it off to check
    /// that both ways agree.
    #[getter]
    fn get_simd(&self) -> bool {
        self.simd
    }

    #[setter]
    fn set_simd(&mut self, on: bool) {
        self.simd = on && simd_available();
    }

    /// Per message ``Parsed`` (account, channel, sender, contact, fingerprint, field), or
    /// None where Python must read it.
    fn parsed<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let mut memo = Memo::default();
        let mut out = Out::default();
        for value in values.iter() {
            let Ok(bytes) = value.downcast::<PyBytes>() else {
                list.append(py.None())?;
                continue;
            };
            let Some(f) = self.decide(bytes.as_bytes(), &mut memo, &mut out) else {
                list.append(py.None())?;
                continue;
            };
            let sender = memo.sender.map_or("", |(_, canonical)| canonical);
            let contact = std::str::from_utf8(&out.contact).unwrap_or_default();
            let tuple = PyTuple::new(
                py,
                [
                    f[1].into_pyobject(py)?.into_any(),
                    f[2].into_pyobject(py)?.into_any(),
                    sender.into_pyobject(py)?.into_any(),
                    contact.into_pyobject(py)?.into_any(),
                    xxh3_64(&out.field).into_pyobject(py)?.into_any(),
                    PyBytes::new(py, &out.field).into_any(),
                ],
            )?;
            list.append(tuple)?;
        }
        Ok(list)
    }

    /// The canonical phone number, or None: "ask Python" (``_fast_phone``'s twin).
    fn fast_phone(&self, raw: &str) -> Option<String> {
        let phone = self.phone(raw)?;
        Some(String::from_utf8_lossy(phone.as_bytes()).into_owned())
    }

    /// The canonical e-mail address, or None: "ask Python" (``_FAST_EMAIL``'s twin).
    fn fast_email(&self, raw: &str) -> Option<String> {
        let mut out = Vec::new();
        email::canonical(raw, &mut out).then(|| String::from_utf8_lossy(&out).into_owned())
    }

    /// The contact id of a canonical contact (``ContactIds.cid``'s twin, for one key).
    fn contact_id<'py>(&self, py: Python<'py>, contact: &str) -> PyResult<Bound<'py, PyBytes>> {
        if contact.is_empty() {
            return Err(PyValueError::new_err("contact: must not be empty"));
        }
        Ok(PyBytes::new(py, &self.key.hash(contact.as_bytes())))
    }
}

/// What `decide` writes per message: the canonical contact and its index field.
#[derive(Default)]
struct Out {
    contact: Vec<u8>,
    field: Vec<u8>,
}

/// The account and sender of the previous message of a batch (they rarely change).
#[derive(Default)]
struct Memo<'s> {
    account: Option<(&'s str, &'s [u8])>,
    sender: Option<(&'s str, &'s str)>,
}

impl Checker {
    /// The required fields and contact of a message decided here (its field written into
    /// `field`), or None: Python's.
    fn decide<'a, 's>(
        &'s self,
        raw: &'a [u8],
        memo: &mut Memo<'s>,
        out: &mut Out,
    ) -> Option<Fields<'a>> {
        let (f, prefix) = self.read(raw, memo, out)?;
        self.field(prefix, out);
        Some(f)
    }

    /// The index field of `out.contact`: the account's prefix, then its contact id.
    fn field(&self, prefix: &[u8], out: &mut Out) {
        out.field.clear();
        out.field.extend_from_slice(prefix);
        out.field.extend_from_slice(&self.key.hash(&out.contact));
    }

    /// The required fields of a message decided here and its account's field prefix, its
    /// canonical contact written into `out.contact`; or None: Python's.
    fn read<'a, 's>(
        &'s self,
        raw: &'a [u8],
        memo: &mut Memo<'s>,
        out: &mut Out,
    ) -> Option<(Fields<'a>, &'s [u8])> {
        let f = scan(raw)?;
        let [message_id, account, channel, sender, destination] = f;
        let prefix = match memo.account {
            Some((known, prefix)) if known == account => prefix,
            _ => {
                let (known, prefix) = self.accounts.get_key_value(account)?;
                memo.account = Some((known.as_str(), prefix.as_slice()));
                prefix.as_slice()
            }
        };
        if !matches!(memo.sender, Some((known, _)) if known == sender) {
            let (known, canonical) = self.senders.get_key_value(sender)?;
            memo.sender = Some((known.as_str(), canonical.as_str()));
        }
        if !self.channels.iter().any(|c| c == channel) {
            return None;
        }
        let id_len = message_id.chars().count();
        if id_len == 0 || id_len > MAX_MESSAGE_ID || destination.chars().count() > MAX_ADDRESS {
            return None;
        }
        // destination_key: the phone fast path, then the e-mail one (both or neither: Python).
        if let Some(phone) = self.phone(destination) {
            out.contact.clear();
            out.contact.extend_from_slice(phone.as_bytes());
        } else if !email::canonical(destination, &mut out.contact) {
            return None;
        }
        Some((f, prefix))
    }

    /// ``dnc.domain.contacts._fast_phone``, step by step.
    fn phone(&self, raw: &str) -> Option<Phone> {
        if raw.chars().count() > MAX_PHONE_INPUT {
            return None;
        }
        let s = if let Some(rest) = raw.strip_prefix('+') {
            rest
        } else if let Some(rest) = raw.strip_prefix("00") {
            rest
        } else {
            raw
        };
        let mut phone = Phone {
            digits: [0; MAX_PHONE_INPUT],
            len: 0,
        };
        for &b in s.as_bytes() {
            if b == b' ' {
                continue;
            }
            if !b.is_ascii_digit() {
                return None; // (s has at most 64 characters, so all fit)
            }
            phone.digits[phone.len] = b;
            phone.len += 1;
        }
        let digits = phone.as_bytes();
        // Shortest calling code first, as the Python table lookup (and phonenumbers).
        let mut number = 0;
        let mut code = None;
        for n in 1..=digits.len().min(3) {
            number = number * 10 + usize::from(digits[n - 1] - b'0');
            if digits[0] != b'0' {
                code = self.codes[OFFSET[n] + number].as_ref();
            }
            if code.is_some() {
                break;
            }
        }
        let code = code?;
        let national = &digits[code.len..];
        let n = national.len();
        if n >= 32 || code.lengths & (1 << n) == 0 || national.first() == Some(&b'0') {
            return None;
        }
        match &code.prefix {
            Prefix::None => {}
            Prefix::Unknown => return None,
            Prefix::Literals(lits) => {
                if lits.iter().any(|l| national.starts_with(l)) {
                    return None;
                }
            }
        }
        Some(phone)
    }
}

/// Up to four contacts waiting for their ids to be computed together.
struct Lanes<'s> {
    blocks: [[u8; BLOCK]; 4],
    lens: [usize; 4],
    waiting: [(usize, &'s [u8]); 4], // position, account prefix
    n: usize,
}

impl Default for Lanes<'_> {
    fn default() -> Self {
        Lanes {
            blocks: [[0; BLOCK]; 4],
            lens: [0; 4],
            waiting: [(0, &[]); 4],
            n: 0,
        }
    }
}

impl<'s> Lanes<'s> {
    /// Queue a contact (at most one block); true when four are waiting.
    fn push(&mut self, i: usize, prefix: &'s [u8], contact: &[u8]) -> bool {
        let block = &mut self.blocks[self.n];
        block.fill(0); // the last block is zero-padded
        block[..contact.len()].copy_from_slice(contact);
        self.lens[self.n] = contact.len();
        self.waiting[self.n] = (i, prefix);
        self.n += 1;
        self.n == 4
    }

    /// The four ids at once; each field to `done`.
    fn flush(&mut self, key: &Keyed, field: &mut Vec<u8>, done: &mut impl FnMut(&[u8], usize)) {
        let ids = hash4(key, &self.blocks, self.lens);
        for (id, (i, prefix)) in ids.iter().zip(self.waiting) {
            field.clear();
            field.extend_from_slice(prefix);
            field.extend_from_slice(id);
            done(field, i);
        }
        self.n = 0;
    }

    /// Fewer than four left at the end of a batch: one at a time.
    fn finish(&mut self, key: &Keyed, field: &mut Vec<u8>, done: &mut impl FnMut(&[u8], usize)) {
        for k in 0..self.n {
            let (i, prefix) = self.waiting[k];
            field.clear();
            field.extend_from_slice(prefix);
            field.extend_from_slice(&key.hash(&self.blocks[k][..self.lens[k]]));
            done(field, i);
        }
        self.n = 0;
    }
}

#[cfg(target_arch = "x86_64")]
fn simd_available() -> bool {
    blake2b::x4::available()
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn hash4(key: &Keyed, blocks: &[[u8; BLOCK]; 4], lens: [usize; 4]) -> [[u8; 16]; 4] {
    // SAFETY: only called where `simd` is on, which `simd_available()` allowed.
    unsafe { blake2b::x4::hash4(key, blocks, lens) }
}

#[cfg(not(target_arch = "x86_64"))]
fn hash4(key: &Keyed, blocks: &[[u8; BLOCK]; 4], lens: [usize; 4]) -> [[u8; 16]; 4] {
    std::array::from_fn(|k| key.hash(&blocks[k][..lens[k]]))
}

/// `0|180020` → its literals; None for anything that is not digit literals in `|`.
fn literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let parts: Vec<Vec<u8>> = pattern.split('|').map(|p| p.as_bytes().to_vec()).collect();
    let plain = parts
        .iter()
        .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    plain.then_some(parts)
}

#[pymodule]
fn dnc_hotpath(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Checker>()?;
    m.add_class::<Bloom>()?;
    m.add_class::<verdict::Verdicts>()?;
    Ok(())
}
