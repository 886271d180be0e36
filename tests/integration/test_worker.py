"""Consequences of decisions carried out by real Celery worker processes on
PostgreSQL and a private Redis: crashes, a broker outage, retries, SLA timeouts.

The receiver dedupes actions on `Idempotency-Key` the way a payment provider
does; the promise under test is that it applies every approved action exactly
once and never sees an unapproved one.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import services
from reviews.models import ExecutionStatus, ItemStatus, OutboxMessage, ReviewItem
from reviews.webhooks.signing import verify
from tests.conftest import make_reviewer
from tests.factories import QueueFactory, action_submission, submission
from tests.processes import wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def submit_actions(integration, count: int) -> list[ReviewItem]:
    return [
        services.submit_item(integration=integration, payload=action_submission(external_id=f"a-{i}")).item
        for i in range(count)
    ]


def action_requests(receiver) -> list:
    return [r for r in receiver.requests if r.path == "/actions"]


def all_executed(items) -> bool:
    ids = [item.pk for item in items]
    return ReviewItem.objects.filter(pk__in=ids, execution_status=ExecutionStatus.SUCCEEDED).count() == len(
        ids
    )


def assert_exactly_once(receiver, approved, unapproved) -> Counter:
    received = Counter(r.headers["Idempotency-Key"] for r in action_requests(receiver))
    assert set(receiver.applied) == {str(item.pk) for item in approved}
    assert not set(received) & {str(item.pk) for item in unapproved}, "an unapproved action was sent"
    # Never sent after the service recorded the acknowledgement.
    for message in OutboxMessage.objects.filter(kind="execute", item__in=approved):
        assert message.status == OutboxMessage.Status.DELIVERED
        late = [
            r for r in action_requests(receiver)
            if r.headers["Idempotency-Key"] == str(message.item_id) and r.received_at > message.delivered_at
        ]  # fmt: skip
        assert not late, f"{message.item_id} was sent again after it was acknowledged"
    for item in ReviewItem.objects.filter(pk__in=[i.pk for i in approved]):
        assert item.execution_status == ExecutionStatus.SUCCEEDED
        assert item.executed_action == item.final_action
    return received


def test_killing_workers_mid_flight_never_applies_an_action_twice(wired, receiver, queue, worker, beat):
    receiver.delay = 0.4  # keep executor calls in flight when the worker dies
    reviewer = make_reviewer("reviewer", queue)
    approved = submit_actions(wired, 40)
    rejected = submit_actions(wired, 8)
    left_pending = submit_actions(wired, 4)

    for item in rejected:
        services.decide(
            item=item,
            user=reviewer,
            action="reject",
            justification="Wrong account.",
            reason_codes=["policy_violation"],
        )
    rng = random.Random(7)
    order = approved[:]
    rng.shuffle(order)
    for index, item in enumerate(order):
        services.decide(item=item, user=reviewer, action="approve", justification="Verified.")
        if index % 10 == 9:
            time.sleep(rng.uniform(0.3, 0.9))
            worker.kill()
            worker.start()

    for _ in range(2):
        time.sleep(rng.uniform(0.5, 1.0))
        worker.kill()
        worker.start()

    wait_until(lambda: all_executed(approved), 120, interval=0.5, what="every approved action executed")
    received = assert_exactly_once(receiver, approved, rejected + left_pending)
    assert worker.starts >= 6
    redeliveries = sum(n - 1 for n in received.values())
    print(f"\n{len(approved)} actions applied once from {sum(received.values())} requests: "
          f"{redeliveries} redeliveries after {worker.starts - 1} SIGKILLs")  # fmt: skip


def test_a_broker_outage_loses_no_consequence(wired, receiver, queue, broker, worker, beat):
    reviewer = make_reviewer("reviewer", queue)
    items = submit_actions(wired, 6)
    broker.stop()
    for item in items:
        services.decide(item=item, user=reviewer, action="approve", justification="Verified.")
    assert OutboxMessage.objects.filter(kind="execute", status="pending").count() == len(items)
    time.sleep(1)
    broker.start()

    wait_until(lambda: all_executed(items), 90, interval=0.5, what="actions executed after the outage")
    received = assert_exactly_once(receiver, items, [])
    assert set(received.values()) == {1}
    callbacks = {r.json["data"]["id"] for r in receiver.requests if r.path == "/callback"}
    wait_until(
        lambda: len({r.json["data"]["id"] for r in receiver.requests if r.path == "/callback"}) == len(items),
        30,
        what="callbacks after the outage",
    )
    assert callbacks <= {str(item.pk) for item in items}


def test_a_failing_callback_receiver_gets_the_webhook_after_retries(wired, receiver, queue, worker, beat):
    receiver.fail_first = 2
    reviewer = make_reviewer("reviewer", queue)
    item = services.submit_item(integration=wired, payload=submission()).item
    services.decide(item=item, user=reviewer, action="approve", justification="Fine.")

    message = OutboxMessage.objects.get(item=item, kind="callback")
    wait_until(
        lambda: OutboxMessage.objects.get(pk=message.pk).status == "delivered", 60, what="callback delivered"
    )
    attempts = list(message.delivery_attempts.order_by("number").values_list("status_code", flat=True))
    assert attempts == [500, 500, 200]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {message.msg_id}
    last = receiver.requests[-1]
    verify(secret=wired.webhook_secret, headers=last.headers, body=last.body)
    assert last.json["data"]["status"] == "approved"


def test_overdue_items_follow_the_timeout_outcome_and_never_execute(wired, receiver, queue, worker, beat):
    queue.timeout_outcome = "reject"
    queue.save()
    overdue, at_risk = submit_actions(wired, 2)
    now = timezone.now()
    ReviewItem.objects.filter(pk=overdue.pk).update(
        due_at=now - timedelta(seconds=1), at_risk_at=now - timedelta(minutes=30)
    )
    ReviewItem.objects.filter(pk=at_risk.pk).update(at_risk_at=now - timedelta(seconds=1))

    wait_until(
        lambda: ReviewItem.objects.get(pk=overdue.pk).status == ItemStatus.EXPIRED, 30, what="timeout applied"
    )
    wait_until(
        lambda: ReviewItem.objects.get(pk=at_risk.pk).at_risk_flagged_at is not None, 30, what="at-risk flag"
    )
    wait_until(lambda: any(r.path == "/callback" for r in receiver.requests), 30, what="expiry callback")

    expired = ReviewItem.objects.get(pk=overdue.pk)
    assert expired.final_action is None and expired.execution_status == ExecutionStatus.NOT_REQUIRED
    assert not OutboxMessage.objects.filter(item=expired, kind="execute").exists()
    assert action_requests(receiver) == []
    assert ReviewItem.objects.get(pk=at_risk.pk).status == ItemStatus.PENDING
    assert receiver.requests[0].json["data"]["status"] == "expired"


def test_escalation_on_timeout_moves_the_item_with_a_fresh_deadline(wired, queue, worker, beat):
    senior = QueueFactory(slug="senior", sla_minutes=120)
    queue.escalation_queue = senior
    queue.timeout_outcome = "escalate"
    queue.save()
    [item] = submit_actions(wired, 1)
    ReviewItem.objects.filter(pk=item.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    wait_until(lambda: ReviewItem.objects.get(pk=item.pk).queue_id == senior.pk, 30, what="escalation")
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING
    assert item.due_at > timezone.now() + timedelta(minutes=119)
