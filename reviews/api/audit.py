"""The audit export, `GET /api/v1/audit/events/` (SPEC section 10): the audit log as
JSON Lines or CSV, streamed as `reviews.audit.all_audit_events` reads it (a page of
each history table at a time, `PIECE_LINES` lines a piece of the response), so memory
stays bounded however many events the filters select.

For people who read everything (Compliance and superusers), by session or token;
integrations and everyone else get a 403. The filters are the audit log page's
(`reviews.audit.AuditFilterForm`); a bad one is a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from hitl_project.replica import reading_from_replica, streamed_from_replica
from reviews.access import sees_everything
from reviews.api.authentication import integration_of
from reviews.api.views import ERROR_RESPONSES
from reviews.audit import DATE_HELP, AuditFilterForm, all_audit_events
from reviews.models import ActorKind
from reviews.spreadsheet import safe_row

CSV_COLUMNS = ("at", "actor_kind", "actor", "model", "object_id", "item", "event", "changes", "reason")
FORMATS = {
    "jsonl": ("application/x-ndjson; charset=utf-8", "jsonl"),
    "csv": ("text/csv; charset=utf-8", "csv"),
}


class ReadsEverything(BasePermission):
    message = "The audit export is for compliance staff and superusers."

    def has_permission(self, request, view) -> bool:
        return integration_of(request) is None and sees_everything(request.user)


class ErrorsAsJSON(BaseContentNegotiation):
    """The export picks its own format (`format=`, not the Accept header or DRF's
    format suffix); errors are always the API's JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


PIECE_LINES = 500  # lines joined into each piece of the streamed response


def jsonl_lines(events: Iterable[dict]) -> Iterator[str]:
    encode = DjangoJSONEncoder(ensure_ascii=False).encode  # one encoder for the whole export
    for event in events:
        yield encode(event) + "\n"


def csv_lines(events: Iterable[dict]) -> Iterator[str]:
    encode = DjangoJSONEncoder(ensure_ascii=False).encode
    yield safe_row(CSV_COLUMNS)
    for event in events:
        actor = event["actor"]
        yield safe_row(
            (
                event["at"],
                actor["kind"],
                actor["name"],
                event["model"],
                event["object_id"],
                event["item"],
                event["event"],
                encode(event["changes"]),
                event["reason"],
            )
        )


def pieces(lines: Iterable[str], size: int = PIECE_LINES) -> Iterator[str]:
    """The lines, `size` at a time in one string: a response written a line at a time
    spends more on each write than on the line."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)


AuditEventSerializer = inline_serializer(
    "AuditEvent",
    {
        "at": serializers.DateTimeField(),
        "actor": inline_serializer(
            "AuditActor",
            {
                # Not an enum in the schema: another choice set already owns the name `kind`.
                "kind": serializers.CharField(help_text="`user`, `integration` or `system`."),
                "name": serializers.CharField(),
            },
        ),
        "model": serializers.CharField(help_text="The model's label, e.g. `reviews.decision`."),
        "object_id": serializers.CharField(),
        "item": serializers.UUIDField(allow_null=True, help_text="The item the object belongs to, if any."),
        "event": serializers.ChoiceField(choices=["created", "changed", "deleted"]),
        "changes": serializers.DictField(
            child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
            help_text="`{field: [old, new]}`.",
        ),
        "reason": serializers.CharField(allow_null=True),
    },
)


def _parameter(name: str, kind=OpenApiTypes.STR, **options) -> OpenApiParameter:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, required=False, **options)


PARAMETERS = [
    _parameter("format", enum=list(FORMATS), description="`jsonl` (default) or `csv`."),
    _parameter("actor", description="A name as the rows recorded it; `system:<name>` for a task or command."),
    _parameter("actor_kind", enum=ActorKind.values),
    _parameter("model", description="A model's label, e.g. `reviews.reviewitem` or `policies.gaterule`."),
    _parameter("queue", description="A queue's slug or id: its items, decisions, backlog and rules."),
    _parameter("item", OpenApiTypes.UUID, description="An item: its rows and those of what belongs to it."),
    _parameter("since", description=f"Events at or after this moment. {DATE_HELP}"),
    _parameter("until", description=f"Events before this moment (a date: up to its end). {DATE_HELP}"),
]

EXPORT_DESCRIPTION = (
    "Newest first. JSON Lines: one event a line (this schema). CSV: a header row ("
    + ", ".join(CSV_COLUMNS)
    + "), then one event a row, `changes` as JSON, and a cell that a spreadsheet would run as a "
    "formula (starting with =, +, -, @) prefixed with '. An attachment named audit-events-<date>."
)


class AuditEventsView(APIView):
    permission_classes = [ReadsEverything]
    content_negotiation_class = ErrorsAsJSON

    @extend_schema(
        operation_id="audit_events",
        tags=["audit"],
        parameters=PARAMETERS,
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                AuditEventSerializer, description=EXPORT_DESCRIPTION
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=EXPORT_DESCRIPTION),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        """The audit log as a streamed export: every history event the filters select,
        newest first, as JSON Lines (one event a line) or CSV."""
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in FORMATS:
            raise serializers.ValidationError({"format": [f"One of: {', '.join(FORMATS)}."]})
        params = request.query_params.copy()
        params.pop("before", None)  # the export is every page
        form = AuditFilterForm(params)
        with reading_from_replica():  # the queue filter's lookup
            valid = form.is_valid()
        if not valid:
            errors = {name: list(messages) for name, messages in form.errors.items()}
            if "__all__" in errors:
                errors["non_field_errors"] = errors.pop("__all__")
            raise serializers.ValidationError(errors)
        events = all_audit_events(**form.filters())
        content_type, extension = FORMATS[fmt]
        lines = csv_lines(events) if fmt == "csv" else jsonl_lines(events)
        # The events are read as the response is streamed, after this view returned.
        response = StreamingHttpResponse(streamed_from_replica(pieces(lines)), content_type=content_type)
        filename = f"audit-events-{timezone.now():%Y-%m-%d}.{extension}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response
