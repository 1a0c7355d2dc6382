//! `dnc.domain.contacts._FAST_EMAIL`, exactly: an address that regular expression accepts
//! whole, in its canonical form (lower case). Anything else is Python's (the validator).

const MAX_EMAIL: usize = 254;
const MAX_LOCAL: usize = 64;
const MAX_LABEL: usize = 63;
const TLD_LENGTHS: std::ops::RangeInclusive<usize> = 2..=63;
const SPECIAL_TLDS: [&[u8]; 6] = [
    b"arpa",
    b"invalid",
    b"local",
    b"localhost",
    b"onion",
    b"test",
];

fn atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c)
}

/// Runs of `part` characters joined by single `sep`: none empty.
fn runs(s: &[u8], sep: u8, part: fn(u8) -> bool) -> bool {
    s.split(|&c| c == sep)
        .all(|run| !run.is_empty() && run.iter().all(|&c| part(c)))
}

/// Writes the canonical address into `out` (cleared) and says whether it did. Only ASCII
/// without spaces gets here, so Python's `strip()` would change nothing.
pub fn canonical(raw: &str, out: &mut Vec<u8>) -> bool {
    let b = raw.as_bytes();
    if b.len() > MAX_EMAIL || !raw.is_ascii() {
        return false;
    }
    let Some(at) = b.iter().position(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    // Local part: a dot-atom of 1-64 characters.
    if local.len() > MAX_LOCAL || !runs(local, b'.', atext) {
        return false;
    }
    // Domain: LDH labels of 1-63 characters (no "--", no hyphen at either end), then an
    // alphabetic top-level label that is not a special-use name.
    let Some(dot) = domain.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    let (labels, tld) = (&domain[..dot], &domain[dot + 1..]);
    if !TLD_LENGTHS.contains(&tld.len()) || !tld.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    if SPECIAL_TLDS.iter().any(|s| s.eq_ignore_ascii_case(tld)) {
        return false;
    }
    let label_ok = |label: &[u8]| {
        label.len() <= MAX_LABEL && runs(label, b'-', |c: u8| c.is_ascii_alphanumeric())
    };
    if !labels.split(|&c| c == b'.').all(label_ok) {
        return false;
    }
    out.clear();
    out.extend(b.iter().map(u8::to_ascii_lowercase));
    true
}
