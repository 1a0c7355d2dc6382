"""Opt-outs in people's own words (contract addition to rule 5; see README, "Intent").

Since April 2025 the FCC's revocation rule (47 CFR 64.1200(a)(10)) makes senders honour
any reply a reasonable person would read as an opt-out, not only the exact keywords of
``dnc.domain.keywords``. This matcher reads the whole message and returns a verdict:

- ``opt_out``: an unmistakable request ("please stop texting me", "no más mensajes");
- ``possible_opt_out``: it may be one ("stop, who is this", "how do I stop these texts?"),
  for a person to decide;
- ``none``: anything else, including the false friends ("stop by at 5", "non-stop",
  "don't stop", "how do I stop my order?").

It is transparent on purpose: no model, only phrase lists per language, as data files in
``intent_phrases/`` (one TOML file per language, loaded when the matcher is built). The
text goes through the keyword normaliser (case, accents, look-alike letters, invisible
characters), then loses punctuation and emoji, letters repeated for emphasis ("stooop")
and known misspellings ("stpo", "unsubcribe"), so the lists only hold plain words.

Phrase syntax, one phrase a string: words separated by spaces; ``a|b`` is any of the
alternatives, ``[a|b]`` an optional word, ``...`` up to four words of anything.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

from dnc.domain.keywords import fold_keyword
from dnc.errors import ConfigurationError

# A longer text is read only this far: an opt-out buried after a page of text is rare,
# and the cost per message must stay bounded (it runs on every inbound message).
MAX_INTENT_TEXT = 640
LOOKBACK = 3  # words before a match where a negation or a subject cancels it


class Verdict(StrEnum):
    OPT_OUT = "opt_out"
    POSSIBLE_OPT_OUT = "possible_opt_out"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Intent:
    verdict: Verdict
    phrase: str | None = None  # the words that matched, normalised ("stop texting me")
    language: str | None = None  # of the phrase list that matched
    rule: str | None = None  # that phrase as written in the list


NO_INTENT = Intent(Verdict.NONE)

_NOT_WORD = re.compile(r"[^\w']+|_+")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'"})
_REPEATS = re.compile(r"(\D)\1+")
_SPELLED = re.compile(r"\b(?:[^\W\d] ){2,}[^\W\d]\b")  # "s t o p": letters one by one
_QUESTION_END = re.compile(r"\?[\s!?.\W]*$")
_SENTENCES = re.compile(r"[.!,;:?\n¡¿]+")
_LAST_SENTENCE = re.compile(r"[.!?\n]+")
_TRAILING = " \t\n.!?…"


def words(text: str) -> list[str]:
    """The words of a text as the lists are written: folded like a keyword, punctuation
    and emoji as spaces, apostrophes dropped (dont, menvoyez), repeats squeezed."""
    # Plain ASCII (most messages) has nothing for the keyword folding to do but lower
    # case, and the folding's per-character work is most of the matcher's cost.
    if text.isascii():
        folded = text.lower()
    else:
        folded = fold_keyword(text.translate(_APOSTROPHES), homoglyphs=True)
    spaced = _NOT_WORD.sub(" ", folded).replace("'", "")
    if " " in spaced and _SPELLED.search(spaced):
        spaced = _SPELLED.sub(lambda m: m.group().replace(" ", ""), spaced)
    return _REPEATS.sub(r"\1", spaced).split()


def _typos(word: str) -> Iterator[str]:
    """Adjacent swaps always; dropped letters only for long words, where they cannot make
    another common word."""
    for i in range(len(word) - 1):
        yield word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if len(word) >= 7:
        for i in range(len(word)):
            yield word[:i] + word[i + 1 :]


@dataclass(frozen=True, slots=True)
class _Pattern:
    kind: Verdict | None  # None: a false friend, which cancels what it overlaps
    phrase: str
    language: str
    regex: re.Pattern[str]
    bare: bool = False  # a keyword of the strong/weak lists, not a phrase
    # Per required word of the phrase, its alternatives: a message lacking one of them
    # cannot match, which a set test tells faster than the regular expression.
    needs: tuple[frozenset[str], ...] = ()


@dataclass(frozen=True, slots=True)
class _Hit:
    kind: Verdict
    pattern: _Pattern
    start: int
    end: int
    alone: bool = False  # a keyword in a sentence of its own: "STOP. Who is this?"


@dataclass
class _Language:
    code: str
    strong: list[str]
    weak: list[str]
    fillers: list[str]
    negations: list[str]
    subjects: list[str]
    requests: list[str]
    question_starts: list[str]
    typo_tolerant: list[str]
    misspellings: dict[str, str]
    opt_out: list[str]
    possible: list[str]
    false_friends: list[str]

    @classmethod
    def parse(cls, code: str, data: dict[str, Any]) -> _Language:
        fields: dict[str, Any] = {"code": code}
        for name in cls.__annotations__:
            if name == "code":
                continue
            value = data.get(name, {} if name == "misspellings" else [])
            values = list(value.values()) if isinstance(value, dict) else value
            shape_ok = isinstance(value, dict) == (name == "misspellings")
            if (
                not shape_ok
                or not isinstance(values, list)
                or not all(isinstance(v, str) for v in values)
            ):
                want = "a table of words" if name == "misspellings" else "a list of strings"
                raise ConfigurationError(f"intent phrases {code}: {name} must be {want}")
            fields[name] = value
        return cls(**fields)


class IntentMatcher:
    def __init__(self, languages: dict[str, dict[str, Any]]) -> None:
        langs = [_Language.parse(code, data) for code, data in languages.items()]
        if not langs:
            raise ConfigurationError("intent phrases: no language configured")
        self._fix: dict[str, str] = {}
        known = {w for lang in langs for p in lang.opt_out + lang.possible for w in _plain(p)}
        for lang in langs:
            for word in lang.typo_tolerant:
                (canon,) = words(word)
                for typo in _typos(canon):
                    if typo not in known and typo != canon:
                        self._fix.setdefault(_squeezed(typo), canon)
        for lang in langs:
            for wrong, right in lang.misspellings.items():
                self._fix[_one_word(wrong, lang.code)] = _one_word(right, lang.code)
        fix = self._fix

        def norm(text: str) -> list[str]:
            return [fix.get(w, w) for w in words(text)]

        def single(text: str, code: str) -> str:
            got = norm(text)
            if len(got) != 1:
                raise ConfigurationError(f"intent phrases {code}: {text!r} must be one word")
            return got[0]

        def opening(text: str, code: str) -> tuple[str, ...]:
            got = tuple(norm(text))
            if not 1 <= len(got) <= 3:
                raise ConfigurationError(f"intent phrases {code}: {text!r} must be 1 to 3 words")
            return got

        self._bare: dict[str, _Pattern] = {}
        self._polite: set[str] = set()
        # Per language: Spanish "no" negates, English "no" does not; Swedish "de" is a
        # subject, French "de" a preposition.
        self._negations: dict[str, frozenset[str]] = {}
        self._subjects: dict[str, frozenset[str]] = {}
        self._requests: set[tuple[str, ...]] = set()
        self._question_starts: set[tuple[str, ...]] = set()
        # Patterns by the words they need: opt-out phrases, and false friends, which are
        # tried only when a phrase or keyword matched.
        self._by_anchor: dict[str, list[_Pattern]] = {}
        self._friends: dict[str, list[_Pattern]] = {}

        def add(pattern: _Pattern, anchors: list[str]) -> None:
            table = self._friends if pattern.kind is None else self._by_anchor
            for anchor in anchors:
                table.setdefault(anchor, []).append(pattern)

        for lang in langs:
            for kind, keywords in (
                (Verdict.OPT_OUT, lang.strong),
                (Verdict.POSSIBLE_OPT_OUT, lang.weak),
            ):
                for keyword in keywords:
                    key = norm(keyword)
                    self._polite.update(key)
                    anchors, regex, needs = _compile(" ".join(key), lang.code, fix)
                    pattern = _Pattern(kind, keyword, lang.code, regex, True, needs)
                    if len(key) == 1:
                        self._bare.setdefault(key[0], pattern)
                    else:  # "opt out", "no más": tried like phrases
                        add(pattern, anchors)
            self._polite.update(x for f in lang.fillers for x in norm(f))
            self._negations[lang.code] = frozenset(single(f, lang.code) for f in lang.negations)
            self._subjects[lang.code] = frozenset(single(f, lang.code) for f in lang.subjects)
            self._requests.update(opening(r, lang.code) for r in lang.requests)
            self._question_starts.update(opening(q, lang.code) for q in lang.question_starts)
            for kind_or_friend, phrases in (
                (Verdict.OPT_OUT, lang.opt_out),
                (Verdict.POSSIBLE_OPT_OUT, lang.possible),
                (None, lang.false_friends),
            ):
                for phrase in phrases:
                    anchors, regex, needs = _compile(phrase, lang.code, fix)
                    add(_Pattern(kind_or_friend, phrase, lang.code, regex, False, needs), anchors)

    @classmethod
    def default(cls) -> IntentMatcher:
        return cls(load_languages())

    def classify(self, text: object) -> Intent:
        if not isinstance(text, str) or not text:
            return NO_INTENT
        text = text[:MAX_INTENT_TEXT]
        tokens = self._tokens(text)
        present = [w for w in tokens if w in self._by_anchor or w in self._bare]
        if not present:
            return NO_INTENT  # the common case: no word any phrase needs
        line = " " + " ".join(tokens) + " "
        words_in = set(tokens)
        hits: list[_Hit] = []
        for anchor in dict.fromkeys(present):
            for p in self._by_anchor.get(anchor, ()):
                if _possible(p, words_in):
                    kind = p.kind
                    assert kind is not None  # false friends are in self._friends
                    hits.extend(_Hit(kind, p, m.start(), m.end()) for m in p.regex.finditer(line))
        polite = all(w in self._polite for w in tokens)
        hits += self._bare_hits(text, line, present, polite)
        if not hits:
            return NO_INTENT
        friends = [
            (m.start(), m.end())
            for anchor in dict.fromkeys(w for w in tokens if w in self._friends)
            for p in self._friends[anchor]
            if _possible(p, words_in)
            for m in p.regex.finditer(line)
        ]
        # The last sentence decides: "who is this? stop texting me" is no question.
        sentences = _LAST_SENTENCE.split(text.rstrip(_TRAILING))
        last = tokens if len(sentences) == 1 else self._tokens(sentences[-1])
        question = bool(_QUESTION_END.search(text)) or _starts(last, self._question_starts)
        request = _starts(tokens, self._requests)
        best: _Hit | None = None
        for hit in hits:
            if any(a < hit.end and hit.start < b for a, b in friends):
                continue  # "stop by", "bus stop", "non stop"
            before = line[: hit.start].split()[-LOOKBACK:]
            code = hit.pattern.language
            if any(w in self._negations[code] for w in before):
                continue  # "don't stop", "no quiero que paren"
            if before and before[-1] in self._subjects[code]:
                continue  # "I'll stop by", "we stop at noon"
            kind = Verdict.OPT_OUT if polite and hit.pattern.bare else hit.kind
            if question and not polite and not request:
                # "how do I stop these texts?" asks; "how do I stop my order?" is nothing.
                if hit.pattern.bare and not hit.alone:
                    continue
                kind = Verdict.POSSIBLE_OPT_OUT
            if best is None or (_rank(kind), hit.end - hit.start) > (
                _rank(best.kind),
                best.end - best.start,
            ):
                best = _Hit(kind, hit.pattern, hit.start, hit.end)
        if best is None:
            return NO_INTENT
        matched = line[best.start : best.end].strip()
        p = best.pattern
        return Intent(best.kind, matched, p.language, p.phrase)

    def _tokens(self, text: str) -> list[str]:
        fix = self._fix
        return [fix.get(w, w) for w in words(text)]

    def _bare_hits(self, text: str, line: str, present: list[str], polite: bool) -> list[_Hit]:
        """Keywords on their own: with polite words only ("stop pls", "BAJA ya") an opt-out;
        a strong one in a sentence of its own ("STOP. Who is this?") or inside other words
        may be one; a weak one ("end", "cancel") among other words is nothing."""
        hits: list[_Hit] = []
        for word in dict.fromkeys(w for w in present if w in self._bare):
            pattern = self._bare[word]
            alone = polite or (
                _SENTENCES.search(text.strip(_TRAILING)) is not None
                and any(
                    word in seg and all(w in self._polite for w in seg)
                    for seg in map(self._tokens, _SENTENCES.split(text))
                )
            )
            if polite:
                kind = Verdict.OPT_OUT
            elif pattern.kind is Verdict.OPT_OUT or alone:
                kind = Verdict.POSSIBLE_OPT_OUT
            else:
                continue
            for m in re.finditer(f" {re.escape(word)} ", line):
                hits.append(_Hit(kind, pattern, m.start(), m.end(), alone))
        return hits


def _possible(pattern: _Pattern, present: set[str]) -> bool:
    for need in pattern.needs:  # noqa: SIM110 (a loop: faster than all() on the hot path)
        if need.isdisjoint(present):
            return False
    return True


def _starts(tokens: list[str], openings: set[tuple[str, ...]]) -> bool:
    return any(tuple(tokens[:n]) in openings for n in (1, 2, 3))


def _rank(kind: Verdict) -> int:
    return 2 if kind is Verdict.OPT_OUT else 1


def _squeezed(word: str) -> str:
    return _REPEATS.sub(r"\1", word)


def _plain(phrase: str) -> Iterator[str]:
    for slot in phrase.split():
        for alt in slot.strip("[]").split("|"):
            yield from words(alt)


def _one_word(text: str, code: str, fix: dict[str, str] | None = None) -> str:
    got = [fix.get(w, w) for w in words(text)] if fix else words(text)
    if len(got) != 1:
        raise ConfigurationError(f"intent phrases {code}: {text!r} must be one word")
    return got[0]


def _compile(
    phrase: str, code: str, fix: dict[str, str]
) -> tuple[list[str], re.Pattern[str], tuple[frozenset[str], ...]]:
    """A phrase as a regular expression over ' word word ... ', and the words one of
    which it needs (the pattern is tried only when one of them is in the message)."""
    parts: list[str] = []
    anchors: list[str] = []
    needs: list[frozenset[str]] = []
    for i, slot in enumerate(phrase.split()):
        if slot == "...":
            if i == 0:
                raise ConfigurationError(f"intent phrases {code}: {phrase!r} starts with '...'")
            parts.append(r"(?:\S+ ){0,4}")
            continue
        optional = slot.startswith("[") and slot.endswith("]")
        alts = [_one_word(a, code, fix) for a in slot.strip("[]").split("|") if a]
        if not alts or (i == 0 and optional):
            raise ConfigurationError(f"intent phrases {code}: bad word {slot!r} in {phrase!r}")
        # The gate: the required slot least likely to be a common word ("unsubscribe"
        # rather than "i" in "i want ... unsubscribe"), so most messages try no pattern.
        if not optional:
            needs.append(frozenset(alts))
        if not optional and (not anchors or min(map(len, alts)) > min(map(len, anchors))):
            anchors = alts
        group = "(?:" + "|".join(re.escape(a) for a in alts) + ") "
        parts.append(f"(?:{group})?" if optional else group)
    return anchors, re.compile(" " + "".join(parts)), tuple(needs)


def load_languages(codes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The bundled phrase files (``intent_phrases/<language>.toml``)."""
    folder = resources.files("dnc.domain") / "intent_phrases"
    found = {f.name.removesuffix(".toml"): f for f in folder.iterdir() if f.name.endswith(".toml")}
    # English first: a word in several lists ("stop") is reported as English.
    wanted = sorted(found, key=lambda c: (c != "en", c)) if codes is None else list(codes)
    result: dict[str, dict[str, Any]] = {}
    for code in wanted:
        if code not in found:
            raise ConfigurationError(f"intent phrases: no file for language {code!r}")
        try:
            result[code] = tomllib.loads(found[code].read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"intent phrases {code}: {exc}") from exc
    return result
