"""Normalisation of contacts and senders (CONTRACT.md, "Normalisation"; channels:
``dnc.domain.channels``).

The same functions run when an entry is written and when the gate checks a message, so
every spelling of one contact must end up as one key here, and a value that cannot be
made canonical must be refused here: a key that check time cannot reproduce is an
opt-out that silently never matches.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat
from phonenumbers.phonenumberutil import ValidationResult, region_code_for_country_code

from dnc.errors import InvalidValue


class ContactKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"


_NOT_A_CONTACT = "is not a phone number or e-mail address"
_MAX_PHONE_INPUT = 64  # keeps a hostile 10 MB field away from NFKC and phonenumbers
_MAX_EMAIL = 254  # RFC 5321 4.5.3.1.3; the validator's limit too
_MAX_SENDER = 64
_IGNORED_IN_PHONE = frozenset(" -.()")
# Cs: a lone surrogate, which cannot even be encoded as UTF-8 on the way out.
_UNWANTED_CHARS = {
    "Cf": "an invisible character",
    "Cc": "a control character",
    "Cs": "an invalid character",
}


def type_reason(value: object) -> str:
    return f"must be a string, not {type(value).__name__}"


def _code(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _too_long(length: int, limit: int) -> str:
    return f"is too long ({length} characters, at most {limit})"


class _BadPhoneError(Exception):
    """``garbage``: the value does not even look like a phone number, so a caller that
    accepts a phone or an e-mail answers with the contract's generic sentence."""

    def __init__(self, reason: str, *, garbage: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.garbage = garbage


# calling-code prefix -> (its length, national lengths is_possible_number accepts,
# national_prefix_for_parsing matcher or None)
_CcEntry = tuple[int, frozenset[int], Callable[[str], object] | None]
_PHONE_TABLE: dict[str, _CcEntry] | None = None


def _phone_table() -> dict[str, _CcEntry]:
    global _PHONE_TABLE
    if _PHONE_TABLE is None:
        table: dict[str, _CcEntry] = {}
        for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            # The metadata parse() and is_possible_number() themselves use for this code.
            md = PhoneMetadata.metadata_for_region_or_calling_code(
                cc, region_code_for_country_code(cc)
            )
            if md is None:
                continue
            # _test_number_length (UNKNOWN type) looks only at the length, against
            # general_desc possible_length + possible_length_local_only: asking the library
            # per length is exact by construction. parse() only lets 2..17 digits through.
            lengths = frozenset(
                n
                for n in range(2, 18)
                if phonenumbers.is_possible_number(
                    phonenumbers.PhoneNumber(country_code=cc, national_number=int("9" * n))
                )
            )
            npfp = md.national_prefix_for_parsing
            # Most codes' pattern is plain "0" (91 of 215), which the caller's leading-zero
            # test already decides: no regex call per message for them.
            matcher = re.compile(npfp).match if npfp and npfp != "0" else None
            table[str(cc)] = (len(str(cc)), lengths, matcher)
        _PHONE_TABLE = table
    return _PHONE_TABLE


def phone_fast_path_table() -> dict[str, _CcEntry]:
    """The table of ``_fast_phone``, for its compiled twin (``dnc.gate.native``)."""
    return _phone_table()


def _fast_phone(raw: str) -> str | None:
    """Canonical form of a clean international number, or None: "ask the exact path".
    Answers only when parse() cannot change the digits (no leading 0, nothing for the
    national prefix pattern to strip), so E.164 is the digits and possibility a length
    lookup. Rejections always take the exact path, so their reasons are its reasons."""
    if len(raw) > _MAX_PHONE_INPUT:
        return None
    s = raw[1:] if raw[:1] == "+" else raw[2:] if raw[:2] == "00" else raw
    if " " in s:
        s = s.replace(" ", "")
    if not (s.isdigit() and s.isascii()):
        return None
    table = _PHONE_TABLE if _PHONE_TABLE is not None else _phone_table()
    # Calling codes are found shortest first, as phonenumbers' _extract_country_code does.
    entry = table.get(s[:1]) or table.get(s[:2]) or table.get(s[:3])
    if entry is None:
        return None
    cc_len, lengths, npfp = entry
    national = s[cc_len:]
    if len(national) not in lengths or national[:1] == "0":
        return None
    if npfp is not None and npfp(national) is not None:
        return None
    return s


def _phone_digits(raw: str) -> tuple[str, bool]:
    """(digits, written in international form) of a phone-shaped string."""
    if len(raw) > _MAX_PHONE_INPUT:
        raise _BadPhoneError(_too_long(len(raw), _MAX_PHONE_INPUT), garbage=False)
    # NFKC turns full-width digits and '+' (and other compatibility forms) into ASCII.
    text = unicodedata.normalize("NFKC", raw).strip()
    digits: list[str] = []
    plus = False
    for ch in text:
        if "0" <= ch <= "9":
            digits.append(ch)
            continue
        if ch in _IGNORED_IN_PHONE:
            continue
        cat = unicodedata.category(ch)
        if cat in ("Zs", "Pd"):
            continue
        if ch == "+" and not digits and not plus:
            plus = True
        elif cat in _UNWANTED_CHARS or cat == "Nd":
            what = _UNWANTED_CHARS.get(cat, "a non-ASCII digit")
            raise _BadPhoneError(f"contains {what} {_code(ch)}", garbage=False)
        else:
            raise _BadPhoneError(f"is not a phone number (unexpected {ch!r})", garbage=True)
    number = "".join(digits)
    if not plus and number.startswith("00"):
        return number[2:], True
    if not number:
        raise _BadPhoneError("is not a phone number (no digits)", garbage=True)
    return number, plus


_PARSE_ERRORS = {
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.NOT_A_NUMBER: "too short",  # only digits reach parse()
    NumberParseException.TOO_LONG: "too long",
}
_LENGTH_ERRORS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong length",
}
_UNKNOWN_CC = "unknown country code"


def _possible(text: str, region: str | None) -> tuple[str, str]:
    """("", canonical digits) when possible, else (problem, "")."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return _PARSE_ERRORS.get(exc.error_type, _UNKNOWN_CC), ""
    result = phonenumbers.is_possible_number_with_reason(number)
    if result in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        # E.164 rather than our digits: parse() strips national prefixes ("+44 (0)20…").
        return "", phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]
    if result not in _LENGTH_ERRORS:
        return _UNKNOWN_CC, ""
    return f"{_LENGTH_ERRORS[result]} for country code {number.country_code}", ""


def _exact_phone(raw: str, region: str | None) -> str:
    digits, international = _phone_digits(raw)
    national_problem = ""
    if region is not None and not international:
        # National first: about half of all valid US, Indian or Brazilian national numbers
        # are also "possible" international ones (202 555 0143 reads as +20, Egypt).
        # parse() still recognises the region's own country code or IDD in front, and
        # what is impossible nationally is then tried as international.
        national_problem, canonical = _possible(digits, region)
        if canonical:
            return canonical
    problem, canonical = _possible("+" + digits, None)
    if canonical:
        return canonical
    if problem == _UNKNOWN_CC:
        reason = "has an unknown country code"
        if digits.startswith("0"):
            reason += " (country codes do not start with 0)"
    else:
        reason = f"is not a possible international phone number ({problem})"
    if national_problem:
        reason += f", nor a possible national number of {region} ({national_problem})"
    raise _BadPhoneError(reason, garbage=False)


def _check_region(default_region: str | None) -> str | None:
    if default_region is None:
        return None
    region = default_region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidValue("default_region", default_region, "is not a known region code")
    return region


def _normalise_phone_exact(
    raw: str, field: str = "contact", default_region: str | None = None
) -> str:
    """normalise_phone without the fast path: the reference the fast path is tested
    against, and the path every rejection takes."""
    value: object = raw
    if not isinstance(value, str):
        raise InvalidValue(field, value, type_reason(value))
    region = _check_region(default_region)
    try:
        return _exact_phone(value, region)
    except _BadPhoneError as exc:
        raise InvalidValue(field, raw, exc.reason) from None


def normalise_phone(raw: str, field: str = "contact", default_region: str | None = None) -> str:
    value: object = raw
    # The fast path reads numbers as international, so a national reading (imports
    # that name their region) always takes the exact path.
    if default_region is None and isinstance(value, str):
        fast = _fast_phone(value)
        if fast is not None:
            return fast
    return _normalise_phone_exact(raw, field, default_region)


_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
# A subset of what email_validator accepts, chosen so that its normalised form is just
# the lower-cased input (tests/unit/test_contacts.py proves it): ASCII dot-atom local
# part, LDH labels without "--" (keeps R-LDH and xn-- Punycode for the validator), an
# alphabetic TLD other than the special-use names the validator refuses.
_FAST_EMAIL = re.compile(
    rf"(?=[^@]{{1,64}}@)[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@"
    r"(?:(?=[A-Za-z0-9-]{1,63}\.)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)+"
    r"(?!(?i:arpa|invalid|local|localhost|onion|test)\Z)[A-Za-z]{2,63}"
)


def _email_reason(value: str) -> str | None:
    """Our own words for what the validator would refuse less clearly."""
    for ch in value:
        if unicodedata.category(ch) == "Cf":
            return f"contains an invisible character {_code(ch)}"
    if value.startswith('"'):
        return "has a quoted local part, which is not accepted"
    if value.rpartition("@")[2].startswith("["):
        return "has an IP address instead of a domain name, which is not accepted"
    return None


@functools.lru_cache(maxsize=65536)
def _email_key(raw: str) -> tuple[bool, str]:
    """(True, canonical) or (False, reason); refusals are cached too, so a sender that
    repeats a bad address costs a lookup, not a validation."""
    value = raw.strip()
    if len(value) <= _MAX_EMAIL and _FAST_EMAIL.fullmatch(value):
        return True, value.lower()
    if len(value) > _MAX_EMAIL:
        return False, _too_long(len(value), _MAX_EMAIL)
    reason = _email_reason(value)
    if reason is not None:
        return False, reason
    try:
        valid = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        text = str(exc).rstrip(".")
        return False, f"is not a valid e-mail address ({text[:1].lower()}{text[1:]})"
    return True, valid.normalized.lower()


def normalise_email(raw: str, field: str = "contact") -> str:
    value: object = raw
    if not isinstance(value, str):
        raise InvalidValue(field, value, type_reason(value))
    if len(value) > _MAX_EMAIL:
        value = value.strip()  # only short strings may become cache keys
        if len(value) > _MAX_EMAIL:
            raise InvalidValue(field, raw, _too_long(len(value), _MAX_EMAIL))
    ok, text = _email_key(value)
    if ok:
        return text
    raise InvalidValue(field, raw, text)


def normalise_contact(
    raw: object, field: str = "contact", default_region: str | None = None
) -> tuple[str, ContactKind]:
    if not isinstance(raw, str):
        raise InvalidValue(field, raw, type_reason(raw))
    if "@" in raw:
        return normalise_email(raw, field), ContactKind.EMAIL
    if not raw.strip():
        raise InvalidValue(field, raw, "is empty")
    region = _check_region(default_region)
    fast = _fast_phone(raw) if region is None else None
    if fast is not None:
        return fast, ContactKind.PHONE
    try:
        return _exact_phone(raw, region), ContactKind.PHONE
    except _BadPhoneError as exc:
        raise InvalidValue(field, raw, _NOT_A_CONTACT if exc.garbage else exc.reason) from None


def destination_key(raw: object) -> str:
    """The gate's per-message key: normalise_contact(raw, "destination")[0], cheaply."""
    if isinstance(raw, str):
        fast = _fast_phone(raw)
        if fast is not None:
            return fast
        if "@" in raw and len(raw) <= _MAX_EMAIL:
            ok, text = _email_key(raw)
            if ok:
                return text
    return normalise_contact(raw, "destination")[0]


def _phone_like_sender(text: str) -> str | None:
    """Digits of a sender written like a number (leading + / 00 dropped), else None."""
    kept = "".join(
        ch
        for ch in text
        if ch not in _IGNORED_IN_PHONE and unicodedata.category(ch) not in ("Zs", "Pd")
    )
    if kept[:1] == "+":
        kept = kept[1:]
    elif kept[:2] == "00" and len(kept) > 2:
        kept = kept[2:]
    return kept if kept.isdigit() and kept.isascii() else None


def normalise_sender(raw: object, field: str = "sender") -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidValue(field, raw, type_reason(raw))
    if not raw.strip():
        return None
    if "@" in raw:
        return normalise_email(raw, field)
    # NFKC can grow a string (one ligature becomes up to 18 characters), so bound the
    # input before normalising and the result after.
    if len(raw) > 4 * _MAX_SENDER:
        raise InvalidValue(field, raw, _too_long(len(raw), _MAX_SENDER))
    text = unicodedata.normalize("NFKC", raw).strip()
    digits = _phone_like_sender(text)
    if digits is not None:
        fast = _fast_phone("+" + digits)
        if fast is not None:
            return fast
        # Short codes and national long codes are kept as their bare digits.
        return _possible("+" + digits, None)[1] or digits
    for ch in text:
        what = _UNWANTED_CHARS.get(unicodedata.category(ch))
        if what is not None:
            raise InvalidValue(field, raw, f"contains {what} {_code(ch)}")
    folded = " ".join(text.split()).casefold()
    if len(folded) > _MAX_SENDER:
        raise InvalidValue(field, raw, _too_long(len(folded), _MAX_SENDER))
    return folded
