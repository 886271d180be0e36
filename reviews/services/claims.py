"""Claims: who holds an item while deciding it, for how long, and when it is free again."""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from reviews.exceptions import ClaimedByAnother, NotAllowed, NotClaimed
from reviews.models import Decision, DecisionAction, ItemStatus, Queue, ReviewItem
from reviews.services.transitions import claim_duration, ensure_open, free, lock, take_claim


def require_reviewer(user, queue: Queue | None) -> None:
    if queue is None or not Queue.objects.reviewable_by(user).filter(pk=queue.pk).exists():
        raise NotAllowed("You are not a reviewer of this queue.")


def round_approvals(item: ReviewItem) -> list[Decision]:
    return list(
        item.decisions.filter(
            round=item.review_round, action__in=[DecisionAction.APPROVE, DecisionAction.EDIT]
        ).order_by("step")
    )


def ensure_distinct_approver(approvals: list[Decision], user) -> None:
    if any(d.reviewer_id == user.pk for d in approvals):
        raise NotAllowed("Four-eyes queue: the second approval must come from another reviewer.")


def claim_next(*, queue: Queue, user) -> ReviewItem | None:
    """Claim the next item of a queue for `user`, or return None when none is free.

    1. A reviewer who already holds a live claim in the queue gets that item back
       (with a fresh lease) instead of a second one.
    2. Otherwise the first claimable item in review order (priority, due_at,
       age) that the user has not already approved in this round (four-eyes).
    3. PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent reviewers
       take different rows without waiting. SQLite has no row locks: its
       writers are serialised (IMMEDIATE transactions), and the claim is a
       conditional UPDATE that only succeeds while the item is still free.
    """
    require_reviewer(user, queue)
    now = timezone.now()
    with transaction.atomic():
        # One look at the queue's items in review: this user's live claims, and lapsed ones.
        in_review = list(
            ReviewItem.objects.filter(queue=queue, status=ItemStatus.IN_REVIEW)
            .filter(Q(claimed_by=user, claim_expires_at__gt=now) | Q(claim_expires_at__lte=now))
            .order_by("claimed_at")
            .values_list("pk", "claim_expires_at")
        )
        for item_id, expires_at in in_review:
            if expires_at > now:  # held by this user: locked, and checked again under the lock
                held = (
                    ReviewItem.objects.select_for_update(of=("self",))
                    .filter(
                        pk=item_id, status=ItemStatus.IN_REVIEW, claimed_by=user, claim_expires_at__gt=now
                    )
                    .first()
                )
                if held is not None:
                    take_claim(held, user, now, "claim renewed")
                    return held
        lapsed = any(expires_at <= now for _, expires_at in in_review)

        already_approved = Decision.objects.filter(
            item=OuterRef("pk"),
            round=OuterRef("review_round"),
            reviewer=user,
            action__in=[DecisionAction.APPROVE, DecisionAction.EDIT],
        )
        candidates = (
            ReviewItem.objects.claimable(now)
            .filter(queue=queue)
            .exclude(Exists(already_approved))
            .in_review_order()
        )
        if connection.features.has_select_for_update_skip_locked:
            # Pending items come from the index item_queue_order (queue, status, priority,
            # due_at) already in review order, so the first free one is found without
            # sorting the queue. A lapsed claim is claimable too, under another status,
            # until the sweep makes it pending again: only while the queue has one are
            # all the candidates sorted together.
            if not lapsed:
                candidates = candidates.filter(status=ItemStatus.PENDING)
            item = candidates.select_for_update(skip_locked=True, of=("self",)).first()
            if item is not None:
                take_claim(item, user, now, "claimed")
            return item

        for item_id in candidates.values_list("pk", flat=True)[:20]:
            taken = (
                ReviewItem.objects.claimable(now)
                .filter(pk=item_id)
                .update(
                    status=ItemStatus.IN_REVIEW,
                    claimed_by=user,
                    claimed_at=now,
                    claim_expires_at=now + claim_duration(),
                )
            )
            if taken:
                item = ReviewItem.objects.get(pk=item_id)
                take_claim(item, user, now, "claimed")  # the same values again, now with history
                return item
        return None


def claim(*, item: ReviewItem, user) -> ReviewItem:
    """Claim one specific item (opening it from the changelist)."""
    now = timezone.now()
    with transaction.atomic():
        item = lock(item)
        require_reviewer(user, item.queue)
        ensure_open(item)
        if item.is_claimed_by_other(user, now):
            raise ClaimedByAnother(f"{item.claimed_by} is reviewing this item.")
        ensure_distinct_approver(round_approvals(item), user)
        take_claim(item, user, now, "claimed")
    return item


def release(*, item: ReviewItem, user) -> ReviewItem:
    """Give a claim back: the item is pending again for anyone."""
    now = timezone.now()
    with transaction.atomic():
        item = lock(item)
        require_reviewer(user, item.queue)
        ensure_open(item)
        if not item.claim_is_active(now):
            raise NotClaimed("This item is not claimed.")
        if item.claimed_by_id != user.pk and not user.is_superuser:
            raise ClaimedByAnother(f"{item.claimed_by} holds the claim on this item.")
        free(item, "released")
    return item


def expire_claims(*, now: datetime | None = None) -> int:
    """Return items whose lease ran out to their queue. Claimability does not wait
    for this sweep (an expired claim is claimable at once); it tidies the status."""
    now = now or timezone.now()
    count = 0
    ids = list(
        ReviewItem.objects.filter(status=ItemStatus.IN_REVIEW, claim_expires_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    for item_id in ids:
        with transaction.atomic():
            item = (
                ReviewItem.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=item_id)
                .first()
            )
            if item and item.status == ItemStatus.IN_REVIEW and item.claim_expires_at <= now:
                free(item, "claim expired")
                count += 1
    return count
