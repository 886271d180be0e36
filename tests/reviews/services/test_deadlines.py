"""Deadlines: at-risk flags and SLA timeouts (escalate or expire, never approve)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reviews import services
from reviews.models import ExecutionStatus, ItemStatus, Queue, ReviewItem
from tests.factories import (
    QueueFactory,
    action_submission,
)
from tests.reviews.services.common import submit


def test_past_its_deadline_an_item_escalates_with_a_fresh_deadline(integration, review_all, queue):
    senior = QueueFactory(slug="senior", sla_minutes=30)
    queue.timeout_outcome = Queue.TimeoutOutcome.ESCALATE
    queue.escalation_queue = senior
    queue.save()
    item = submit(integration)
    later = item.due_at + timedelta(seconds=1)
    assert services.apply_sla_timeouts(now=later) == 1
    item.refresh_from_db()
    assert item.queue == senior and item.status == ItemStatus.PENDING
    assert item.due_at == later + timedelta(minutes=30)
    assert item.final_output is None


@pytest.mark.parametrize("outcome", ["reject", "escalate"])
def test_past_its_deadline_an_item_expires_when_it_cannot_escalate(integration, review_all, queue, outcome):
    queue.timeout_outcome = outcome
    queue.escalation_queue = None
    queue.save()
    item = services.submit_item(integration=integration, payload=action_submission()).item
    services.apply_sla_timeouts(now=item.due_at + timedelta(seconds=1))
    item.refresh_from_db()
    assert item.status == ItemStatus.EXPIRED
    assert item.final_action is None and item.execution_status == ExecutionStatus.NOT_REQUIRED


def test_items_not_yet_due_are_left_alone(integration, review_all):
    item = submit(integration)
    assert services.apply_sla_timeouts(now=item.due_at - timedelta(seconds=1)) == 0


def test_at_half_the_sla_an_item_is_at_risk(integration, review_all, queue):
    item = submit(integration)
    half = item.entered_queue_at + timedelta(minutes=queue.sla_minutes / 2)
    assert not ReviewItem.objects.at_risk(half - timedelta(seconds=1)).exists()
    assert list(ReviewItem.objects.at_risk(half)) == [item]
    assert not ReviewItem.objects.at_risk(item.due_at).exists()
    assert list(ReviewItem.objects.overdue(item.due_at)) == [item]
