"""Reads shared by the admin workspace and the API; aggregates run in the database."""

from __future__ import annotations

from datetime import datetime

from django.apps import apps
from django.db.models import Count, FilteredRelation, Min, Q, QuerySet
from django.utils import timezone

from reviews.models import (
    OPEN_STATUSES,
    AuditCheck,
    AuditedHistory,
    Decision,
    Incident,
    ItemStatus,
    Queue,
    ReviewItem,
)


def queue_overview(user, now: datetime | None = None) -> QuerySet[Queue]:
    """The queues `user` may review, each with its workload in one query:
    `pending`, `in_review`, `at_risk`, `sla_breaches` and `oldest_entered_at`."""
    now = now or timezone.now()
    # Only open items are joined (the condition is in the join, read from the
    # item_queue_order index), so the cost follows the backlog, not the queue's history.
    return (
        Queue.objects.reviewable_by(user)
        .annotate(open_items=FilteredRelation("items", condition=Q(items__status__in=OPEN_STATUSES)))
        .annotate(
            pending=Count("open_items", filter=Q(open_items__status=ItemStatus.PENDING)),
            in_review=Count("open_items", filter=Q(open_items__status=ItemStatus.IN_REVIEW)),
            at_risk=Count(
                "open_items", filter=Q(open_items__at_risk_at__lte=now, open_items__due_at__gt=now)
            ),
            sla_breaches=Count("open_items", filter=Q(open_items__due_at__lte=now)),
            oldest_entered_at=Min("open_items__entered_queue_at"),
        )
        .order_by("name")
    )


def records_naming(user) -> list[str]:
    """What in the audit trail names this user: decisions, claims, incidents and history.
    A user named anywhere there is deactivated, never deleted (SPEC section 10)."""
    found = []
    if Decision.objects.filter(reviewer=user).exists():
        found.append("decisions")
    if ReviewItem.objects.filter(claimed_by=user).exists():
        found.append("claims on items")
    if Incident.objects.filter(reported_by=user).exists():
        found.append("incident reports")
    history = [
        model._meta.verbose_name_plural
        for model in apps.get_models()
        if issubclass(model, AuditedHistory) and model.objects.filter(history_user=user).exists()
    ]
    return found + sorted(str(name) for name in history)


def latest_audit_check() -> AuditCheck | None:
    """The last run of the audit chain verification, if any."""
    return AuditCheck.objects.order_by("-ran_at").first()
