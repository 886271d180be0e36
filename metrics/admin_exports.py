"""Feedback exports in the admin (Metrics › Feedback exports), for compliance staff,
policy admins and superusers: past exports with their window, status and rows
written (the page reloads itself while one is under way: a `<meta>` refresh, no
script), a form that starts one through `metrics.exports.start_export`, the
download link once an export has succeeded and the error once it has failed.

Downloads go through the API's authenticated view (`GET /api/v1/exports/{id}/download/`,
which the admin session signs in to); the files are never served from a public URL.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from metrics.exports import may_export, start_export
from metrics.models import FeedbackExport
from reviews.admin.base import ReadOnlyHistoryAdmin
from reviews.exceptions import DomainError
from reviews.models import Queue

REFRESH_SECONDS = 3
REFRESH_FOR = timedelta(days=1)  # an export still pending after this was never picked up
ERROR_PREVIEW_CHARS = 200
MOMENT_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}, format="%Y-%m-%dT%H:%M:%S")


class StartExportForm(forms.Form):
    format = forms.ChoiceField(choices=FeedbackExport.Format.choices)
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.order_by("slug"),
        to_field_name="slug",
        required=False,
        empty_label="Every queue",
    )
    since = forms.DateTimeField(
        required=False,
        widget=MOMENT_INPUT,
        help_text="UTC, included. Empty: where the last succeeded export of this format and queue ended.",
    )
    until = forms.DateTimeField(required=False, widget=MOMENT_INPUT, help_text="UTC, excluded. Empty: now.")


def _moment(value) -> str:
    return date_format(timezone.localtime(value), "Y-m-d H:i:s") if value else ""


@admin.register(FeedbackExport)
class FeedbackExportAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "created_at",
        "format",
        "queue_shown",
        "window",
        "status",
        "rows",
        "requested_by",
        "outcome",
    )
    list_filter = ("format", "status")
    list_select_related = ("queue", "requested_by")
    show_full_result_count = False
    change_list_template = "admin/metrics/exports/change_list.html"
    fields = (
        "id", "format", "queue", "since", "until", "status", "rows", "outcome", "requested_by", "created_at",
        "started_at", "finished_at", "error",
    )  # fmt: skip
    readonly_fields = fields

    def has_module_permission(self, request) -> bool:
        return may_export(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return may_export(request.user)

    def has_add_permission(self, request) -> bool:
        return False  # started from the form on the list, through start_export

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Queue", ordering="queue__slug")
    def queue_shown(self, export: FeedbackExport) -> str:
        return export.queue.slug if export.queue_id else "Every queue"

    @admin.display(description="Window")
    def window(self, export: FeedbackExport) -> str:
        return f"{_moment(export.since) or 'the first decision'} to {_moment(export.until)}"

    @admin.display(description="File or error")
    def outcome(self, export: FeedbackExport):
        if export.status == FeedbackExport.Status.SUCCEEDED and export.file:
            url = reverse("api:export-download", args=[export.pk])
            return format_html('<a href="{}" class="export-download" download>Download</a>', url)
        if export.status == FeedbackExport.Status.FAILED:
            error = export.error
            if len(error) > ERROR_PREVIEW_CHARS:
                error = error[:ERROR_PREVIEW_CHARS] + "…"
            return format_html('<span class="export-error errornote" dir="auto">{}</span>', error)
        return "-"

    def get_urls(self):
        start = path(
            "start/",
            self.admin_site.admin_view(require_POST(self.start_view)),
            name="metrics_feedbackexport_start",
        )
        return [start, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        recent_open = FeedbackExport.objects.filter(
            status__in=[FeedbackExport.Status.PENDING, FeedbackExport.Status.RUNNING],
            created_at__gte=timezone.now() - REFRESH_FOR,
        )
        context = {
            "start_form": StartExportForm(),
            "refresh_seconds": REFRESH_SECONDS if recent_open.exists() else None,
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def start_view(self, request):
        """Start an export from the list's form; back to the list, which shows it."""
        if not may_export(request.user):
            raise PermissionDenied
        changelist = reverse("admin:metrics_feedbackexport_changelist", current_app=self.admin_site.name)
        form = StartExportForm(request.POST)
        if not form.is_valid():
            for name, errors in form.errors.items():
                label = form.fields[name].label if name in form.fields else "Export"
                messages.error(request, f"{label}: {' '.join(errors)}")
            return HttpResponseRedirect(changelist)
        try:
            export = start_export(user=request.user, **form.cleaned_data)
        except DomainError as exc:
            messages.error(request, exc.detail)
            return HttpResponseRedirect(changelist)
        messages.success(request, f"Export started: {export.get_format_display()}, {self.window(export)}.")
        return HttpResponseRedirect(changelist)
