"""The list's vocabulary and rules, pure and synchronous (no I/O, no settings).

``contacts`` and ``channels`` (normalisation), ``keywords`` (opt-out words), ``entries``
(entries, commands and the rules that apply them), ``events`` (the contract's wire
formats), ``changelog`` (the changelog's record format), ``contactids`` (keyed contact
ids), ``unsubscribe`` (signed links), ``timestamps``, ``spreadsheets`` (safe cells),
``schemas`` (JSON Schemas of the events). Every other package may use it; it uses none.
"""
