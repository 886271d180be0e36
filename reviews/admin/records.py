"""What decisions leave behind: the decisions themselves (read-only for everyone),
backlog items and incidents (worked through the feedback services)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from reviews import services
from reviews.access import readable_queues
from reviews.admin.base import QueueFilter, QueueScopedAdmin, ReadOnlyHistoryAdmin
from reviews.models import (
    BacklogItem,
    Decision,
    Incident,
)

JUSTIFICATION_CHARS = 120  # in the list; the decision's page shows all of it


@admin.register(Decision)
class DecisionAdmin(QueueScopedAdmin):
    # By the item's queue now, as everywhere: a decision shows the item's content, and
    # an escalated item leaves its earlier queue's reviewers behind.
    queue_lookup = "item__queue"
    list_display = ["created_at", "item", "queue", "reviewer", "action", "justification_shown", "is_final"]
    list_filter = ["action", QueueFilter, "is_final"]
    list_select_related = ["item", "queue", "reviewer"]
    ordering = ["-created_at", "-id"]
    search_fields = ["item__external_id", "reviewer__username", "justification"]
    search_help_text = "Item external id, reviewer's username or words of the justification."
    show_full_result_count = False
    readonly_fields = [
        "item",
        "reviewer",
        "queue",
        "action",
        "justification",
        "cited_codes",
        "edited_output",
        "edited_action",
        "checklist",
        "round",
        "step",
        "is_final",
        "seconds_spent",
        "created_at",
    ]

    @admin.display(description="Justification")
    def justification_shown(self, decision):
        return Truncator(decision.justification).chars(JUSTIFICATION_CHARS)

    # Append-only for everyone: decisions are made through the review services.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BacklogItem)
class BacklogItemAdmin(QueueScopedAdmin, ReadOnlyHistoryAdmin):
    """Root causes to fix. Policy admins work them, so they see every entry; the
    decisions behind one are linked only where the user may read the item."""

    editors_see_every_row = True
    list_display = ["title", "reason_code", "queue", "status", "updated_at"]
    list_filter = ["status", "reason_code", QueueFilter]
    list_select_related = ["reason_code", "queue"]
    fields = ["title", "reason_code", "queue", "status", "notes", "raised_by"]
    readonly_fields = ["reason_code", "queue", "raised_by"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.update_backlog_item(
            backlog=obj, title=data["title"], status=data["status"], notes=data.get("notes", "")
        )

    def get_object(self, request, object_id, from_field=None):
        backlog = super().get_object(request, object_id, from_field)
        if backlog is not None:
            # Read by `raised_by`, which is given only the object.
            backlog.readable_queue_ids = set(readable_queues(request.user).values_list("pk", flat=True))
        return backlog

    @admin.display(description="Raised by decisions")
    def raised_by(self, backlog):
        decisions = list(backlog.decisions.select_related("reviewer", "item").order_by("created_at"))
        visible = getattr(backlog, "readable_queue_ids", set())
        readable = [d for d in decisions if d.item.queue_id in visible]
        links = format_html_join(
            ", ",
            '<a href="{}">{} by {}</a>',
            (
                (reverse("admin:reviews_review", args=[d.item_id]), d.get_action_display(), d.reviewer)
                for d in readable
            ),
        )
        hidden = len(decisions) - len(readable)
        if hidden:
            return format_html("{}{}{} in queues you do not review", links, "; " if readable else "", hidden)
        return links or "–"

    def has_add_permission(self, request) -> bool:
        return False  # opened by decisions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(QueueScopedAdmin, ReadOnlyHistoryAdmin):
    queue_lookup = "item__queue"
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

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.update_incident(
            incident=obj, severity=data["severity"], status=data["status"], description=data["description"]
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
