"""The moves every state change is made of, each written once: lock the item, enter a
queue, escalate, claim and free, approve, close, and save with the consequences.

Only the service modules of this package call these, inside their transactions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from reviews.access import reviews_queue_of_row
from reviews.delivery import outbox
from reviews.exceptions import AlreadyDecided
from reviews.models import ExecutionStatus, ItemKind, ItemStatus, Queue, ReviewItem

# The fields a state change may write; the submitted payload is never rewritten.
STATE_FIELDS = [
    "status",
    "queue",
    "review_round",
    "required_approvals",
    "entered_queue_at",
    "at_risk_at",
    "at_risk_flagged_at",
    "due_at",
    "claimed_by",
    "claimed_at",
    "claim_expires_at",
    "final_output",
    "final_action",
    "decided_at",
    "execution_status",
    "updated_at",
]


def lock(item: ReviewItem, *, reviewer=None) -> ReviewItem:
    """Lock the item's row and return it as it is now (the caller's copy may be stale:
    only its primary key is read), with what the moves below consult read in the same
    statement: its queue, its integration and whether it is a gold item. With
    `reviewer`, `item.reviewable` says whether they may review the item's queue as it
    is under the lock (`reviews.access`), so that check costs no statement of its own."""
    items = ReviewItem.objects.select_for_update(of=("self",)).select_related("queue", "integration", "gold")
    if reviewer is not None:
        items = items.annotate(reviewable=reviews_queue_of_row(reviewer))
    return items.get(pk=item.pk)


def ensure_open(item: ReviewItem) -> None:
    if not item.is_open:
        raise AlreadyDecided(f"This item is already {item.get_status_display().lower()}.")


def save_state(item: ReviewItem, reason: str) -> None:
    """Write the item's new state, with its reason on the history row; a final state
    writes its consequences to the outbox in the same transaction."""
    item._change_reason = reason
    item.save(update_fields=STATE_FIELDS)
    if item.is_final:
        outbox.enqueue_consequences(item)


def enter_queue(item: ReviewItem, queue: Queue, now: datetime) -> None:
    """Place an item at the back of a queue's SLA clock (on submission and on escalation).
    The item keeps the strictest approval requirement it has met: moving it to a
    one-approval queue never removes the second pair of eyes."""
    item.queue = queue
    item.required_approvals = max(item.required_approvals or 1, queue.required_approvals)
    item.status = ItemStatus.PENDING
    item.entered_queue_at = now
    item.due_at = now + queue.sla
    item.at_risk_at = now + queue.sla / 2
    item.at_risk_flagged_at = None
    clear_claim(item)


def escalate(item: ReviewItem, target: Queue, now: datetime, reason: str) -> None:
    """Into another queue, as a new round with a fresh deadline (by a reviewer or a timeout)."""
    enter_queue(item, target, now)
    item.review_round += 1
    save_state(item, reason)


def approve_as_is(item: ReviewItem, status: str, now: datetime) -> None:
    """The proposal becomes the final version (approved, or auto-approved by the gate)."""
    item.status = status
    item.final_output = item.output
    item.final_action = item.action
    item.decided_at = now
    # Spot-check copies and gold items: deciding them never executes anything.
    needs_execution = item.kind == ItemKind.ACTION and not item.never_executes
    item.execution_status = ExecutionStatus.PENDING if needs_execution else ExecutionStatus.NOT_REQUIRED


def close_item(item: ReviewItem, status: str, now: datetime, reason: str) -> None:
    """End an item without approving it: rejected, cancelled or expired. Nothing final
    is kept, nothing is executed, and the integration is told."""
    item.status = status
    item.decided_at = now
    clear_claim(item)
    save_state(item, reason)


def claim_duration() -> timedelta:
    return timedelta(minutes=settings.HITL_CLAIM_MINUTES)


def take_claim(item: ReviewItem, user, now: datetime, reason: str) -> None:
    item.status = ItemStatus.IN_REVIEW
    item.claimed_by = user
    item.claimed_at = now
    item.claim_expires_at = now + claim_duration()
    save_state(item, reason)


def free(item: ReviewItem, reason: str) -> None:
    """Pending again, for anyone (a release, a lapsed claim, a first approval of two)."""
    item.status = ItemStatus.PENDING
    clear_claim(item)
    save_state(item, reason)


def clear_claim(item: ReviewItem) -> None:
    item.claimed_by = None
    item.claimed_at = None
    item.claim_expires_at = None
