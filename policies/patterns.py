"""Regular expressions of the `matches` operator: RE2 (linear time, so no pattern or
input can stall the gate), which has no backreferences or lookarounds. Rule
validation and the engine compile through the same function."""

from __future__ import annotations

import functools
from typing import Any

import re2

MAX_PATTERN_LENGTH = 500


class InvalidPattern(ValueError):
    """A pattern RE2 cannot run."""


@functools.lru_cache(maxsize=512)
def compile_re2(pattern: str) -> Any:
    """The compiled pattern; raises InvalidPattern with RE2's reason."""
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options=options)
    except (re2.error, UnicodeError) as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise InvalidPattern(str(reason)) from exc
