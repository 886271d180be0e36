"""Who may see what: one rule for the API, the admin and the workspace (SPEC section 2).

- Superusers and Compliance read every queue.
- Reviewers read (and decide) the queues whose reviewer groups they belong to.
- Everyone else reads no item, whatever model permissions they hold: a policy
  admin who may retry deliveries sees their status, never the item's content.

Integrations are scoped separately, to their own items (`ReviewItem.objects.visible_to_integration`).
"""

from __future__ import annotations

from django.db.models import QuerySet

from reviews.models import COMPLIANCE_GROUP, REVIEWERS_GROUP, Queue, ReviewItem


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


def readable_items(user, items: QuerySet[ReviewItem] | None = None) -> QuerySet[ReviewItem]:
    """`items` (all items by default) narrowed to those the user may read."""
    items = ReviewItem.objects.all() if items is None else items
    return items if sees_everything(user) else items.filter(queue__in=Queue.objects.reviewable_by(user))


def may_read_item(user, item: ReviewItem) -> bool:
    return sees_everything(user) or item.can_be_reviewed_by(user)
