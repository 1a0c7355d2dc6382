"""What the gate's check decides per message: shared by the Python check
(``dnc.gate.reader``) and the compiled one (``dnc.gate.native``)."""

from __future__ import annotations

# account, channel, sender, contact (all canonical), fingerprint, field (see dnc.index.layout)
Parsed = tuple[str, str, str, str, int, bytes]
# Per record: the fields of a message that is looked up (or must keep its channel), the
# error text of one that is invalid, or None for one the filter ruled out.
Decision = Parsed | str | None
