"""Deadlines: at half the SLA an item is flagged at risk; past it, the queue's timeout
outcome applies (escalate with a fresh deadline, or expire). Never an approval."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from reviews.models import ItemStatus, Queue, ReviewItem
from reviews.services.transitions import close_item, escalate, lock


def apply_timeout(*, item: ReviewItem, now: datetime | None = None) -> ReviewItem:
    """Past its deadline an item follows its queue's timeout outcome: escalate
    with a fresh deadline, or reject as expired. Never an approval."""
    now = now or timezone.now()
    with transaction.atomic():
        item = lock(item)
        if not item.is_open or item.due_at is None or item.due_at > now:
            return item
        queue = item.queue
        target = queue.escalation_queue
        if (
            queue.timeout_outcome == Queue.TimeoutOutcome.ESCALATE
            and target is not None
            and target.pk != queue.pk
        ):
            escalate(item, target, now, f"SLA timeout: escalated to {target.slug}")
        else:
            close_item(item, ItemStatus.EXPIRED, now, "SLA timeout: expired")
    return item


def flag_at_risk(*, now: datetime | None = None) -> int:
    """Flag open items that have used half their SLA (once per pass through a queue)."""
    now = now or timezone.now()
    count = 0
    for item_id in (
        ReviewItem.objects.at_risk(now).filter(at_risk_flagged_at__isnull=True).values_list("pk", flat=True)
    ):
        with transaction.atomic():
            item = lock(ReviewItem(pk=item_id))
            if item.is_at_risk(now) and item.at_risk_flagged_at is None:
                item.at_risk_flagged_at = now
                item._change_reason = "at risk: half the SLA has passed"
                item.save(update_fields=["at_risk_flagged_at", "updated_at"])
                count += 1
    return count


def apply_sla_timeouts(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    overdue = list(ReviewItem.objects.overdue(now).values_list("pk", flat=True))
    for item_id in overdue:
        apply_timeout(item=ReviewItem(pk=item_id), now=now)
    return len(overdue)
