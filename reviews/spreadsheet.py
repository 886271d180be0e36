"""CSV that is safe to open in a spreadsheet: a cell starting with `=`, `+`, `-`, `@`,
a tab or a carriage return would be run as a formula, so it gets a leading `'`
(OWASP's advice on CSV injection). The JSON Lines exports keep values exactly."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
