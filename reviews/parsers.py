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


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def check_json_shape(value, depth: int = 0) -> None:
    """Refuse what JSON allows but storage does not: deep nesting, NUL characters
    (PostgreSQL's jsonb refuses them) and unpaired surrogates (not UTF-8)."""
    if depth > MAX_DEPTH:
        raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.", code="too_deep")
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
        raise ParseError("Strings may not contain the NUL character (\\u0000).", code="invalid_string")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParseError(
            "Strings must be valid Unicode (no unpaired surrogates).", code="invalid_string"
        ) from exc


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
            data = json.loads(raw.decode(encoding), parse_constant=_reject_constant)
        except RecursionError as exc:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.", code="too_deep") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
        check_json_shape(data)
        return data
