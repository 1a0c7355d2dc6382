//! The blocked record of a message, compiled: `dnc.gate.verdicts.blocking_entry` (the entry
//! that blocks it, read straight from the index's packed entries) and the envelope
//! `Gate._write` wraps around the message, in one call per blocked message.
//!
//! The same exactness as the check: whatever this side does not understand exactly (a
//! packed record it cannot read, a time outside 0000–9999, a string JSON would escape) is
//! "ask Python", which keeps every rule and every error.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyString, PyTuple};

const SEP: u8 = 0x1f; // between fields of a packed record (dnc.index.layout)
const REC: u8 = 0x1e; // between records
const FAST_UNTIL_MS: i64 = 253_402_300_800_000; // format_ms's fast path: years 1970–9999
const MAX_DIGITS: usize = 18;

#[pyclass(module = "dnc_hotpath")]
pub struct Verdicts {
    /// Channel code byte → Some(channel name) or Some(None) for "all channels".
    channels: Vec<Option<Option<String>>>,
    /// Upper-case source code byte → the source's name.
    sources: Vec<Option<String>>,
}

/// The blocking record: its channel's name (None: all channels), sender, source code,
/// added_at and expires_at.
struct Record<'a, 's> {
    channel: Option<&'s str>,
    sender: &'a str,
    source: u8,
    added: i64,
    expires: Option<i64>,
}

#[pymethods]
impl Verdicts {
    /// `channels`: code → channel name or None (``layout.CODE_CHANNEL``); `sources`: code →
    /// source name (upper-case codes).
    #[new]
    fn new(channels: &Bound<'_, PyDict>, sources: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut ch: Vec<Option<Option<String>>> = vec![None; 256];
        for (code, name) in channels.iter() {
            let code = one_byte(&code.extract::<String>()?)?;
            ch[code as usize] = Some(name.extract::<Option<String>>()?);
        }
        let mut src: Vec<Option<String>> = vec![None; 256];
        for (code, name) in sources.iter() {
            let code = one_byte(&code.extract::<String>()?)?;
            src[code as usize] = Some(name.extract::<String>()?);
        }
        Ok(Verdicts {
            channels: ch,
            sources: src,
        })
    }

    /// The blocked record of message `value` (``Parsed`` `p`) whose contact has the packed
    /// entries `packed`, at `now`: its bytes; None where no entry blocks it; False where
    /// Python must decide.
    fn envelope(
        &self,
        py: Python<'_>,
        value: &[u8],
        p: &Bound<'_, PyTuple>,
        packed: &[u8],
        now: i64,
        checked_at: &[u8],
    ) -> PyResult<PyObject> {
        let ask = || Ok(PyBool::new(py, false).to_owned().into_any().unbind());
        let items = (0..4)
            .map(|i| p.get_item(i))
            .collect::<PyResult<Vec<_>>>()?;
        let strings: Option<Vec<&str>> = items
            .iter()
            .map(|o| o.downcast::<PyString>().ok()?.to_str().ok())
            .collect();
        let Some(strings) = strings else {
            return ask();
        };
        let (account, channel, sender, contact) = (strings[0], strings[1], strings[2], strings[3]);
        let Some(best) = self.best(packed, channel, sender, now) else {
            return ask();
        };
        let Some(e) = best else {
            return Ok(py.None());
        };
        let Some(Some(source)) = self.sources.get(e.source.to_ascii_uppercase() as usize) else {
            return ask();
        };
        let mut out = Vec::with_capacity(value.len() + 256);
        out.extend_from_slice(b"{\"message\":");
        out.extend_from_slice(value);
        out.extend_from_slice(b",\"reason\":\"DO_NOT_CONTACT\",\"entry\":{\"account\":");
        let channel = e.channel;
        let written = string(&mut out, account)
            && {
                out.extend_from_slice(b",\"contact\":");
                string(&mut out, contact)
            }
            && {
                out.extend_from_slice(b",\"channel\":");
                optional(&mut out, channel)
            }
            && {
                out.extend_from_slice(b",\"sender\":");
                optional(&mut out, (!e.sender.is_empty()).then_some(e.sender))
            }
            && {
                out.extend_from_slice(b",\"source\":");
                string(&mut out, source)
            }
            && {
                out.extend_from_slice(b",\"added_at\":\"");
                time(&mut out, e.added)
            }
            && e.expires.is_none_or(|at| {
                out.extend_from_slice(b"\",\"expires_at\":\"");
                time(&mut out, at)
            });
        if !written {
            return ask();
        }
        out.extend_from_slice(b"\"},\"checked_at\":\"");
        out.extend_from_slice(checked_at);
        out.extend_from_slice(b"\"}");
        Ok(PyBytes::new(py, &out).into_any().unbind())
    }
}

impl Verdicts {
    /// Rule 2 over the packed entries: Some(the most specific blocking entry, the earliest
    /// added of equals, the first of equal ones), Some(None) when none blocks, None when a
    /// record is not understood exactly.
    fn best<'a, 's>(
        &'s self,
        packed: &'a [u8],
        channel: &str,
        sender: &str,
        now: i64,
    ) -> Option<Option<Record<'a, 's>>> {
        let text = std::str::from_utf8(packed).ok()?;
        let mut best: Option<Record<'a, 's>> = None;
        let mut best_rank = (4u8, 0i64);
        for rec in text.split(REC as char) {
            let mut fields = rec.split(SEP as char);
            let (ch, s, src, added, expires) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            if fields.next().is_some() || ch.len() != 1 || src.len() != 1 {
                return None;
            }
            let expires = if expires.is_empty() {
                None
            } else {
                Some(integer(expires)?)
            };
            let added = integer(added)?;
            let code = self.channels[ch.as_bytes()[0] as usize].as_ref()?;
            if expires.is_some_and(|at| at <= now) {
                continue;
            }
            if code.as_deref().is_some_and(|c| c != channel) {
                continue;
            }
            if !s.is_empty() && s != sender {
                continue;
            }
            let rank = (u8::from(code.is_none()) * 2 + u8::from(s.is_empty()), added);
            if rank < best_rank {
                best_rank = rank;
                best = Some(Record {
                    channel: code.as_deref(),
                    sender: s,
                    source: src.as_bytes()[0],
                    added,
                    expires,
                });
            }
        }
        Some(best)
    }
}

fn one_byte(code: &str) -> PyResult<u8> {
    match code.as_bytes() {
        [b] => Ok(*b),
        _ => Err(PyValueError::new_err(format!(
            "verdicts: code {code:?} must be one byte"
        ))),
    }
}

/// A plain decimal integer (an optional minus, then 1–18 digits), as Python's int() reads
/// it; anything else (signs, spaces, underscores, longer) is Python's.
fn integer(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let v = digits
        .bytes()
        .fold(0i64, |v, b| v * 10 + i64::from(b - b'0'));
    Some(if neg { -v } else { v })
}

/// A JSON string as orjson writes it, where that is the text itself between quotes (no
/// character JSON escapes); false otherwise.
fn string(out: &mut Vec<u8>, s: &str) -> bool {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return false;
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    true
}

fn optional(out: &mut Vec<u8>, s: Option<&str>) -> bool {
    match s {
        Some(s) => string(out, s),
        None => {
            out.extend_from_slice(b"null");
            true
        }
    }
}

/// ``format_ms``: YYYY-MM-DDTHH:MM:SS.mmmZ for 1970–9999 (the datetime path is Python's).
fn time(out: &mut Vec<u8>, ms: i64) -> bool {
    if !(0..FAST_UNTIL_MS).contains(&ms) {
        return false;
    }
    let (days, rem) = (ms / 86_400_000, ms % 86_400_000);
    let (y, m, d) = civil(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let text = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z");
    out.extend_from_slice(text.as_bytes());
    true
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
