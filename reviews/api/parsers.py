"""Request bodies: JSON only, bounded in size and shape before anything else sees them."""

from __future__ import annotations

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from reviews.safejson import UnsafeJSON, loads_checked


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


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
