"""The transactional outbox: consequences of a final state are rows written in the
same transaction as the state, dispatched to Celery once it commits, and swept
periodically, so a crash between commit and dispatch or a broker outage loses
nothing (`reviews.delivery` sends them)."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from reviews.models import ExecutionStatus, OutboxMessage, ReviewItem
from reviews.serializers import ItemSerializer

logger = logging.getLogger(__name__)


def item_representation(item: ReviewItem) -> dict:
    """The item as `GET /api/v1/items/{id}/` shows it, as plain JSON."""
    item = ReviewItem.objects.select_related("queue", "claimed_by").get(pk=item.pk)
    return json.loads(JSONRenderer().render(ItemSerializer(item).data))


def enqueue_consequences(item: ReviewItem) -> list[OutboxMessage]:
    """Write what must follow an item's final state; call inside the transaction
    that set it. An approved action is executed; every final state is reported
    to the callback URL."""
    now = timezone.now()
    timestamp = now.isoformat().replace("+00:00", "Z")
    messages = []
    if item.execution_status == ExecutionStatus.PENDING:
        messages.append(
            OutboxMessage(
                item=item,
                kind=OutboxMessage.Kind.EXECUTE,
                url=item.integration.action_url,
                max_attempts=settings.HITL_DELIVERY_MAX_ATTEMPTS,
                payload={
                    "type": "action.execute",
                    "timestamp": timestamp,
                    "data": {"item": str(item.pk), "action": item.final_action},
                },
            )
        )
    if item.callback_url:
        messages.append(
            OutboxMessage(
                item=item,
                kind=OutboxMessage.Kind.CALLBACK,
                url=item.callback_url,
                max_attempts=settings.HITL_DELIVERY_MAX_ATTEMPTS,
                payload={"type": "item.decided", "timestamp": timestamp, "data": item_representation(item)},
            )
        )
    for message in messages:
        message.dispatched_at = now
        message.save(force_insert=True)
    if messages:
        ids = [message.pk for message in messages]
        transaction.on_commit(lambda: dispatch(ids))
    return messages


def dispatch(message_ids: list[int], *, countdown: float | None = None) -> None:
    """Hand messages to the workers. A failure here is logged, not raised: the
    rows are committed and the sweep sends them once the broker is back."""
    from reviews.tasks import deliver_message  # tasks import the delivery services, which import this

    eager = deliver_message.app.conf.task_always_eager
    if countdown and eager:
        return  # in-process tasks cannot wait: the sweep sends retries when they fall due
    for message_id in message_ids:
        try:
            if countdown:
                deliver_message.apply_async((message_id,), countdown=countdown)
            else:
                deliver_message.delay(message_id)
        except Exception:
            logger.warning(
                "Could not dispatch outbox message %s; the sweep will retry", message_id, exc_info=True
            )


def due_messages(now=None):
    now = now or timezone.now()
    return OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING, next_attempt_at__lte=now).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    )


def sweep(*, now=None, limit: int = 500) -> int:
    """Dispatch due messages nobody has dispatched recently (lost on a crash or a
    broker outage, or waiting for a retry). Duplicates are harmless: an attempt
    starts only by taking the message's lease."""
    now = now or timezone.now()
    stale = now - timezone.timedelta(seconds=settings.HITL_OUTBOX_REDISPATCH_SECONDS)
    ids = list(
        due_messages(now)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=stale))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        OutboxMessage.objects.filter(pk__in=ids).update(dispatched_at=now)
        dispatch(ids)
    return len(ids)
