"""Who may see what: one rule for the API, the admin and the workspace (SPEC section 2).

- Superusers and Compliance read every queue.
- Reviewers read (and decide) the queues whose reviewer groups they belong to.
- Everyone else reads no item, whatever model permissions they hold: a policy
  admin who may retry deliveries sees their status, never the item's content.

Integrations see their own items (`visible_items(integration=...)`).
"""

from __future__ import annotations

from django.db.models import QuerySet

from reviews.models import COMPLIANCE_GROUP, REVIEWERS_GROUP, Integration, Queue, ReviewItem


def sees_everything(user) -> bool:
    """Superusers and compliance staff read every queue."""
    return bool(user and user.is_authenticated and user.is_active) and (
        user.is_superuser or user.groups.filter(name=COMPLIANCE_GROUP).exists()
    )


def is_staff_reader(user) -> bool:
    """People who may read items through the API: reviewers, compliance, superusers."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name__in=[REVIEWERS_GROUP, COMPLIANCE_GROUP]).exists()


def readable_queues(user) -> QuerySet[Queue]:
    """The queues whose items the user may read."""
    return Queue.objects.all() if sees_everything(user) else Queue.objects.reviewable_by(user)


def visible_rows(user, rows: QuerySet, *, queue_lookup: str = "queue") -> QuerySet:
    """`rows` narrowed to those whose item the user may read; `queue_lookup` leads from a
    row to its item's queue (`"item__queue"` for decisions, incidents, deliveries).
    Those who read everything also see items that never entered a queue (auto-approved
    and blocked ones)."""
    if sees_everything(user):
        return rows
    return rows.filter(**{f"{queue_lookup}__in": Queue.objects.reviewable_by(user)})


def visible_items(*, user=None, integration: Integration | None = None, items=None) -> QuerySet[ReviewItem]:
    """The items a caller may read: an integration its own (not the internal spot-check
    copies), a person those of the queues they may read. `items` narrows a prepared
    queryset (with its select_related and prefetches)."""
    items = ReviewItem.objects.all() if items is None else items
    if integration is not None:
        return items.visible_to_integration(integration)
    return visible_rows(user, items)


def may_read_item(user, item: ReviewItem) -> bool:
    return sees_everything(user) or item.can_be_reviewed_by(user)
