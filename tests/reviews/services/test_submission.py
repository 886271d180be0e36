"""Submission through the gate, idempotency, and cancellation, on a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reviews import services
from reviews.exceptions import (
    AlreadyDecided,
    IdempotencyMismatch,
    NotAllowed,
)
from reviews.models import ExecutionStatus, ItemStatus, ReviewItem
from tests.factories import (
    GateConditionFactory,
    GateRuleFactory,
    action_submission,
    submission,
)
from tests.reviews.services.common import approve, submit


def test_held_submission_waits_in_its_queue_with_a_deadline(integration, review_all, queue):
    item = submit(integration)
    assert item.status == ItemStatus.PENDING
    assert item.queue == queue
    assert item.due_at - item.entered_queue_at == timedelta(minutes=queue.sla_minutes)
    assert item.at_risk_at - item.entered_queue_at == timedelta(minutes=queue.sla_minutes / 2)
    assert item.final_output is None
    assert item.matched_rules == [
        {
            "id": review_all.pk,
            "name": "Review everything",
            "version": 1,
            "outcome": "review",
            "queue": "general",
            "risk_level": "medium",
            "description": "",
            "fired": [],  # a rule without conditions matches on nothing in particular
        }
    ]


def test_submission_no_rule_matches_is_auto_approved_with_its_output_final(integration):
    item = submit(integration)
    assert item.status == ItemStatus.AUTO_APPROVED
    assert item.queue is None
    assert item.final_output == item.output
    assert item.execution_status == ExecutionStatus.NOT_REQUIRED
    assert item.decided_at is not None


def test_auto_approved_action_is_due_for_execution(integration):
    item = services.submit_item(integration=integration, payload=action_submission()).item
    assert item.status == ItemStatus.AUTO_APPROVED
    assert item.final_action == item.action
    assert item.execution_status == ExecutionStatus.PENDING


def test_blocked_submission_never_gets_a_final_version(integration):
    rule = GateRuleFactory(outcome="block", queue=None, risk_level="high")
    GateConditionFactory(rule=rule, field="signals.filter_flags", op="contains", value="csam")
    item = submit(integration, signals={"filter_flags": ["csam"]})
    assert item.status == ItemStatus.BLOCKED
    assert item.final_output is None and item.final_action is None
    assert item.execution_status == ExecutionStatus.NOT_REQUIRED


def test_spot_check_answers_at_once_and_queues_a_linked_copy(integration, queue):
    GateRuleFactory(name="Sample", outcome="spot_check", queue=queue)
    item = submit(integration)
    assert item.status == ItemStatus.AUTO_APPROVED
    copy = item.spot_checks.get()
    assert copy.status == ItemStatus.PENDING and copy.queue == queue
    assert copy.output == item.output
    assert list(ReviewItem.objects.visible_to_integration(integration)) == [item]


def test_rule_edits_never_change_why_an_old_item_was_gated(integration, review_all):
    item = submit(integration)
    review_all.name = "Renamed"
    review_all.version = 2
    review_all.save()
    item.refresh_from_db()
    assert item.matched_rules[0]["name"] == "Review everything"
    assert item.matched_rules[0]["version"] == 1


def test_idempotent_replay_returns_the_first_item(integration, review_all):
    first = services.submit_item(integration=integration, payload=submission(), idempotency_key="k-1")
    again = services.submit_item(integration=integration, payload=submission(), idempotency_key="k-1")
    assert first.created and not again.created
    assert again.item.pk == first.item.pk
    assert ReviewItem.objects.count() == 1


def test_idempotency_key_with_another_body_is_refused(integration, review_all):
    services.submit_item(integration=integration, payload=submission(), idempotency_key="k-1")
    with pytest.raises(IdempotencyMismatch):
        services.submit_item(
            integration=integration, payload=submission(external_id="other"), idempotency_key="k-1"
        )


def test_idempotency_keys_are_scoped_per_integration(integration, other_integration, review_all):
    mine = services.submit_item(integration=integration, payload=submission(), idempotency_key="k-1")
    theirs = services.submit_item(integration=other_integration, payload=submission(), idempotency_key="k-1")
    assert theirs.created and theirs.item.pk != mine.item.pk


def test_cancel_withdraws_an_undecided_item(integration, review_all, queue, reviewer):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    cancelled = services.cancel(item=item, integration=integration)
    assert cancelled.status == ItemStatus.CANCELLED and cancelled.claimed_by is None


def test_cancel_after_a_decision_is_a_conflict(integration, review_all, reviewer):
    item = submit(integration)
    approve(item, reviewer)
    with pytest.raises(AlreadyDecided):
        services.cancel(item=item, integration=integration)


def test_another_integration_cannot_cancel(integration, other_integration, review_all):
    with pytest.raises(NotAllowed):
        services.cancel(item=submit(integration), integration=other_integration)
