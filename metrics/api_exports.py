"""Feedback exports over the API (SPEC section 4), as `metrics.exports` makes them:

- `POST /api/v1/exports/` `{"format", "queue"?, "since"?, "until"?}` starts one: 202;
- `GET /api/v1/exports/{id}/` its status, rows written so far and, once it has
  succeeded, `download_url`;
- `GET /api/v1/exports/{id}/download/` the file, as an attachment.

For compliance staff, policy admins and superusers signed in (session or token);
integrations (API keys), reviewers and everyone else get a 403, anonymous callers a
401. The file is kept under HITL_EXPORTS_DIR, outside every static or media URL:
this view is the only way to it.

Routed from `hitl_project/api.py` by `include("metrics.api_exports")`, never imported
there (nothing outside `metrics` imports `metrics`).
"""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics.api import MOMENT_HELP, MomentField
from metrics.exports import CONTENT_TYPES, download_name, may_export, start_export
from metrics.models import FeedbackExport
from reviews.api.authentication import integration_of
from reviews.api.views import ERROR_RESPONSES
from reviews.exceptions import Conflict


class ExportInputSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FeedbackExport.Format.choices)
    queue = serializers.SlugField(
        required=False, allow_null=True, max_length=100, help_text="One queue's slug; none: every queue."
    )
    since = MomentField(
        required=False,
        allow_null=True,
        help_text="Start of the window (included). Default: where the last succeeded export "
        f"of this format and queue ended (incremental), or the first decision. {MOMENT_HELP}",
    )
    until = MomentField(
        required=False,
        allow_null=True,
        end_of_day=True,
        help_text="End of the window (excluded; a date: up to its end). Default, and at most: now. "
        + MOMENT_HELP,
    )


class ExportSerializer(serializers.ModelSerializer):
    queue = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    rows = serializers.IntegerField(help_text="Rows written so far.")
    error = serializers.CharField(help_text="Why it failed (empty unless failed).")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = FeedbackExport
        fields = ["id", "status", "format", "rows", "download_url", "queue", "since", "until", "error"]
        read_only_fields = fields

    def get_download_url(self, export: FeedbackExport) -> str | None:
        """Where to download the file once the export has succeeded (null until then)."""
        if export.status != FeedbackExport.Status.SUCCEEDED:
            return None
        url = reverse("api:export-download", args=[export.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class MayExport(BasePermission):
    message = "Feedback exports are for compliance staff, policy admins and superusers."

    def has_permission(self, request, view) -> bool:
        return integration_of(request) is None and may_export(request.user)


class ExportsView(APIView):
    permission_classes = [MayExport]

    @extend_schema(
        operation_id="exports_create",
        tags=["exports"],
        request=ExportInputSerializer,
        responses={202: ExportSerializer, **ERROR_RESPONSES},
    )
    def post(self, request):
        """Start a feedback export: the final decisions of the window, written to a file
        by a worker. Poll the export until it has succeeded, then download it."""
        body = ExportInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        export = start_export(user=request.user, **body.validated_data)
        return Response(ExportSerializer(export, context={"request": request}).data, status=202)


class ExportView(APIView):
    permission_classes = [MayExport]

    @extend_schema(
        operation_id="exports_retrieve",
        tags=["exports"],
        responses={
            200: ExportSerializer,
            404: OpenApiResponse(description="No such export"),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request, pk):
        """An export's status, its rows written so far and, once succeeded, its download URL."""
        export = get_object_or_404(FeedbackExport.objects.select_related("queue"), pk=pk)
        return Response(ExportSerializer(export, context={"request": request}).data)


DOWNLOAD_DESCRIPTION = (
    "The export's file as an attachment: JSON Lines for `jsonl` and `preference_pairs`, "
    "CSV (a header row, nested values as JSON, a cell a spreadsheet would run as a formula "
    "prefixed with ') for `csv`."
)


class ExportDownloadView(APIView):
    permission_classes = [MayExport]

    @extend_schema(
        operation_id="exports_download",
        tags=["exports"],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description=DOWNLOAD_DESCRIPTION
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=DOWNLOAD_DESCRIPTION),
            404: OpenApiResponse(description="No such export, or its file is gone"),
            409: OpenApiResponse(description="The export has not succeeded (yet)"),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request, pk):
        """Download a succeeded export's file."""
        export = get_object_or_404(FeedbackExport.objects.select_related("queue"), pk=pk)
        if export.status != FeedbackExport.Status.SUCCEEDED or not export.file:
            raise Conflict(
                f"The export is {export.status}: nothing to download yet.", code="export_not_ready"
            )
        try:
            handle = export.file.open("rb")
        except FileNotFoundError as exc:
            raise NotFound("The export's file is gone from the exports folder.") from exc
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=download_name(export),
            content_type=CONTENT_TYPES[export.format],
        )
        response["Cache-Control"] = "no-store"
        return response


urlpatterns = [
    path("", ExportsView.as_view(), name="exports"),
    path("<uuid:pk>/", ExportView.as_view(), name="export"),
    path("<uuid:pk>/download/", ExportDownloadView.as_view(), name="export-download"),
]
