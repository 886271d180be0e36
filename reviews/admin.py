"""Admin for the review domain.

Policy admins edit queues, reason codes and integrations here. Items are shown
scoped to the queues the user may review; decisions and history are read-only
for everyone, superusers included.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from reviews import delivery
from reviews.models import (
    ApiKey,
    BacklogItem,
    Decision,
    DeliveryAttempt,
    Incident,
    Integration,
    OutboxMessage,
    Queue,
    ReasonCode,
    ReviewItem,
)
from reviews.permissions import sees_everything

admin.site.site_header = "HITL review gates"
admin.site.site_title = "HITL review gates"
admin.site.index_title = "Review workspace"


class ReadOnlyHistoryAdmin(SimpleHistoryAdmin):
    """History pages may be read, never reverted: reverting rewrites the past
    (and for rules would restore the row without its conditions or a new version)."""

    def revert_disabled(self, request, obj=None) -> bool:
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # simple-history saves a POST to this view even for view-only users.
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


@admin.register(Queue)
class QueueAdmin(ReadOnlyHistoryAdmin):
    list_display = [
        "slug",
        "name",
        "sla_minutes",
        "required_approvals",
        "timeout_outcome",
        "escalation_queue",
    ]
    list_select_related = ["escalation_queue"]
    search_fields = ["slug", "name"]
    filter_horizontal = ["reviewer_groups"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "description"]}),
        (
            "Review",
            {"fields": ["required_approvals", "checklist", "reviewer_groups", "bulk_approve_allowed"]},
        ),
        ("Deadline", {"fields": ["sla_minutes", "timeout_outcome", "escalation_queue"]}),
    ]


@admin.register(ReasonCode)
class ReasonCodeAdmin(ReadOnlyHistoryAdmin):
    list_display = ["code", "label", "applies_to", "active", "creates_backlog_item"]
    list_filter = ["active", "creates_backlog_item"]
    search_fields = ["code", "label"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        # A key's secret is shown once, so keys are made by create_integration.
        return False


@admin.register(Integration)
class IntegrationAdmin(ReadOnlyHistoryAdmin):
    list_display = ["name", "slug", "is_active", "callback_url", "action_url", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fields = ["name", "slug", "is_active", "callback_url", "action_url"]
    inlines = [ApiKeyInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyHistoryAdmin):
    list_display = ["integration", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["integration"]
    list_select_related = ["integration"]
    fields = ["integration", "name", "prefix", "expires_at", "revoked_at", "created_at", "last_used_at"]
    readonly_fields = ["integration", "prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


class DecisionInline(admin.TabularInline):
    model = Decision
    extra = 0
    can_delete = False
    fields = ["created_at", "reviewer", "action", "justification", "round", "step", "is_final"]
    readonly_fields = fields
    ordering = ["created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyHistoryAdmin):
    list_display = ["__str__", "queue", "status", "risk_level", "kind", "integration", "due_at", "claimed_by"]
    list_filter = ["status", "queue", "risk_level", "kind", "execution_status"]
    list_select_related = ["queue", "integration", "claimed_by"]
    search_fields = ["=id", "external_id"]
    show_full_result_count = False
    date_hierarchy = "created_at"
    inlines = [DecisionInline]
    readonly_fields = [
        *(field.name for field in ReviewItem._meta.get_fields() if field.concrete and not field.many_to_many),
        "deliveries",
    ]
    actions = ["retry_failed_deliveries"]

    @admin.display(description="Deliveries (callbacks and action execution)")
    def deliveries(self, item):
        attempts = (
            DeliveryAttempt.objects.filter(message__item=item)
            .select_related("message")
            .order_by("message__kind", "number")
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    attempt.message.get_kind_display(),
                    attempt.number,
                    attempt.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                    attempt.status_code or "–",
                    f"{attempt.duration_ms} ms" if attempt.duration_ms is not None else "no answer",
                    attempt.error or "",
                )
                for attempt in attempts
            ),
        )
        if not rows:
            return "No deliveries yet."
        columns = ("Kind", "Attempt", "Started", "Status", "Latency", "Error")
        head = format_html_join("", "<th>{}</th>", ((column,) for column in columns))
        return format_html("<table><tr>{}</tr>{}</table>", head, rows)

    @admin.action(description="Retry failed deliveries of the selected items", permissions=["retry"])
    def retry_failed_deliveries(self, request, queryset):
        retried = 0
        for message in OutboxMessage.objects.filter(item__in=queryset, status=OutboxMessage.Status.FAILED):
            delivery.retry(message=message)
            retried += 1
        self.message_user(request, f"Retrying {retried} failed delivery(ies).", messages.SUCCESS)

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("reviews.change_outboxmessage")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if sees_everything(request.user):
            return queryset
        return queryset.reviewable_by(request.user)

    def has_add_permission(self, request) -> bool:
        return False  # items arrive through the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # state changes go through the decision services

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "status_code", "duration_ms", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "item", "kind", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status", "kind"]
    list_select_related = ["item"]
    search_fields = ["=msg_id", "=item__id"]
    show_full_result_count = False
    fields = [
        "item", "kind", "msg_id", "url", "status", "attempts", "max_attempts", "next_attempt_at",
        "delivered_at", "last_error", "payload", "created_at",
    ]  # fmt: skip
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["retry"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        # Those who may retry deliveries (policy admins) operate all of them.
        if sees_everything(request.user) or request.user.has_perm("reviews.change_outboxmessage"):
            return queryset
        return queryset.filter(item__in=ReviewItem.objects.reviewable_by(request.user))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Retry the selected failed deliveries", permissions=["change"])
    def retry(self, request, queryset):
        failed = list(queryset.filter(status=OutboxMessage.Status.FAILED))
        for message in failed:
            delivery.retry(message=message)
        self.message_user(request, f"Retrying {len(failed)} failed delivery(ies).", messages.SUCCESS)


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "item", "queue", "reviewer", "action", "is_final"]
    list_filter = ["action", "queue", "is_final"]
    list_select_related = ["item", "queue", "reviewer"]
    show_full_result_count = False
    readonly_fields = [
        "item",
        "reviewer",
        "queue",
        "action",
        "justification",
        "reason_codes",
        "edited_output",
        "edited_action",
        "checklist",
        "round",
        "step",
        "is_final",
        "seconds_spent",
        "created_at",
    ]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if sees_everything(request.user):
            return queryset
        return queryset.filter(queue__in=Queue.objects.reviewable_by(request.user))

    # Append-only for everyone: decisions are made through the review services.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BacklogItem)
class BacklogItemAdmin(ReadOnlyHistoryAdmin):
    list_display = ["title", "reason_code", "queue", "status", "updated_at"]
    list_filter = ["status", "reason_code", "queue"]
    list_select_related = ["reason_code", "queue"]
    fields = ["title", "reason_code", "queue", "status", "notes", "decisions"]
    readonly_fields = ["reason_code", "queue", "decisions"]

    def has_add_permission(self, request) -> bool:
        return False  # opened by decisions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyHistoryAdmin):
    list_display = ["created_at", "item", "severity", "source", "status"]
    list_filter = ["severity", "source", "status"]
    list_select_related = ["item"]
    show_full_result_count = False
    fields = [
        "item",
        "severity",
        "source",
        "status",
        "description",
        "decision",
        "reported_by",
        "reported_by_integration",
        "created_at",
    ]
    readonly_fields = [
        "item",
        "source",
        "decision",
        "reported_by",
        "reported_by_integration",
        "created_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
