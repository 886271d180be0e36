"""Review quality: gold items, copies of earlier items with a known right answer,
seeded into a queue to measure how often reviewers agree with it."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from reviews.exceptions import InvalidInput, NotAllowed
from reviews.models import GoldAnswer, Queue, ReviewItem
from reviews.services.transitions import enter_queue

# The submitted content a gold copy carries over, as the reviewer will see it.
COPIED_FIELDS = (
    "integration",
    "external_id",
    "kind",
    "input",
    "output",
    "action",
    "context",
    "signals",
    "metadata",
    "matched_rules",
    "shadow_matches",
    "risk_level",
    "priority",
)


def seed_gold_item(*, item: ReviewItem, queue: Queue, answer: str, user, note: str = "") -> ReviewItem:
    """Copy `item` into `queue` as a gold item whose right answer is `answer`.

    1. Only superusers seed gold items; the source must be an ordinary item
       (not a spot-check copy or another gold item), the answer approve or reject.
    2. The copy is pending in the queue like a new submission, with the source's
       content and gate snapshot and no callback URL or idempotency key: nothing
       on it tells a reviewer it is gold, and nothing reaches the integration.
    3. The answer is kept apart (`GoldAnswer`), read only by compliance and superusers.
    """
    if not (user and user.is_active and user.is_superuser):
        raise NotAllowed("Only superusers seed gold items.")
    if answer not in GoldAnswer.Answer.values:
        raise InvalidInput(
            "The right answer is approve or reject.", errors={"answer": ["Choose approve or reject."]}
        )
    if item.is_spot_check or item.is_gold:
        raise InvalidInput("Choose an ordinary item: spot-check copies and gold items cannot be copied.")
    now = timezone.now()
    with transaction.atomic():
        copy = ReviewItem(**{name: getattr(item, name) for name in COPIED_FIELDS}, created_at=now)
        enter_queue(copy, queue, now)
        copy._change_reason = "submitted: review"
        copy.save(force_insert=True)
        GoldAnswer.objects.create(
            item=copy, answer=answer, copied_from=item, note=note.strip(), seeded_by=user
        )
    return copy
