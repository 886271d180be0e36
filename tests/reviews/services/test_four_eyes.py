"""Four-eyes: two different reviewers, kept through escalation, held by the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from reviews import services
from reviews.exceptions import (
    InvalidDecision,
    NotAllowed,
)
from reviews.models import Decision, ItemStatus, Queue, ReviewItem
from tests.reviews.services.common import approve, submit


def test_first_approval_of_a_four_eyes_queue_keeps_the_item_pending(
    integration, review_all, four_eyes, reviewer
):
    item = submit(integration)
    services.claim_next(queue=four_eyes, user=reviewer)
    decision = approve(item, reviewer)
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING and item.claimed_by is None
    assert item.final_output is None
    assert not decision.is_final and decision.step == 1


def test_second_approval_must_come_from_another_reviewer(integration, review_all, four_eyes, reviewer):
    item = submit(integration)
    approve(item, reviewer)
    with pytest.raises(NotAllowed):
        approve(item, reviewer)


def test_the_first_approver_is_not_offered_the_item_again(integration, review_all, four_eyes, reviewer):
    item = submit(integration)
    approve(item, reviewer)
    assert services.claim_next(queue=four_eyes, user=reviewer) is None
    with pytest.raises(NotAllowed):
        services.claim(item=item, user=reviewer)


def test_two_different_reviewers_approve(integration, review_all, four_eyes, reviewer, other_reviewer):
    item = submit(integration)
    approve(item, reviewer)
    assert services.claim_next(queue=four_eyes, user=other_reviewer).pk == item.pk
    decision = approve(item, other_reviewer)
    item.refresh_from_db()
    assert item.status == ItemStatus.APPROVED and decision.is_final and decision.step == 2


def test_four_eyes_edit_is_the_first_approval_of_the_edited_version(
    integration, review_all, four_eyes, reviewer, other_reviewer, codes
):
    item = submit(integration)
    services.decide(
        item=item,
        user=reviewer,
        action="edit",
        justification="Fix.",
        reason_codes=["factual_error"],
        edited_output={"text": "Edited."},
    )
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING and item.final_output is None
    approve(item, other_reviewer)
    item.refresh_from_db()
    assert item.status == ItemStatus.EDITED and item.final_output == {"text": "Edited."}


def test_second_reviewer_cannot_edit_again(
    integration, review_all, four_eyes, reviewer, other_reviewer, codes
):
    item = submit(integration)
    approve(item, reviewer)
    with pytest.raises(InvalidDecision):
        services.decide(
            item=item,
            user=other_reviewer,
            action="edit",
            justification="x",
            reason_codes=["factual_error"],
            edited_output={"text": "Other."},
        )


def test_a_rejection_by_the_second_reviewer_is_final(
    integration, review_all, four_eyes, reviewer, other_reviewer, codes
):
    item = submit(integration)
    approve(item, reviewer)
    services.decide(
        item=item, user=other_reviewer, action="reject", justification="No.", reason_codes=["factual_error"]
    )
    item.refresh_from_db()
    assert item.status == ItemStatus.REJECTED


def test_escalating_a_four_eyes_item_to_a_one_approval_queue_keeps_two_approvals(
    integration, review_all, four_eyes, one_approval, reviewer, other_reviewer
):
    item = submit(integration)
    services.decide(item=item, user=reviewer, action="escalate", justification="Quick.", escalate_to="quick")
    item.refresh_from_db()
    assert item.queue == one_approval and item.required_approvals == 2

    first = approve(item, reviewer)
    item.refresh_from_db()
    assert not first.is_final and item.status == ItemStatus.PENDING and item.final_output is None
    with pytest.raises(NotAllowed):
        approve(item, reviewer)
    assert approve(item, other_reviewer).is_final
    item.refresh_from_db()
    assert item.status == ItemStatus.APPROVED


def test_whoever_escalated_cannot_be_the_only_approver_afterwards(
    integration, review_all, queue, one_approval, reviewer, other_reviewer
):
    item = submit(integration)
    services.decide(item=item, user=reviewer, action="escalate", justification="Quick.", escalate_to="quick")
    item.refresh_from_db()
    assert item.required_approvals == 1

    alone = approve(item, reviewer)
    item.refresh_from_db()
    assert not alone.is_final and item.status == ItemStatus.PENDING
    assert services.claim_next(queue=one_approval, user=reviewer) is None
    assert approve(item, other_reviewer).is_final


def test_a_reviewer_who_did_not_escalate_approves_alone_in_a_one_approval_queue(
    integration, review_all, queue, one_approval, reviewer, other_reviewer
):
    item = submit(integration)
    services.decide(item=item, user=reviewer, action="escalate", justification="Quick.", escalate_to="quick")
    assert approve(item, other_reviewer).is_final


def test_a_timeout_escalation_keeps_four_eyes(integration, review_all, four_eyes, one_approval, reviewer):
    four_eyes.timeout_outcome = Queue.TimeoutOutcome.ESCALATE
    four_eyes.escalation_queue = one_approval
    four_eyes.save()
    item = submit(integration)
    services.apply_sla_timeouts(now=item.due_at + timedelta(seconds=1))
    item.refresh_from_db()
    assert item.queue == one_approval and item.required_approvals == 2
    assert not approve(item, reviewer).is_final


def test_raising_a_queues_approvals_applies_to_the_items_waiting_in_it(
    integration, review_all, queue, reviewer
):
    item = submit(integration)
    queue.required_approvals = 2
    queue.save()
    assert not approve(item, reviewer).is_final


def test_database_refuses_two_approvals_by_one_reviewer_in_a_round(
    integration, review_all, four_eyes, reviewer
):
    item = submit(integration)
    first = approve(item, reviewer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            item=item,
            reviewer=reviewer,
            queue=four_eyes,
            action="approve",
            justification="again",
            round=first.round,
            step=2,
        )


def test_database_refuses_a_second_final_decision(integration, review_all, queue, reviewer, other_reviewer):
    item = submit(integration)
    approve(item, reviewer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            item=item,
            reviewer=other_reviewer,
            queue=queue,
            action="reject",
            justification="late",
            round=1,
            step=2,
            is_final=True,
        )


def test_database_refuses_a_claim_outside_in_review(integration, review_all, reviewer):
    item = submit(integration)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReviewItem.objects.filter(pk=item.pk).update(claimed_by=reviewer)
