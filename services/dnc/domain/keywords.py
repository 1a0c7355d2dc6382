"""Inbound keyword handling (CONTRACT.md, rule 5).

The whole message must be the keyword. Folding is asymmetric on purpose: opt-out
matching also folds look-alike letters and accents, because treating a disguised STOP
as STOP over-blocks, which is the safe direction for a legal opt-out; opt-in matching
does not, because a disguised START must never remove somebody's opt-out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from enum import StrEnum

from dnc.errors import ConfigurationError


class KeywordAction(StrEnum):
    OPT_OUT = "OPT_OUT"
    OPT_OUT_ALL = "OPT_OUT_ALL"
    OPT_IN = "OPT_IN"


# Defaults only; deployments pass their own lists (the lists are configuration).
DEFAULT_OPT_OUT: tuple[str, ...] = (
    "STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT",
    "OPT-OUT", "REMOVE",
    "ARRET", "ARRÊT", "DÉSINSCRIRE", "DESINSCRIRE", "DÉSABONNER", "DESABONNER",  # fr
    "STOPP",  # de, no, sv
    "ABMELDEN", "ABBESTELLEN", "STOPPEN",  # de (STOPPEN also nl)
    "PARAR", "CANCELAR",  # es, pt
    "BAJA", "ALTO", "DESINSCRIBIR",  # es
    "PARE", "SAIR",  # pt
    "ANNULLA",  # it
    "AFMELDEN",  # nl
    "AVSLUTA",  # sv
)  # fmt: skip
DEFAULT_OPT_OUT_ALL: tuple[str, ...] = ("STOPALL", "STOP ALL")
# Deliberately short: a word that removes an opt-out must be unmistakable.
DEFAULT_OPT_IN: tuple[str, ...] = ("START", "UNSTOP")

MAX_KEYWORD_MESSAGE = 160  # one SMS; longer texts are conversations, not keywords


def _pairs(looks: str, latin: str) -> dict[int, str]:
    return {ord(a): b for a, b in zip(looks, latin, strict=True)}


# Look-alikes of Latin letters (Unicode confusables, the ones that matter for short
# keywords). Cyrillic small к м н т в are small-capital shapes: over-blocking is fine.
_HOMOGLYPHS = str.maketrans(
    {
        **_pairs("АВЕЅІЈКМНОРСТХУҮӀԚԜѴ", "ABESIJKMHOPCTXYYIQWV"),
        **_pairs("аеѕіјорсухһӏԛԝүѵԁвкмнт", "aesijopcyxhlqwyvdbkmht"),
        **_pairs("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧϜ", "ABEZHIKMNOPTYXF"),
        **_pairs("αοριυνκχτϳ", "aopiuvkxtj"),
        **_pairs("օսıȷ", "ouij"),
        **_pairs("ꜱᴛᴏᴘᴀᴄᴇɴʀʟᴜᴍᴋʙɪᴠᴡᴅꜰʜʏᴢɢᴊ", "stopacenrlumkbivwdfhyzgj"),
        **_pairs("ᏚᎢᏢᎪᎬᎷᎻᏟᏞ", "STPAEMHCL"),
    }
)


def _is_trailing_noise(ch: str) -> bool:
    # Punctuation, symbols (emoji, "!!!", "…"), invisible format characters and emoji
    # variation selectors.
    return (
        ch.isspace()
        or unicodedata.category(ch)[0] in "PS"
        or unicodedata.category(ch) == "Cf"
        or "\ufe00" <= ch <= "\ufe0f"
    )


def _rstrip_noise(text: str) -> str:
    end = len(text)
    while end and _is_trailing_noise(text[end - 1]):
        end -= 1
    return text[:end]


def _lstrip_punctuation(text: str) -> str:
    """Opening marks people put before a keyword: ¡BAJA!, ¿PARAR?, «STOP», "STOP", (STOP).
    Rule 5 names only trailing punctuation; ignoring leading punctuation as well can only
    make more messages count as the keyword, and over-blocking is the safe side."""
    start = 0
    while start < len(text) and (
        text[start].isspace()
        or unicodedata.category(text[start])[0] == "P"
        or unicodedata.category(text[start]) == "Cf"
    ):
        start += 1
    return text[start:]


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", bare)


def fold_keyword(text: str, *, homoglyphs: bool) -> str:
    # Trailing symbols go before NFKC as well, or "STOP™" would become "STOPTM".
    # NFKC: full-width and mathematical letters become ASCII, "…" becomes "...".
    normal = unicodedata.normalize("NFKC", _rstrip_noise(_lstrip_punctuation(text)))
    kept: list[str] = []
    for ch in normal:
        cat = unicodedata.category(ch)
        if cat == "Cf":  # zero-width, bidi marks, BOM, soft hyphen: invisible, so absent
            continue
        kept.append("-" if cat == "Pd" else ch)
    folded = " ".join(_rstrip_noise(_lstrip_punctuation("".join(kept))).split())
    if not homoglyphs:
        return folded.casefold()
    # Mapped before casefold too, since casefold merges shapes that differ in the
    # upper case (Greek "Ν" looks like N, its lower case "ν" like v).
    folded = _strip_accents(folded.translate(_HOMOGLYPHS).casefold())
    return folded.translate(_HOMOGLYPHS)


class KeywordMatcher:
    def __init__(
        self, opt_out: Iterable[str], opt_out_all: Iterable[str], opt_in: Iterable[str]
    ) -> None:
        self._opt_out: dict[str, KeywordAction] = {}
        for word in _checked(opt_out, "opt_out"):
            self._opt_out[fold_keyword(word, homoglyphs=True)] = KeywordAction.OPT_OUT
        # A word in both opt-out lists blocks all senders: the broader block is the safe
        # reading of a contradictory configuration.
        for word in _checked(opt_out_all, "opt_out_all"):
            self._opt_out[fold_keyword(word, homoglyphs=True)] = KeywordAction.OPT_OUT_ALL
        # classify() tries opt-out first, so a word also configured as an opt-out never
        # reaches this set; dropping it here just keeps the set honest.
        self._opt_in = frozenset(
            folded
            for word in _checked(opt_in, "opt_in")
            if (folded := fold_keyword(word, homoglyphs=False))
            and fold_keyword(word, homoglyphs=True) not in self._opt_out
        )

    @classmethod
    def default(cls) -> KeywordMatcher:
        return cls(DEFAULT_OPT_OUT, DEFAULT_OPT_OUT_ALL, DEFAULT_OPT_IN)

    def classify(self, text: object) -> KeywordAction | None:
        if not isinstance(text, str) or len(text) > MAX_KEYWORD_MESSAGE:
            return None
        action = self._opt_out.get(fold_keyword(text, homoglyphs=True))
        if action is not None:
            return action
        if fold_keyword(text, homoglyphs=False) in self._opt_in:
            return KeywordAction.OPT_IN
        return None


def _checked(words: Iterable[str], name: str) -> list[str]:
    result = list(words)
    for word in result:
        value: object = word
        if not isinstance(value, str) or not fold_keyword(value, homoglyphs=False):
            raise ConfigurationError(f"keywords {name}: {word!r} is not a keyword")
    return result
