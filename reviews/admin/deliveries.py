"""Deliveries: outbox messages and their attempts, and retrying failed ones."""

from __future__ import annotations

from django.contrib import admin, messages

from reviews.access import may_read_item
from reviews.admin.base import QueueScopedAdmin
from reviews.delivery import worker as delivery
from reviews.models import (
    DeliveryAttempt,
    OutboxMessage,
)


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
class OutboxMessageAdmin(QueueScopedAdmin):
    """Deliveries. Policy admins see every one, to retry failed ones, but the payload
    (the item's content) only for items they may read."""

    queue_lookup = "item__queue"
    editors_see_every_row = True
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

    def get_fields(self, request, obj=None):
        if obj is not None and not may_read_item(request.user, obj.item):
            return [name for name in self.fields if name != "payload"]
        return self.fields

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
