"""CSV that is safe to open in a spreadsheet: a cell starting with `=`, `+`, `-`, `@`,
a tab or a carriage return would be run as a formula, so it gets a leading `'`
(OWASP's advice on CSV injection). The JSON Lines exports keep values exactly."""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_STARTS)  # one character each: the first one tells


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in _FORMULA_FIRST else text


def safe_cells(values: Iterable) -> list[str]:
    """`safe_cell` of each value: a row's cells in one call (exports write millions)."""
    texts = ["" if value is None else value if type(value) is str else str(value) for value in values]
    return ["'" + text if text[:1] in _FORMULA_FIRST else text for text in texts]


def safe_row(values: Iterable) -> str:
    """One CSV record of the values, each through `safe_cell`, exactly as `csv.writer`
    writes it in its default (excel) dialect: a cell holding a comma, a double quote or
    a line break in double quotes, its double quotes doubled, and CRLF at the end.
    String searches instead of the writer's pass over every character: exports write
    millions of rows, most of them JSON full of quotes."""
    cells = [
        '"' + cell.replace('"', '""') + '"'
        if '"' in cell or "," in cell or "\n" in cell or "\r" in cell
        else cell
        for cell in safe_cells(values)
    ]
    if cells == [""]:
        return '""\r\n'  # a record of one empty cell, which would otherwise be a blank line
    return ",".join(cells) + "\r\n"
