"""Delivering outbox messages: one attempt per call, safe to run twice.

1. Take the message's lease with a conditional UPDATE (only while it is pending,
   due, and nobody else's lease is live), so two workers handed the same
   message never send it side by side.
2. For an action, check the item again: still finally approved, not a spot
   check, not executed yet, and the final action valid for its executor.
3. Send outside any transaction; then record the attempt and the outcome.
   A 2xx ends the message for good; otherwise it is retried with exponential
   backoff and jitter until `max_attempts`, then marked failed.

A worker killed mid-attempt leaves its lease to expire; the sweep then hands
the message to another worker, which sends it again with the same
`webhook-id` and `Idempotency-Key`, so the receiver applies it once.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from reviews.delivery import execution
from reviews.delivery.executors import ExecutionResult, InvalidAction, executor_for, post_message
from reviews.delivery.outbox import dispatch, due_messages
from reviews.models import APPROVED_STATUSES, DeliveryAttempt, ExecutionStatus, OutboxMessage

logger = logging.getLogger(__name__)

# What recording an attempt's outcome may change on its message.
OUTCOME_FIELDS = ["status", "lease_until", "delivered_at", "last_error", "next_attempt_at", "dispatched_at"]


def backoff_seconds(attempt: int) -> float:
    """Exponential in the number of attempts so far, with jitter so retries spread out."""
    ceiling = min(
        settings.HITL_DELIVERY_BACKOFF_MAX_SECONDS,
        settings.HITL_DELIVERY_BACKOFF_SECONDS * 2 ** (attempt - 1),
    )
    return ceiling * random.uniform(0.5, 1.0)


def deliver(message_id: int) -> str:
    """Make one attempt at a message; returns what happened, for logs and tests."""
    now = timezone.now()
    with transaction.atomic():
        taken = (
            due_messages(now)
            .filter(pk=message_id)
            .update(
                lease_until=now + timedelta(seconds=settings.HITL_DELIVERY_LEASE_SECONDS),
                attempts=F("attempts") + 1,
            )
        )
        if not taken:
            return "not due"
        message = OutboxMessage.objects.select_related("item__integration").get(pk=message_id)
        attempt = DeliveryAttempt.objects.create(message=message, number=message.attempts, started_at=now)
        item = message.item
        if message.kind == OutboxMessage.Kind.EXECUTE:
            problem = execution_problem(message)
            if problem:
                _cancel(message, attempt, problem)
                return "cancelled"
            execution.start_execution(item=item)

    result = _send(message)

    with transaction.atomic():
        attempt.status_code = result.status_code
        attempt.duration_ms = result.duration_ms
        attempt.error = result.error
        attempt.save(update_fields=["status_code", "duration_ms", "error"])
        message = OutboxMessage.objects.select_for_update().select_related("item").get(pk=message_id)
        if message.status != OutboxMessage.Status.PENDING or message.attempts != attempt.number:
            # This attempt outlived its lease and another one took over: whatever
            # that one recorded (perhaps the receiver's acknowledgement) stands.
            return "superseded"
        message.lease_until = None
        is_execution = message.kind == OutboxMessage.Kind.EXECUTE
        if result.ok:
            message.status = OutboxMessage.Status.DELIVERED
            message.delivered_at = timezone.now()
            message.last_error = ""
            if is_execution:
                execution.finish_execution(
                    item=message.item, executed_action=message.payload["data"]["action"]
                )
            outcome = "delivered"
        elif message.attempts >= message.max_attempts:
            message.status = OutboxMessage.Status.FAILED
            message.last_error = result.error
            if is_execution:
                execution.fail_execution(item=message.item, reason=result.error)
            logger.warning("Giving up on %s after %s attempts: %s", message, message.attempts, result.error)
            outcome = "failed"
        else:
            delay = backoff_seconds(message.attempts)
            message.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            message.dispatched_at = message.next_attempt_at
            message.last_error = result.error
            transaction.on_commit(lambda: dispatch([message_id], countdown=delay))
            outcome = "retrying"
        message.save(update_fields=OUTCOME_FIELDS)
    return outcome


def execution_problem(message: OutboxMessage) -> str:
    """Why an action must not run now, or "" when it may."""
    item = message.item
    if item.status not in APPROVED_STATUSES:
        return f"the item is {item.get_status_display().lower()}, not approved"
    if item.is_spot_check:
        return "spot checks are never executed"
    if item.is_gold:
        return "gold items are never executed"
    if item.execution_status not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING):
        return f"execution is {item.get_execution_status_display().lower()}"
    action = message.payload.get("data", {}).get("action")
    if action != item.final_action:
        return "the action to send differs from the approved one"
    try:
        executor_for(action, item.integration).validate(action)
    except InvalidAction as exc:
        return f"the approved action is not valid: {exc}"
    return ""


def _cancel(message: OutboxMessage, attempt: DeliveryAttempt, problem: str) -> None:
    logger.warning("Not executing %s: %s", message, problem)
    attempt.error = f"not executed: {problem}"
    attempt.save(update_fields=["error"])
    message.status = OutboxMessage.Status.CANCELLED
    message.lease_until = None
    message.last_error = problem
    message.save(update_fields=["status", "lease_until", "last_error"])
    if message.item.execution_status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING):
        execution.fail_execution(item=message.item, reason=problem)


def _send(message: OutboxMessage) -> ExecutionResult:
    item = message.item
    if message.kind == OutboxMessage.Kind.EXECUTE:
        return executor_for(item.final_action, item.integration).execute(item=item, message=message)
    return post_message(message, message.url)


def retry(*, message: OutboxMessage) -> OutboxMessage:
    """Give a failed message another full set of attempts (admin action)."""
    with transaction.atomic():
        message = OutboxMessage.objects.select_for_update().select_related("item").get(pk=message.pk)
        if message.status != OutboxMessage.Status.FAILED:
            return message
        now = timezone.now()
        message.status = OutboxMessage.Status.PENDING
        message.max_attempts = message.attempts + settings.HITL_DELIVERY_MAX_ATTEMPTS
        message.next_attempt_at = now
        message.dispatched_at = now
        message.save(update_fields=["status", "max_attempts", "next_attempt_at", "dispatched_at"])
        if message.kind == OutboxMessage.Kind.EXECUTE:
            execution.requeue_execution(item=message.item)
        message_id = message.pk
        transaction.on_commit(lambda: dispatch([message_id]))
    return message
