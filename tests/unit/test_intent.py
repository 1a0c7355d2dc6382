"""Opt-outs in people's own words (dnc.domain.intent): the verdicts a reviewer and the FCC
rule care about, measured on the labelled corpus, plus the false friends by name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnc.domain.intent import MAX_INTENT_TEXT, IntentMatcher, Verdict, load_languages
from dnc.domain.keywords import DEFAULT_OPT_OUT
from dnc.errors import ConfigurationError
from tests.unit import intent_corpus
from tests.unit.conftest import CostlyWork

MATCHER = IntentMatcher.default()
OUT, MAYBE, NONE = Verdict.OPT_OUT, Verdict.POSSIBLE_OPT_OUT, Verdict.NONE
KEYWORD_LANGUAGES = {"en", "fr", "de", "es", "pt", "it", "nl", "sv", "no"}


def test_the_corpus_is_large_labelled_and_multilingual() -> None:
    samples = intent_corpus.load()
    assert len(samples) >= 400
    by_label = {label: [s for s in samples if s.label == label] for label in intent_corpus.LABELS}
    assert all(len(group) >= 100 for group in by_label.values()), {
        k: len(v) for k, v in by_label.items()
    }
    assert len({s.language for s in samples}) >= 6
    assert len({s.text for s in samples}) == len(samples), "a text is labelled twice"


def test_precision_and_recall_on_the_corpus() -> None:
    matrix = intent_corpus.confusion(MATCHER, intent_corpus.load())
    precision, recall = intent_corpus.scores(matrix)
    table = intent_corpus.render(matrix)
    assert precision >= 0.98, table
    assert recall >= 0.95, table


def test_every_language_of_the_keyword_lists_has_a_phrase_file() -> None:
    assert set(load_languages()) >= KEYWORD_LANGUAGES
    # Every default keyword, alone, is an opt-out to the matcher as well.
    for word in DEFAULT_OPT_OUT:
        assert MATCHER.classify(word).verdict is OUT, word


@pytest.mark.parametrize(
    ("text", "verdict", "language"),
    [
        ("Please stop texting me!!", OUT, "en"),
        ("Stop texting me please", OUT, "en"),
        ("STOOOOP texting me 🛑🛑", OUT, "en"),
        ("stpo", OUT, "en"),
        ("unsubcribe me", OUT, "en"),
        ("ЅТОР texting me", OUT, "en"),  # Cyrillic look-alikes
        ("S\u200bTOP sending me messages", OUT, "en"),  # zero-width space
        ("no more messages", OUT, "en"),
        ("leave me alone", OUT, "en"),
        ("No más mensajes", OUT, "es"),
        ("ne m'envoyez plus de SMS", OUT, "fr"),
        ("Bitte keine SMS mehr", OUT, "de"),
        ("Não me enviem mais mensagens", OUT, "pt"),
        ("Non mandatemi più messaggi", OUT, "it"),
        ("Can you stop texting me?", OUT, "en"),  # a request, not a question
        ("How do I stop these texts?", MAYBE, "en"),
        ("STOP. Who is this?", MAYBE, "en"),
        ("Can you stop by at 5?", NONE, None),
        ("stop by the store", NONE, None),
        ("Don't stop!", NONE, None),
        ("non-stop", NONE, None),
        ("There's a STOP sign on the corner", NONE, None),
        ("can't wait for you to stop by", NONE, None),
        ("how do I stop my order?", NONE, None),
        ("I need to cancel my appointment", NONE, None),
        ("See you at the end of the week", NONE, None),
        ("the unsubscribe link is broken", NONE, None),
        ("Please don't unsubscribe me", NONE, None),
        ("", NONE, None),
        ("👍", NONE, None),
    ],
)
def test_examples(text: str, verdict: Verdict, language: str | None) -> None:
    got = MATCHER.classify(text)
    assert (got.verdict, got.language) == (verdict, language), got
    assert (got.phrase is None) == (verdict is NONE)


def test_the_verdict_names_what_matched() -> None:
    got = MATCHER.classify("Pleeease STOP texting me!!")
    assert got.phrase == "stop texting"  # the longest of the strongest matches
    assert got.rule is not None and got.rule.startswith("stop texting|")


def test_lists_are_configuration() -> None:
    matcher = IntentMatcher(
        {
            "xx": {
                "strong": ["halt"],
                "opt_out": ["no more beeps|boops"],
                "false_friends": ["halt and"],
            }
        }
    )
    assert matcher.classify("HALT!").verdict is OUT
    assert matcher.classify("no more boops please").verdict is OUT
    assert matcher.classify("halt and catch fire").verdict is NONE
    assert matcher.classify("please stop texting me").verdict is NONE  # not in these lists
    with pytest.raises(ConfigurationError, match="opt_out must be a list"):
        IntentMatcher({"xx": {"opt_out": "stop"}})
    with pytest.raises(ConfigurationError, match="starts with"):
        IntentMatcher({"xx": {"opt_out": ["... stop"]}})
    with pytest.raises(ConfigurationError, match="one word"):
        IntentMatcher({"xx": {"negations": ["do not"]}})
    with pytest.raises(ConfigurationError, match="no language"):
        IntentMatcher({})
    with pytest.raises(ConfigurationError, match="no file for language 'zz'"):
        load_languages(["zz"])


def test_long_texts_are_read_only_so_far(costly: CostlyWork) -> None:
    assert MATCHER.classify("stop texting me " + "x" * 10**6).verdict is OUT
    assert MATCHER.classify("x " * 10**6 + "stop texting me").verdict is NONE
    assert costly.longest <= MAX_INTENT_TEXT


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=st.characters(exclude_categories=[]), max_size=200),
        st.text(max_size=120),
        st.none(), st.integers(), st.binary(), st.lists(st.text(max_size=3)),
    )
)  # fmt: skip
def test_classify_never_raises(value: object) -> None:
    got = MATCHER.classify(value)
    assert got.verdict in set(Verdict)
    if not isinstance(value, str):
        assert got.verdict is NONE
