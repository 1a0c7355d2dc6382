"""The labelled corpus of inbound replies (tests/unit/data/intent_corpus.tsv) and the
figures the intent matcher is held to; shared by the unit test and the benchmark."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dnc.domain.intent import IntentMatcher, Verdict

CORPUS = Path(__file__).parent / "data" / "intent_corpus.tsv"
LABELS = ("opt_out", "lookalike", "ordinary")


@dataclass(frozen=True)
class Sample:
    label: str
    language: str
    text: str
    reason: str
    line: int


def load() -> list[Sample]:
    samples = []
    for n, raw in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        label, language, text, reason = raw.split("\t")
        if label not in LABELS or not reason.strip():
            raise ValueError(f"{CORPUS.name}:{n}: bad label {label!r} or missing reason")
        samples.append(Sample(label, language, text, reason, n))
    return samples


def confusion(matcher: IntentMatcher, samples: list[Sample]) -> Counter[tuple[str, Verdict]]:
    return Counter((s.label, matcher.classify(s.text).verdict) for s in samples)


def scores(matrix: Counter[tuple[str, Verdict]]) -> tuple[float, float]:
    """Precision of opt_out and recall of opt-outs (opt_out or possible_opt_out)."""
    said_out = sum(n for (_, v), n in matrix.items() if v is Verdict.OPT_OUT)
    right_out = matrix["opt_out", Verdict.OPT_OUT]
    found = right_out + matrix["opt_out", Verdict.POSSIBLE_OPT_OUT]
    total = sum(n for (label, _), n in matrix.items() if label == "opt_out")
    return (right_out / said_out if said_out else 1.0), (found / total if total else 1.0)


def render(matrix: Counter[tuple[str, Verdict]]) -> str:
    verdicts = list(Verdict)
    rows = [f"{'label / verdict':<16}" + "".join(f"{v.value:>18}" for v in verdicts)]
    for label in LABELS:
        rows.append(f"{label:<16}" + "".join(f"{matrix[label, v]:>18}" for v in verdicts))
    precision, recall = scores(matrix)
    rows.append(
        f"opt_out precision {precision:.3f}; opt-out recall (opt_out ∪ possible) {recall:.3f}"
    )
    return "\n".join(rows)
