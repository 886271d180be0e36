"""Who may see what: one rule for the API, the admin and the workspace (SPEC section 2).

- Superusers and Compliance read every queue.
- Reviewers read (and decide) the queues whose reviewer groups they belong to.
- Everyone else reads no item, whatever model permissions they hold: a policy
  admin who may retry deliveries sees their status, never the item's content.

Integrations see their own items (`visible_items(integration=...)`).

A person's roles are their groups. Inside `remembering_groups()` (the API wraps each
request in it) they are read once, at the first question, and kept until the block
ends; everywhere else each question reads them again, so a change applies at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.db.models import Exists, OuterRef, QuerySet

from reviews.models import COMPLIANCE_GROUP, REVIEWERS_GROUP, Integration, Queue, ReviewItem

STAFF_READER_GROUPS = frozenset({REVIEWERS_GROUP, COMPLIANCE_GROUP})

_remembered_groups: ContextVar[dict[int, frozenset[str]] | None] = ContextVar(
    "hitl_remembered_groups", default=None
)


@contextlib.contextmanager
def remembering_groups() -> Iterator[None]:
    """Read each user's groups at most once inside the block (one request)."""
    token = _remembered_groups.set({})
    try:
        yield
    finally:
        _remembered_groups.reset(token)


def group_names(user) -> frozenset[str]:
    """The names of the user's groups (remembered inside `remembering_groups()`)."""
    remembered = _remembered_groups.get()
    if remembered is not None and user.pk in remembered:
        return remembered[user.pk]
    names = frozenset(user.groups.values_list("name", flat=True))
    if remembered is not None:
        remembered[user.pk] = names
    return names


def _is_active(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def sees_everything(user) -> bool:
    """Superusers and compliance staff read every queue."""
    return _is_active(user) and (user.is_superuser or COMPLIANCE_GROUP in group_names(user))


def is_staff_reader(user) -> bool:
    """People who may read items through the API: reviewers, compliance, superusers."""
    return _is_active(user) and (user.is_superuser or not STAFF_READER_GROUPS.isdisjoint(group_names(user)))


def is_reviewer(user) -> bool:
    """People who hold the Reviewers role (which queues they review: `Queue.objects.reviewable_by`)."""
    return _is_active(user) and (user.is_superuser or REVIEWERS_GROUP in group_names(user))


def reviews_queue_of_row(user, *, queue_lookup: str = "queue") -> Exists:
    """A SQL expression: may `user` review the queue of the row (`queue_lookup` leads to it)?
    For reading it with the row itself (the decision service's lock) rather than apart."""
    return Exists(Queue.objects.reviewable_by(user).filter(pk=OuterRef(queue_lookup)))


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
