"""Micro-benchmark of the gate's per-message normalisation (destination_key).

Run: .venv/bin/python benchmarks/bench_normalise.py
Prints microseconds per call; phonenumbers.parse is there for scale.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import phonenumbers

from dnc.domain import contacts
from dnc.domain.contacts import destination_key

CANONICAL = ["441234567890", "12025550143", "4915112345678", "33612345678", "61412345678"]
FORMATTED = ["+44 1234 567890", "+1 202 555 0143", "0049 151 12345678", "+33 6 12 34 56 78"]
EXACT_ONLY = ["+44 (0) 1234 567890", "+39 06 1234 5678", "+1 (202) 555-0143"]
EMAILS = ["jane@example.com", "John.Smith@Example.co.uk", "news+tag@acme.com"]


def per_call(fn: Callable[[], object], calls: int) -> float:
    # Best of five repeats: the least disturbed run is the closest to the real cost.
    return min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e6


def over(values: list[str], fn: Callable[[str], object]) -> Callable[[], object]:
    def run() -> object:
        result = None
        for value in values:
            result = fn(value)
        return result

    return run


def main() -> None:
    destination_key("441234567890")  # first call builds the phone table; not measured
    rows: list[tuple[str, float]] = []

    def bench(name: str, values: list[str], fn: Callable[[str], object], calls: int) -> None:
        rows.append((name, per_call(over(values, fn), calls) / len(values)))

    bench("destination_key canonical phone", CANONICAL, destination_key, 100_000)
    bench("destination_key formatted phone", FORMATTED, destination_key, 100_000)
    bench("destination_key phone needing parse()", EXACT_ONLY, destination_key, 5_000)
    bench("destination_key e-mail (cached)", EMAILS, destination_key, 100_000)

    counter = iter(range(10**9))

    def fresh_fast_email() -> object:
        contacts._email_key.cache_clear()
        return destination_key(f"user{next(counter)}@example.com")

    def fresh_slow_email() -> object:  # non-ASCII: email_validator does the work
        contacts._email_key.cache_clear()
        return destination_key(f"josé{next(counter)}@exämple.com")

    rows.append(("destination_key e-mail (uncached, regex)", per_call(fresh_fast_email, 20_000)))
    rows.append(("destination_key e-mail (uncached, validator)", per_call(fresh_slow_email, 2_000)))
    plain = ["+" + value for value in CANONICAL]
    bench("phonenumbers.parse (comparison)", plain, lambda v: phonenumbers.parse(v, None), 5_000)

    def parse_check_format(value: str) -> str:
        number = phonenumbers.parse(value, None)
        phonenumbers.is_possible_number(number)
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    bench("parse + is_possible + format (comparison)", plain, parse_check_format, 5_000)

    width = max(len(name) for name, _ in rows)
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:8.3f} µs/call")


if __name__ == "__main__":
    main()
