//! A strict, conservative reading of a message's JSON: the five required fields, or None
//! for anything it does not understand exactly (Python reads those).

const REQUIRED: [&[u8]; 5] = [
    b"message_id",
    b"account",
    b"channel",
    b"sender",
    b"destination",
];
const MAX_DEPTH: usize = 16; // deeper: Python (its duplicate guard may give up on depth)
const MAX_INT_DIGITS: usize = 18; // always an exact 64-bit integer for orjson
const MAX_FRAC_DIGITS: usize = 18;
const MAX_EXP_DIGITS: usize = 2; // |exponent| < 100: always a finite double

/// The five required values, as they stand in the raw message (no escapes in them).
pub type Fields<'a> = [&'a str; 5];

/// The required fields of a message this side understands exactly, or None.
pub fn scan(raw: &[u8]) -> Option<Fields<'_>> {
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
        if let Some(slot) = REQUIRED.iter().position(|r| *r == key) {
            if found[slot].is_some() || b.get(start) != Some(&b'"') {
                return None; // given twice (Python refuses it), or not a string
            }
            let (end, escaped) = string(b, start)?;
            if escaped {
                return None;
            }
            i = end;
            found[slot] = Some(&text[start + 1..i - 1]);
        } else {
            i = value(b, i, 1)?;
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
        // Eight bytes at a time to the next byte that matters (the common case: text).
        while let Some(chunk) = b.get(j..j + 8) {
            let found = special(u64::from_le_bytes(chunk.try_into().ok()?));
            if found != 0 {
                j += found.trailing_zeros() as usize / 8;
                break;
            }
            j += 8;
        }
        match *b.get(j)? {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                if !matches!(
                    b.get(j + 1)?,
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't'
                ) {
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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each of the eight bytes of `w` (little-endian) that may be a quote, a
/// backslash or a control character. The lowest one set is always such a byte (borrows
/// only run upwards), and none is missed; the bytes above it may be false alarms.
fn special(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
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
    let digits = |i: usize| {
        b[i.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
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
