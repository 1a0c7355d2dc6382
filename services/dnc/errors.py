"""Error classes that carry their handling policy.

Every consume path decides what to do with a failure by the class of the error, never by
its message: a ``PoisonRecord`` goes to the dead-letter topic and the consumer moves on;
a ``retriable`` error makes the component wait and try the same work again (the gate
keeps the batch, forwards nothing and commits nothing); anything else stops the
component, because an error nobody planned for may mean a message to someone who opted
out. Allow/block decisions are values, never exceptions.
"""

from __future__ import annotations

from typing import ClassVar


class DncError(Exception):
    """Base class. ``retriable`` says whether the same work may succeed later."""

    retriable: ClassVar[bool] = False


class PoisonRecord(DncError):
    """An input record that can never be processed; it goes to ``dnc.dead-letter``."""


class InvalidValue(PoisonRecord, ValueError):
    """A field whose value is wrong. The message names the field, the value and why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {_show(value)} {reason}")


class MissingField(InvalidValue):
    def __init__(self, field: str) -> None:
        super().__init__(field, None, "is required")

    def __str__(self) -> str:
        return f"{self.field}: is required"


class DuplicateField(InvalidValue):
    def __init__(self, field: str) -> None:
        super().__init__(field, None, "appears more than once in the message")

    def __str__(self) -> str:
        return f"{self.field}: appears more than once in the message"


class NotJson(PoisonRecord):
    """The record value is not a JSON object."""


class IndexUnavailable(DncError):
    """Redis cannot be reached or did not answer in time. Wait and retry."""

    retriable = True


class IndexNotReady(DncError):
    """The index is empty, being rebuilt, or behind the changelog after a loss. Wait."""

    retriable = True


class IndexBehind(IndexNotReady):
    """The index has not applied the changelog up to where the gate must see it."""


class IndexDiverged(DncError):
    """Redis holds older data than this process applied (restart that lost writes, or a
    FLUSH). The list writer replays the changelog from what Redis says it has."""

    retriable = True


class ViewUnavailable(DncError):
    """The list view's database cannot be reached or answered with a connection error.
    Listing, export and history wait for it (503); checks and writes do not need it."""

    retriable = True


class ViewQueryTimeout(ViewUnavailable):
    """A list query ran longer than the view's statement timeout and was stopped (503,
    saying so): a filter the indexes do not narrow, on a large list."""


class ConfigurationError(DncError):
    """The deployment is wrong (topic partition counts, index layout). Stop and say why."""


class ProducerCannotStart(DncError):
    """A partition's transactional producer kept failing to start while the brokers
    answered. Stop: the role leaves its consumer group and another instance takes the
    partition (waiting here would hold its records back for good)."""


def _show(value: object, limit: int = 80) -> str:
    """repr() of a value, shortened so that a hostile 10 MB field does not flood logs."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 5] + "…" + text[-4:]
    return text
