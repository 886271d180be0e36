"""The transactional outbox: consequences of a final state are rows written in the
same transaction as the state, dispatched to Celery once it commits, and swept
periodically, so a crash between commit and dispatch or a broker outage loses
nothing (`reviews.delivery.worker` sends them)."""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from reviews.models import ExecutionStatus, OutboxMessage, ReviewItem
from reviews.outage import Outage
from reviews.representation import item_representation

logger = logging.getLogger(__name__)


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


DELIVER_TASK = "reviews.deliver_message"

broker_outage = Outage(
    "The broker", "HITL_BROKER_RETRY_SECONDS", "outbox messages are left to the sweep meanwhile"
)


def dispatch(message_ids: list[int], *, countdown: float | None = None, force: bool = False) -> None:
    """Hand messages to the workers. It never raises: it runs after the commit
    (`transaction.on_commit`), the rows are safe, and the sweep sends whatever
    this could not.

    While the broker is down a request pays for one failed publish at most, not
    one per message: after a failure this process publishes nothing for
    HITL_BROKER_RETRY_SECONDS (a circuit breaker; longer than a broker timeout,
    or a broker that accepts connections and never answers would still cost
    every request one), and the messages it did not hand over get
    `dispatched_at` cleared so that the first sweep after the broker returns
    sends them, not one HITL_OUTBOX_REDISPATCH_SECONDS later. A message sent
    twice is still delivered once: an attempt starts only by taking the
    message's lease. `force` publishes even then: the sweep's own task has just
    come through the broker."""
    try:
        _dispatch(message_ids, countdown, force)
    except Exception:
        logger.exception("Dispatching outbox messages %s failed; the sweep will send them", message_ids)


def _dispatch(message_ids: list[int], countdown: float | None, force: bool) -> None:
    # The task by its fixed name (registered when `reviews.tasks` is imported, in
    # ReviewsConfig.ready()): the tasks call the delivery worker, so importing them
    # here would tie the two together. A registered task, not `send_task`, keeps
    # the eager mode of `make run`.
    deliver_message = current_app.tasks[DELIVER_TASK]
    if deliver_message.app.conf.task_always_eager:
        if countdown:
            return  # in-process tasks cannot wait: the sweep sends retries when they fall due
        for message_id in message_ids:
            try:
                deliver_message.delay(message_id)
            except Exception:  # the task itself failed, in this process; its row says what is left
                logger.warning(
                    "Outbox message %s failed in-process; the sweep will retry", message_id, exc_info=True
                )
        return
    unsent = list(message_ids)
    if force or not broker_outage.skipping():
        try:
            while unsent:
                deliver_message.apply_async((unsent[0],), countdown=countdown)
                unsent.pop(0)
        except Exception as exc:  # whatever the transport raised, nothing more goes out for now
            broker_outage.failed(exc, detail=f"{len(unsent)} not handed over")
        else:
            broker_outage.answered()
    if unsent:
        # Only pending rows: one that was delivered meanwhile keeps its history as it is.
        OutboxMessage.objects.filter(pk__in=unsent, status=OutboxMessage.Status.PENDING).update(
            dispatched_at=None
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
        dispatch(ids, force=True)
    return len(ids)
