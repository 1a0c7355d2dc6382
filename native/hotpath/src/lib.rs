//! The gate's per-message check, compiled: the common case of
//! `dnc.gate.reader.OutboundReader.check`, and nothing else.
//!
//! A message is decided here only when it is exactly understood: a compact-enough JSON
//! object (strict grammar, no `\u` escapes, plain numbers, shallow nesting) whose five
//! required fields are plain strings given once, from an account and a sender the Python
//! side has already validated (it teaches them with `learn_account` / `learn_sender`), a
//! canonical channel, and a destination the phone fast path (`_fast_phone`) accepts.
//! Anything else is "ask Python": the careful path keeps every rule and every error.

use std::collections::{HashMap, HashSet};

use blake2b_simd::{Params, State};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use xxhash_rust::xxh3::xxh3_64;

const REQUIRED: [&[u8]; 5] = [b"message_id", b"account", b"channel", b"sender", b"destination"];
const CACHE_LIMIT: usize = 100_000; // as the reader's caches
const MAX_ADDRESS: usize = 320;
const MAX_MESSAGE_ID: usize = 256;
const MAX_PHONE_INPUT: usize = 64;
const MAX_DEPTH: usize = 16; // deeper: Python (its duplicate guard may give up on depth)
const MAX_INT_DIGITS: usize = 18; // always an exact 64-bit integer for orjson
const MAX_FRAC_DIGITS: usize = 18;
const MAX_EXP_DIGITS: usize = 2; // |exponent| < 100: always a finite double

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

#[pyclass(module = "dnc_hotpath")]
struct Checker {
    state: State,
    codes: HashMap<Vec<u8>, CallingCode>,
    channels: HashSet<String>,
    accounts: HashMap<String, Vec<u8>>,
    senders: HashMap<String, String>,
}

/// The five required values, as they stand in the raw message (no escapes in them).
type Fields<'a> = [&'a str; 5];

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
        let state = Params::new().hash_length(16).key(key).to_state();
        let mut codes = HashMap::new();
        for (cc, (len, lengths, pattern)) in table {
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
            codes.insert(cc.into_bytes(), CallingCode { len, lengths: bits, prefix });
        }
        Ok(Checker {
            state,
            codes,
            channels: channels.into_iter().collect(),
            accounts: HashMap::new(),
            senders: HashMap::new(),
        })
    }

    /// A valid account and its field prefix (``account_prefix``), as the reader caches it.
    fn learn_account(&mut self, account: String, prefix: Vec<u8>) {
        if self.accounts.len() < CACHE_LIMIT {
            self.accounts.insert(account, prefix);
        }
    }

    /// A sender as written and its canonical form, as the reader caches it.
    fn learn_sender(&mut self, raw: String, canonical: String) {
        if self.senders.len() >= CACHE_LIMIT {
            self.senders.clear();
        }
        self.senders.insert(raw, canonical);
    }

    /// Per message its fingerprint AND `mask` (0 where Python must read it), and the
    /// positions Python must read.
    fn keys<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
        mask: u64,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let mut keys: Vec<u64> = Vec::with_capacity(values.len());
        let mut slow: Vec<usize> = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let decided = value
                .downcast::<PyBytes>()
                .ok()
                .and_then(|b| self.decide(b.as_bytes()));
            match decided {
                Some((_, _, _, fp)) => keys.push(fp & mask),
                None => {
                    keys.push(0);
                    slow.push(i);
                }
            }
        }
        Ok((PyList::new(py, keys)?, PyList::new(py, slow)?))
    }

    /// Per message ``Parsed`` (account, channel, sender, contact, fingerprint, field), or
    /// None where Python must read it.
    fn parsed<'py>(&self, py: Python<'py>, values: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for value in values.iter() {
            let decided = value
                .downcast::<PyBytes>()
                .ok()
                .and_then(|b| self.decide(b.as_bytes()));
            match decided {
                Some((f, contact, field, fp)) => {
                    let sender = &self.senders[f[3]];
                    let tuple = PyTuple::new(
                        py,
                        [
                            f[1].into_pyobject(py)?.into_any(),
                            f[2].into_pyobject(py)?.into_any(),
                            sender.as_str().into_pyobject(py)?.into_any(),
                            contact.as_str().into_pyobject(py)?.into_any(),
                            fp.into_pyobject(py)?.into_any(),
                            PyBytes::new(py, &field).into_any(),
                        ],
                    )?;
                    out.append(tuple)?;
                }
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }

    /// The canonical phone number, or None: "ask Python" (``_fast_phone``'s twin).
    fn fast_phone(&self, raw: &str) -> Option<String> {
        self.phone(raw)
    }
}

impl Checker {
    /// (fields, contact, field, fingerprint) of a message decided here, or None.
    fn decide<'a>(&self, raw: &'a [u8]) -> Option<(Fields<'a>, String, Vec<u8>, u64)> {
        let f = scan(raw)?;
        let [message_id, account, channel, sender, destination] = f;
        let prefix = self.accounts.get(account)?;
        if !self.channels.contains(channel) || !self.senders.contains_key(sender) {
            return None;
        }
        let id_len = message_id.chars().count();
        if id_len == 0 || id_len > MAX_MESSAGE_ID || destination.chars().count() > MAX_ADDRESS {
            return None;
        }
        let contact = self.phone(destination)?;
        let mut h = self.state.clone();
        h.update(contact.as_bytes());
        let mut field = Vec::with_capacity(prefix.len() + 16);
        field.extend_from_slice(prefix);
        field.extend_from_slice(h.finalize().as_bytes());
        let fp = xxh3_64(&field);
        Some((f, contact, field, fp))
    }

    /// ``dnc.domain.contacts._fast_phone``, step by step.
    fn phone(&self, raw: &str) -> Option<String> {
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
        let digits: Vec<u8> = s.bytes().filter(|&b| b != b' ').collect();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Shortest calling code first, as the Python table lookup (and phonenumbers).
        let code = (1..=3)
            .filter(|&n| n <= digits.len())
            .find_map(|n| self.codes.get(&digits[..n]))?;
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
        String::from_utf8(digits).ok()
    }
}

/// `0|180020` → its literals; None for anything that is not digit literals in `|`.
fn literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let parts: Vec<Vec<u8>> = pattern.split('|').map(|p| p.as_bytes().to_vec()).collect();
    let plain = parts.iter().all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    plain.then_some(parts)
}

/// The required fields of a message this side understands exactly, or None.
fn scan(raw: &[u8]) -> Option<Fields<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let b = raw;
    let mut found: [Option<&str>; 5] = [None; 5];
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    loop {
        let (end, escaped) = string(b, i)?;
        let key = &b[i + 1..end - 1];
        if escaped {
            return None; // an escaped key may spell a required name
        }
        i = ws(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let start = i;
        i = value(b, i, 1)?;
        if let Some(slot) = REQUIRED.iter().position(|r| *r == key) {
            if found[slot].is_some() || b[start] != b'"' {
                return None; // given twice (Python refuses it), or not a string
            }
            let (_, escaped) = string(b, start)?;
            if escaped {
                return None;
            }
            found[slot] = Some(&text[start + 1..i - 1]);
        }
        i = ws(b, i);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    if ws(b, i + 1) != b.len() {
        return None;
    }
    Some([found[0]?, found[1]?, found[2]?, found[3]?, found[4]?])
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A string starting at `i`: (the index after its closing quote, whether it has escapes).
/// `\u` escapes and raw control characters are Python's.
fn string(b: &[u8], i: usize) -> Option<(usize, bool)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        match *b.get(j)? {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                if !matches!(b.get(j + 1)?, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                    return None;
                }
                escaped = true;
                j += 2;
            }
            c if c < 0x20 => return None,
            _ => j += 1,
        }
    }
}

/// Any JSON value starting at `i`, nested at most `MAX_DEPTH`: the index after it.
fn value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string(b, i).map(|(end, _)| end),
        b'{' => container(b, i, depth, b'}', true),
        b'[' => container(b, i, depth, b']', false),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        _ => number(b, i),
    }
}

fn container(b: &[u8], i: usize, depth: usize, close: u8, object: bool) -> Option<usize> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let mut j = ws(b, i + 1);
    if b.get(j) == Some(&close) {
        return Some(j + 1);
    }
    loop {
        if object {
            j = ws(b, string(b, j)?.0);
            if b.get(j) != Some(&b':') {
                return None;
            }
            j = ws(b, j + 1);
        }
        j = ws(b, value(b, j, depth + 1)?);
        match *b.get(j)? {
            b',' => j = ws(b, j + 1),
            c if c == close => return Some(j + 1),
            _ => return None,
        }
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b[i..].starts_with(word).then_some(i + word.len())
}

/// A number orjson reads exactly: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? within the limits.
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits = |i: usize| b[i.min(b.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(i);
    if n == 0 || n > MAX_INT_DIGITS || (n > 1 && b[i] == b'0') {
        return None;
    }
    i += n;
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 || n > MAX_FRAC_DIGITS {
            return None;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 || n > MAX_EXP_DIGITS {
            return None;
        }
        i += n;
    }
    Some(i)
}

#[pymodule]
fn dnc_hotpath(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Checker>()?;
    Ok(())
}
