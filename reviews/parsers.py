"""Request bodies: JSON only, bounded in size and shape before anything else sees them."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


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


class BoundedJSONParser(JSONParser):
    """JSON no larger than HITL_MAX_SUBMISSION_BYTES (413 otherwise), no NaN or Infinity."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.HITL_MAX_SUBMISSION_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return loads_checked(raw.decode(encoding))
        except UnicodeDecodeError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
        except UnsafeJSON as exc:
            raise ParseError(str(exc)) from exc
