"""Log lines that free text cannot forge.

Justifications, webhook errors and submitted patterns end up in log messages. A
newline in one would start a line of its own ("2026-12-01 CRITICAL django.security
…") that log readers and shippers take for a real record; a carriage return or a
bidi override would hide what precedes it. ``SingleLineFormatter`` writes each
record's message on one line, control characters visibly escaped, while a
traceback keeps its lines.
"""

from __future__ import annotations

import logging

# C0 and C1 controls and DEL (NEL, U+0085, breaks lines too), the Unicode line and
# paragraph separators, and the bidi marks, embeddings, overrides and isolates.
_ESCAPED = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, 0x2028, 0x2029]
_ESCAPED += [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_LINE_TABLE = {code: _escape(code) for code in _ESCAPED}
# In a traceback only newlines stay as they are.
_TRACEBACK_TABLE = {code: text for code, text in _LINE_TABLE.items() if code != ord("\n")}


def escape_line(text: str) -> str:
    """``text`` on one line: control, separator and bidi characters as ``\\n``, ``\\x1b``, ``\\u202e``."""
    return text.translate(_LINE_TABLE)


class SingleLineFormatter(logging.Formatter):
    """``logging.Formatter`` whose message part is always exactly one line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_line(super().formatMessage(record))

    def formatException(self, ei) -> str:
        return super().formatException(ei).translate(_TRACEBACK_TABLE)

    def formatStack(self, stack_info: str) -> str:
        return super().formatStack(stack_info).translate(_TRACEBACK_TABLE)
