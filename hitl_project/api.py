"""API plumbing shared by every app: the router and the exception handler."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.urls import include, path
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler

from reviews.api.audit import AuditEventsView
from reviews.api.views import EvaluateView, IncidentView, ItemViewSet, QueueViewSet
from reviews.exceptions import DomainError

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("items", ItemViewSet, basename="item")
router.register("queues", QueueViewSet, basename="queue")

urlpatterns = [
    *router.urls,
    path("evaluate/", EvaluateView.as_view(), name="evaluate"),
    path("incidents/", IncidentView.as_view(), name="incidents"),
    path("metrics/", include("metrics.api")),  # named here, never imported: metrics is a leaf
    path("exports/", include("metrics.api_exports")),  # likewise
    path("audit/events/", AuditEventsView.as_view(), name="audit-events"),
]


def exception_handler(exc, context):
    """Errors are `{"detail", "code"}` (or DRF field errors for invalid input)."""
    if isinstance(exc, DomainError):
        body = {"detail": exc.detail, "code": exc.code}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = NotFound()  # never name the model, and carry a code like every other error
    elif isinstance(exc, DjangoPermissionDenied):
        exc = PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException) and isinstance(response.data, dict):
        codes = exc.get_codes()
        if "detail" in response.data and isinstance(codes, str):
            response.data["code"] = codes
    return response


STRICT_REQUEST_COMPONENTS = ("SubmissionRequest", "ActionRequest", "IncidentInputRequest")


def strict_request_bodies(result, generator, request, public):
    """drf-spectacular hook: request bodies whose serializers refuse unknown keys
    say so (`additionalProperties: false`), so the schema matches the API."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in STRICT_REQUEST_COMPONENTS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
