"""JSON that may be stored: parsed with the limits every stored JSON value obeys.

Request bodies (the API's parser), edits typed in the review page and policy files
all go through `loads_checked`.
"""

from __future__ import annotations

import json

MAX_DEPTH = 32


class UnsafeJSON(ValueError):
    """JSON that must not be stored: malformed, non-finite numbers, too deep, NUL, bad Unicode."""


def _reject_constant(name: str):
    raise UnsafeJSON(f"{name} is not valid JSON")


def check_json_shape(value, depth: int = 0) -> None:
    """Refuse what JSON allows but storage does not: deep nesting, NUL characters
    (PostgreSQL's jsonb refuses them) and unpaired surrogates (not UTF-8)."""
    if depth > MAX_DEPTH:
        raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels.")
    if isinstance(value, str):
        _check_string(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key)
            check_json_shape(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_shape(item, depth + 1)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise UnsafeJSON("Strings may not contain the NUL character (\\u0000).")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeJSON("Strings must be valid Unicode (no unpaired surrogates).") from exc


def loads_checked(text: str):
    """`json.loads` with the limits every stored JSON value obeys; raises UnsafeJSON."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels.") from exc
    except UnsafeJSON:
        raise
    except ValueError as exc:
        raise UnsafeJSON(f"Malformed JSON: {exc}") from exc
    check_json_shape(data)
    return data
