"""Decisions: the rules a decision must follow, and what each outcome does."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from reviews import services
from reviews.exceptions import (
    AlreadyDecided,
    ClaimedByAnother,
    InvalidDecision,
    NoSuchItem,
    NotAllowed,
)
from reviews.models import Decision, ExecutionStatus, ItemStatus, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import (
    QueueFactory,
    action_submission,
)
from tests.reviews.services.common import approve, submit


@pytest.mark.parametrize("justification", ["", "   \n\t"])
def test_decision_needs_a_justification(integration, review_all, reviewer, justification):
    item = submit(integration)
    with pytest.raises(InvalidDecision) as excinfo:
        approve(item, reviewer, justification=justification)
    assert "justification" in excinfo.value.errors
    assert not Decision.objects.exists()


@pytest.mark.parametrize("action", ["reject", "edit"])
def test_reject_and_edit_need_a_reason_code(integration, review_all, reviewer, codes, action):
    item = submit(integration)
    with pytest.raises(InvalidDecision) as excinfo:
        services.decide(
            item=item, user=reviewer, action=action, justification="Wrong.", edited_output={"text": "Better."}
        )
    assert "reason_codes" in excinfo.value.errors


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("reject", "verified"),
        ("approve", "factual_error"),
        ("escalate", "factual_error"),
        ("reject", "retired"),
    ],
)
def test_reason_code_must_apply_to_the_action_and_be_active(
    integration, review_all, queue, reviewer, codes, action, code
):
    queue.escalation_queue = QueueFactory(slug="senior")
    queue.save()
    item = submit(integration)
    with pytest.raises(InvalidDecision):
        services.decide(
            item=item, user=reviewer, action=action, justification="Because.", reason_codes=[code]
        )


def test_unknown_reason_code_is_refused(integration, review_all, reviewer, codes):
    item = submit(integration)
    with pytest.raises(InvalidDecision):
        services.decide(item=item, user=reviewer, action="reject", justification="No.", reason_codes=["nope"])


def test_unknown_action_is_refused(integration, review_all, reviewer):
    item = submit(integration)
    with pytest.raises(InvalidDecision):
        services.decide(item=item, user=reviewer, action="delete", justification="x")


@pytest.mark.parametrize(
    ("edited_output", "edited_action"),
    [
        (None, None),
        ({"text": "We are open 9:00 to 17:00, Monday to Friday."}, None),
    ],
)
def test_edit_must_differ_from_the_original(
    integration, review_all, reviewer, codes, edited_output, edited_action
):
    item = submit(integration)
    with pytest.raises(InvalidDecision):
        services.decide(
            item=item,
            user=reviewer,
            action="edit",
            justification="Tone.",
            reason_codes=["factual_error"],
            edited_output=edited_output,
            edited_action=edited_action,
        )


def test_edit_may_not_change_the_action_type(integration, review_all, reviewer, codes):
    item = services.submit_item(integration=integration, payload=action_submission()).item
    with pytest.raises(InvalidDecision):
        services.decide(
            item=item,
            user=reviewer,
            action="edit",
            justification="Different tool.",
            reason_codes=["factual_error"],
            edited_action={"type": "payment.transfer", "params": {}},
        )


@pytest.mark.parametrize("checklist", [None, [], [True], [True, False], [True, "yes"]])
def test_approve_needs_every_checklist_item_ticked(integration, review_all, queue, reviewer, checklist):
    queue.checklist = ["Amount matches", "Recipient verified"]
    queue.save()
    item = submit(integration)
    with pytest.raises(InvalidDecision) as excinfo:
        approve(item, reviewer, checklist=checklist)
    assert "checklist" in excinfo.value.errors


def test_approve_with_the_checklist_ticked(integration, review_all, queue, reviewer):
    queue.checklist = ["Amount matches", "Recipient verified"]
    queue.save()
    decision = approve(submit(integration), reviewer, checklist=[True, True])
    assert decision.checklist == [True, True]


# --- Decisions: outcomes ----------------------------------------------------------------------


def test_approve_makes_the_original_final(integration, review_all, queue, reviewer):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    decision = approve(item, reviewer, reason_codes=[])
    item.refresh_from_db()
    assert item.status == ItemStatus.APPROVED
    assert item.final_output == item.output
    assert item.claimed_by is None and item.decided_at is not None
    assert decision.is_final and decision.seconds_spent is not None


def test_an_unclaimed_item_may_be_decided_directly(integration, review_all, reviewer):
    item = submit(integration)
    approve(item, reviewer)
    item.refresh_from_db()
    assert item.status == ItemStatus.APPROVED


def test_edit_makes_the_edited_version_final(integration, review_all, reviewer, codes):
    item = submit(integration)
    services.decide(
        item=item,
        user=reviewer,
        action="edit",
        justification="Hours changed in May.",
        reason_codes=["factual_error"],
        edited_output={"text": "We are open 8:00 to 18:00."},
    )
    item.refresh_from_db()
    assert item.status == ItemStatus.EDITED
    assert item.final_output == {"text": "We are open 8:00 to 18:00."}
    assert item.output == {"text": "We are open 9:00 to 17:00, Monday to Friday."}


def test_edited_action_is_final_and_due_for_execution(integration, review_all, reviewer, codes):
    item = services.submit_item(integration=integration, payload=action_submission()).item
    edited = {"type": "payment.refund", "params": {"order": "1182", "amount": 42.0, "currency": "EUR"}}
    services.decide(
        item=item,
        user=reviewer,
        action="edit",
        justification="Partial.",
        reason_codes=["factual_error"],
        edited_action=edited,
    )
    item.refresh_from_db()
    assert item.final_action == edited
    assert item.action["params"]["amount"] == 420.0
    assert item.execution_status == ExecutionStatus.PENDING


def test_reject_leaves_no_final_version_and_nothing_to_execute(integration, review_all, reviewer, codes):
    item = services.submit_item(integration=integration, payload=action_submission()).item
    services.decide(
        item=item,
        user=reviewer,
        action="reject",
        justification="Wrong order.",
        reason_codes=["factual_error"],
    )
    item.refresh_from_db()
    assert item.status == ItemStatus.REJECTED
    assert item.final_output is None and item.final_action is None
    assert item.execution_status == ExecutionStatus.NOT_REQUIRED


def test_escalate_moves_the_item_to_the_escalation_queue_with_a_fresh_deadline(
    integration, review_all, queue, reviewer, codes
):
    senior = QueueFactory(slug="senior", sla_minutes=120)
    queue.escalation_queue = senior
    queue.save()
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    decision = services.decide(
        item=item,
        user=reviewer,
        action="escalate",
        justification="Needs a lawyer.",
        reason_codes=["needs_expert"],
    )
    item.refresh_from_db()
    assert not decision.is_final
    assert item.queue == senior and item.status == ItemStatus.PENDING
    assert item.review_round == 2 and item.claimed_by is None
    assert item.due_at - item.entered_queue_at == timedelta(minutes=120)


def test_escalate_to_a_named_queue(integration, review_all, reviewer):
    legal = QueueFactory(slug="legal")
    item = submit(integration)
    services.decide(item=item, user=reviewer, action="escalate", justification="Legal.", escalate_to="legal")
    item.refresh_from_db()
    assert item.queue == legal


@pytest.mark.parametrize("escalate_to", [None, "no-such-queue", "general"])
def test_escalate_needs_another_existing_queue(integration, review_all, reviewer, escalate_to):
    item = submit(integration)
    with pytest.raises(InvalidDecision):
        services.decide(
            item=item, user=reviewer, action="escalate", justification="?", escalate_to=escalate_to
        )


@pytest.mark.parametrize("finish", ["approve", "cancel", "expire"])
def test_a_closed_item_cannot_be_decided(integration, review_all, queue, reviewer, finish):
    item = submit(integration)
    if finish == "approve":
        approve(item, reviewer)
    elif finish == "cancel":
        services.cancel(item=item, integration=integration)
    else:
        services.apply_timeout(item=item, now=item.due_at + timedelta(seconds=1))
        queue.refresh_from_db()
    with pytest.raises(AlreadyDecided):
        approve(item, make_reviewer("late", queue))


def test_a_claim_held_by_someone_else_blocks_the_decision(
    integration, review_all, queue, reviewer, other_reviewer
):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    with pytest.raises(ClaimedByAnother):
        approve(item, other_reviewer)


def test_to_an_outsider_the_item_does_not_exist(integration, review_all, outsider):
    item = submit(integration)
    with pytest.raises(NoSuchItem):
        approve(item, outsider)
    with pytest.raises(NoSuchItem):
        approve(ReviewItem(pk=uuid.uuid4()), outsider)


def test_compliance_cannot_decide(integration, review_all, compliance):
    with pytest.raises(NotAllowed):
        approve(submit(integration), compliance)


@pytest.mark.parametrize("params", ["all of it", [1, 2]])
def test_an_edited_action_its_executor_cannot_run_is_refused(
    integration, review_all, reviewer, codes, params
):
    item = services.submit_item(integration=integration, payload=action_submission()).item
    with pytest.raises(InvalidDecision) as excinfo:
        services.decide(
            item=item,
            user=reviewer,
            action="edit",
            justification="Refund everything.",
            reason_codes=["factual_error"],
            edited_action={"type": "payment.refund", "params": params},
        )
    assert "edited_action" in excinfo.value.errors
    assert not item.decisions.exists()
