"""Inbound keywords (CONTRACT.md rule 5): what counts as an opt-out, an opt-out of all
senders and an opt-in, including the Unicode tricks people (and spammers) use."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnc.domain.keywords import (
    DEFAULT_OPT_IN,
    DEFAULT_OPT_OUT,
    DEFAULT_OPT_OUT_ALL,
    KeywordAction,
    KeywordMatcher,
    fold_keyword,
)
from dnc.errors import ConfigurationError
from tests.unit.conftest import CostlyWork

FAST = settings(max_examples=300, deadline=None)
MATCHER = KeywordMatcher(DEFAULT_OPT_OUT, DEFAULT_OPT_OUT_ALL, DEFAULT_OPT_IN)
OUT, ALL, IN = KeywordAction.OPT_OUT, KeywordAction.OPT_OUT_ALL, KeywordAction.OPT_IN

CONTRACT_OPT_OUT = [
    "STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT",
    "OPT-OUT", "REMOVE", "ARRET", "ARRÊT", "STOPP", "PARAR", "BAJA", "ALTO", "PARE",
    "SAIR", "ABMELDEN", "DESINSCRIBIR",
]  # fmt: skip
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f",
             "\u202a", "\u202c", "\u2066", "\u2069"]  # fmt: skip
# Per Latin letter, look-alikes from other scripts (and NFKC-folded forms).
LOOKALIKES = {
    "S": ["S", "s", "Ѕ", "ѕ", "Ｓ", "𝐒", "ꜱ", "Ꮪ"],
    "T": ["T", "t", "Т", "Τ", "т", "τ", "Ｔ", "ᴛ", "Ꭲ"],
    "O": ["O", "o", "О", "о", "Ο", "ο", "օ", "Ｏ", "ᴏ"],
    "P": ["P", "p", "Р", "р", "Ρ", "ρ", "Ｐ", "ᴘ", "Ꮲ"],
}


def test_defaults_cover_the_contract() -> None:
    assert set(CONTRACT_OPT_OUT) <= set(DEFAULT_OPT_OUT)
    assert {"STOPALL", "STOP ALL"} <= set(DEFAULT_OPT_OUT_ALL)
    assert {"START", "UNSTOP"} <= set(DEFAULT_OPT_IN)
    assert "YES" not in DEFAULT_OPT_IN
    for word in CONTRACT_OPT_OUT:
        assert MATCHER.classify(word) is OUT, word
        assert MATCHER.classify(word.lower()) is OUT, word


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", OUT), ("Stop", OUT), ("stop", OUT), ("sToP", OUT), ("Stop!!!", OUT),
        ("stop.", OUT), ("STOP…", OUT), ("  stop  \n", OUT), ("Stop 🛑", OUT),
        ("stop ❤️", OUT), ("Opt out", OUT), ("opt   out", OUT), ("opt\u2010out", OUT),
        ("OPT–OUT", OUT), ("arrêt", OUT), ("Arret !", OUT), ("ARRE\u0302T", OUT),
        ("Désinscrire", OUT), ("ＳＴＯＰ", OUT), ("𝐒𝐓𝐎𝐏", OUT), ("\u200fSTOP\u200f", OUT),
        ("ST\u200bOP", OUT), ("ЅТОР", OUT), ("ꜱᴛᴏᴘ", OUT),
        (" STOP ALL ", ALL), ("stopall", ALL), ("Stop   All!", ALL), ("STOP\u200bALL", ALL),
        ("START", IN), ("start!", IN), ("Unstop", IN), ("ST\u200bART", IN),
        ("STOP please", None), ("please stop", None), ("stopping", None), ("", None),
        ("   ", None), ("!!!", None), ("¿STOP?", OUT), ("hello", None), ("yes", None),
        ("\u0405TART", None), ("ЅТАRТ", None), ("UNЅTOP", None), ("S T O P", None),
    ],
)  # fmt: skip
def test_classify_examples(text: str, expected: KeywordAction | None) -> None:
    assert MATCHER.classify(text) is expected


@pytest.mark.parametrize(
    "value", [None, 5, 3.5, b"STOP", ["STOP"], {"text": "STOP"}, "STOP" + " " * 157, "x" * 10**7]
)
def test_classify_non_strings_and_long_texts(value: object, costly: CostlyWork) -> None:
    assert MATCHER.classify(value) is None
    assert costly.longest < costly.BOUNDED  # a long text is never folded


def test_fold_keyword() -> None:
    assert fold_keyword(" Stop!!! ", homoglyphs=False) == "stop"
    assert fold_keyword("OPT\u2014OUT.", homoglyphs=False) == "opt-out"
    assert fold_keyword("a \t\n b", homoglyphs=False) == "a b"
    assert fold_keyword("ARRÊT", homoglyphs=False) == "arrêt"
    assert fold_keyword("ARRÊT", homoglyphs=True) == "arret"
    assert fold_keyword("ЅТОР", homoglyphs=False) == "ѕтор"
    assert fold_keyword("ЅТОР", homoglyphs=True) == "stop"
    # Greek capital Nu looks like N, its lower case like v: mapped before casefolding.
    assert fold_keyword("ΝO", homoglyphs=True) == "no"
    assert fold_keyword("νo", homoglyphs=True) == "vo"
    assert fold_keyword("S\u00adT\u200bO\ufeffP", homoglyphs=False) == "stop"


def test_configuration_conflicts_and_custom_lists() -> None:
    matcher = KeywordMatcher(["Halt", "ARRÊT"], ["Halt", "ALLES STOP"], ["halt", "arret", "GO"])
    assert matcher.classify("halt") is ALL  # both opt-out lists: the broader block
    assert matcher.classify("ARRET") is OUT  # same word after folding: opt-out wins
    assert matcher.classify("alles stop") is ALL
    assert matcher.classify("go!") is IN
    assert matcher.classify("STOP") is None  # the lists are configuration, not code
    with pytest.raises(ConfigurationError):
        KeywordMatcher(["STOP", " !! "], [], [])
    with pytest.raises(ConfigurationError):
        KeywordMatcher([], [], [42])  # type: ignore[list-item]


# ------------------------------------------------------------------ property tests


def random_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.lower() if f else c.upper() for c, f in zip(word, flips, strict=True))


trailing = st.text(
    alphabet=st.sampled_from(list("!.?,;:…!¡)]}\"'»”’‼⁉。！？~*#+=^°$€™✋🛑🙏❤\ufe0f ")),
    max_size=6,
)
space = st.text(alphabet=st.sampled_from([" ", "\t", "\n", "\u00a0", "\u3000", "\u2003"]),
                max_size=3)  # fmt: skip


@st.composite
def disguised(draw: st.DrawFn, word: str) -> str:
    text = random_case(draw, word)
    pieces = []
    for ch in text:
        wide = ch.isascii() and ch.isalpha() and draw(st.booleans())
        pieces.append(chr(ord(ch) + 0xFEE0) if wide else ch)  # full-width form
        if draw(st.integers(0, 3)) == 0:
            pieces.append(draw(st.sampled_from(INVISIBLE)))
    return draw(space) + "".join(pieces) + draw(space) + draw(trailing) + draw(space)


@FAST
@given(st.sampled_from(DEFAULT_OPT_OUT).flatmap(disguised))
def test_disguised_opt_out_is_opt_out(text: str) -> None:
    assert MATCHER.classify(text) is OUT


@FAST
@given(st.sampled_from(DEFAULT_OPT_OUT_ALL).flatmap(disguised))
def test_disguised_opt_out_all_is_opt_out_all(text: str) -> None:
    assert MATCHER.classify(text) is ALL


@FAST
@given(st.sampled_from(DEFAULT_OPT_IN).flatmap(disguised))
def test_visible_opt_in_variants_are_opt_in(text: str) -> None:
    assert MATCHER.classify(text) is IN


@FAST
@given(st.tuples(*(st.sampled_from(LOOKALIKES[c]) for c in "STOP")), trailing)
def test_homoglyph_stop_is_opt_out(letters: tuple[str, ...], tail: str) -> None:
    assert MATCHER.classify("".join(letters) + tail) is OUT


@FAST
@given(st.sampled_from(DEFAULT_OPT_IN), st.data())
def test_look_alike_opt_in_never_removes_an_opt_out(word: str, data: st.DataObject) -> None:
    swaps = {"S": "Ѕ", "T": "Т", "A": "А", "R": "Ꭱ", "O": "О", "P": "Р", "U": "Ս", "N": "Ν"}
    positions = [i for i, c in enumerate(word) if c in swaps]
    chosen = data.draw(st.sets(st.sampled_from(positions), min_size=1))
    text = "".join(swaps[c] if i in chosen else c for i, c in enumerate(word))
    assert MATCHER.classify(text) is None


@FAST
@given(st.sampled_from(DEFAULT_OPT_OUT), st.text(min_size=1, max_size=10).filter(str.strip))
def test_keyword_plus_other_words_is_nothing(word: str, extra: str) -> None:
    text = f"{word} {extra}"
    action = MATCHER.classify(text)
    # Only if the extra text folds away (punctuation) or completes another keyword.
    if action is not None:
        folded = fold_keyword(text, homoglyphs=True)
        assert folded in {fold_keyword(w, homoglyphs=True) for w in (
            *DEFAULT_OPT_OUT, *DEFAULT_OPT_OUT_ALL, *DEFAULT_OPT_IN)}  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=st.characters(exclude_categories=[]), max_size=200),
        st.text(max_size=170),
        st.none(), st.integers(), st.binary(), st.floats(), st.lists(st.text(max_size=3)),
    )
)  # fmt: skip
def test_classify_never_raises(value: object) -> None:
    result = MATCHER.classify(value)
    assert result is None or isinstance(result, KeywordAction)
    if isinstance(value, str):
        for homoglyphs in (True, False):
            assert isinstance(fold_keyword(value, homoglyphs=homoglyphs), str)
