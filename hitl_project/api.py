"""API plumbing shared by every app: the router and the exception handler."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from reviews.exceptions import DomainError


def exception_handler(exc, context):
    """Domain errors become `{"detail", "code"}` with their status; the rest as DRF does."""
    if isinstance(exc, DomainError):
        body = {"detail": exc.detail, "code": exc.code}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    return drf_exception_handler(exc, context)
