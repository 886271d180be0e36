"""The review state machine, rule by rule, on a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews import services
from reviews.exceptions import (
    AlreadyDecided,
    ClaimedByAnother,
    IdempotencyMismatch,
    InvalidDecision,
    InvalidInput,
    NotAllowed,
    NotClaimed,
)
from reviews.models import BacklogItem, Decision, ExecutionStatus, Incident, ItemStatus, Queue, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import (
    GateConditionFactory,
    GateRuleFactory,
    QueueFactory,
    ReasonCodeFactory,
    action_submission,
    submission,
)


@pytest.fixture
def review_all(queue):
    """Every submission is held in the general queue."""
    return GateRuleFactory(name="Review everything", queue=queue, outcome="review", risk_level="medium")


@pytest.fixture
def codes(db):
    return {
        "factual_error": ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"]),
        "missing_guardrail": ReasonCodeFactory(
            code="missing_guardrail", applies_to=["reject", "edit"], creates_backlog_item=True
        ),
        "verified": ReasonCodeFactory(code="verified", applies_to=["approve"]),
        "needs_expert": ReasonCodeFactory(code="needs_expert", applies_to=["escalate"]),
        "retired": ReasonCodeFactory(code="retired", applies_to=["reject"], active=False),
    }


def submit(integration, **overrides):
    return services.submit_item(integration=integration, payload=submission(**overrides)).item


def approve(item, user, **kwargs):
    kwargs.setdefault("justification", "Checked against the source.")
    return services.decide(item=item, user=user, action="approve", **kwargs)


# --- Submission and the gate -----------------------------------------------------------


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


# --- Claims ----------------------------------------------------------------------------------


def test_claim_next_takes_priority_then_due_date_then_age(integration, queue, reviewer):
    low = GateRuleFactory(name="low", queue=queue, risk_level="low", priority=50)
    GateConditionFactory(rule=low, field="metadata.risk", op="eq", value="low")
    high = GateRuleFactory(name="high", queue=queue, risk_level="high", priority=10)
    GateConditionFactory(rule=high, field="metadata.risk", op="eq", value="high")
    older_low = submit(integration, metadata={"risk": "low"})
    newer_low = submit(integration, metadata={"risk": "low"})
    high_item = submit(integration, metadata={"risk": "high"})
    ReviewItem.objects.filter(pk=newer_low.pk).update(due_at=older_low.due_at - timedelta(minutes=1))

    order = [services.claim_next(queue=queue, user=make_reviewer(f"r{i}", queue)).pk for i in range(3)]
    assert order == [high_item.pk, newer_low.pk, older_low.pk]


def test_claim_next_on_an_empty_queue_returns_none(queue, reviewer):
    assert services.claim_next(queue=queue, user=reviewer) is None


def test_claim_next_gives_a_lease(integration, review_all, queue, reviewer, settings):
    settings.HITL_CLAIM_MINUTES = 15
    submit(integration)
    item = services.claim_next(queue=queue, user=reviewer)
    assert item.status == ItemStatus.IN_REVIEW
    assert item.claimed_by == reviewer
    assert timedelta(minutes=14) < item.claim_expires_at - timezone.now() <= timedelta(minutes=15)


def test_reviewer_holding_a_claim_gets_the_same_item_back(integration, review_all, queue, reviewer):
    submit(integration)
    submit(integration)
    first = services.claim_next(queue=queue, user=reviewer)
    assert services.claim_next(queue=queue, user=reviewer).pk == first.pk
    assert ReviewItem.objects.filter(status=ItemStatus.IN_REVIEW).count() == 1


def test_two_reviewers_never_hold_one_item(integration, review_all, queue, reviewer, other_reviewer):
    submit(integration)
    assert services.claim_next(queue=queue, user=reviewer) is not None
    assert services.claim_next(queue=queue, user=other_reviewer) is None


def test_an_expired_lease_lets_another_reviewer_claim(
    integration, review_all, queue, reviewer, other_reviewer
):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    ReviewItem.objects.filter(pk=item.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    taken = services.claim_next(queue=queue, user=other_reviewer)
    assert taken.pk == item.pk and taken.claimed_by == other_reviewer


def test_expire_claims_returns_lapsed_items_to_the_queue(integration, review_all, queue, reviewer):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    assert services.expire_claims(now=timezone.now() + timedelta(hours=1)) == 1
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING and item.claimed_by is None


def test_outsider_cannot_claim(integration, review_all, queue, outsider):
    submit(integration)
    with pytest.raises(NotAllowed):
        services.claim_next(queue=queue, user=outsider)


def test_reviewer_role_is_needed_besides_the_queue_group(integration, review_all, queue):
    from tests.factories import UserFactory

    member = UserFactory(username="member-only")
    member.groups.add(*queue.reviewer_groups.all())
    submit(integration)
    with pytest.raises(NotAllowed):
        services.claim_next(queue=queue, user=member)


def test_superuser_may_review_every_queue(integration, review_all, queue, superuser):
    submit(integration)
    assert services.claim_next(queue=queue, user=superuser) is not None


def test_release_frees_the_item(integration, review_all, queue, reviewer):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    released = services.release(item=item, user=reviewer)
    assert released.status == ItemStatus.PENDING and released.claimed_by is None


def test_release_of_another_reviewers_claim_is_a_conflict(
    integration, review_all, queue, reviewer, other_reviewer
):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    with pytest.raises(ClaimedByAnother):
        services.release(item=item, user=other_reviewer)


def test_release_of_an_unclaimed_item_is_a_conflict(integration, review_all, reviewer):
    item = submit(integration)
    with pytest.raises(NotClaimed):
        services.release(item=item, user=reviewer)


# --- Decisions: validation ------------------------------------------------------------------


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


def test_outsider_cannot_decide(integration, review_all, outsider):
    item = submit(integration)
    with pytest.raises(NotAllowed):
        approve(item, outsider)


def test_compliance_cannot_decide(integration, review_all, compliance):
    with pytest.raises(NotAllowed):
        approve(submit(integration), compliance)


# --- Four-eyes -----------------------------------------------------------------------------------


@pytest.fixture
def four_eyes(queue):
    queue.required_approvals = 2
    queue.save()
    return queue


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


@pytest.fixture
def one_approval(reviewer, other_reviewer):
    """A one-approval queue that both reviewers review too."""
    group = Group.objects.create(name="quick-reviewers")
    quick = QueueFactory(slug="quick", name="Quick", required_approvals=1)
    quick.reviewer_groups.add(group)
    for user in (reviewer, other_reviewer):
        user.groups.add(group)
    return quick


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


# --- Feedback ------------------------------------------------------------------------------------


def test_rejections_with_a_backlog_code_open_then_update_one_backlog_item(
    integration, review_all, queue, reviewer, codes
):
    for _ in range(2):
        services.decide(
            item=submit(integration),
            user=reviewer,
            action="reject",
            justification="Leaked data.",
            reason_codes=["missing_guardrail", "factual_error"],
        )
    backlog = BacklogItem.objects.get()
    assert backlog.reason_code.code == "missing_guardrail" and backlog.queue == queue
    assert backlog.decisions.count() == 2


def test_approvals_never_open_backlog_items(integration, review_all, reviewer, codes):
    approve(submit(integration), reviewer, reason_codes=["verified"])
    assert not BacklogItem.objects.exists()


def test_rejected_spot_check_opens_an_incident_on_the_original(integration, queue, reviewer, codes):
    GateRuleFactory(name="Sample", outcome="spot_check", queue=queue)
    original = submit(integration)
    copy = original.spot_checks.get()
    services.decide(
        item=copy,
        user=reviewer,
        action="reject",
        justification="Wrong hours.",
        reason_codes=["factual_error"],
    )
    incident = Incident.objects.get()
    assert incident.item == original and incident.source == Incident.Source.SPOT_CHECK
    copy.refresh_from_db()
    assert copy.execution_status == ExecutionStatus.NOT_REQUIRED


def test_approved_spot_check_of_an_action_never_executes(integration, queue, reviewer):
    GateRuleFactory(name="Sample", outcome="spot_check", queue=queue)
    original = services.submit_item(integration=integration, payload=action_submission()).item
    copy = original.spot_checks.get()
    approve(copy, reviewer)
    copy.refresh_from_db()
    assert copy.status == ItemStatus.APPROVED
    assert copy.execution_status == ExecutionStatus.NOT_REQUIRED


def test_incident_links_the_decision_that_let_the_item_through(integration, review_all, reviewer):
    item = submit(integration)
    decision = approve(item, reviewer)
    incident = services.report_incident(
        item=item, severity="high", description="Wrong hours told.", integration=integration
    )
    assert incident.decision == decision and incident.source == Incident.Source.INTEGRATION


@pytest.mark.parametrize(("severity", "description"), [("extreme", "x"), ("high", "  ")])
def test_incident_needs_a_known_severity_and_a_description(integration, severity, description):
    item = submit(integration)
    with pytest.raises(InvalidInput):
        services.report_incident(
            item=item, severity=severity, description=description, integration=integration
        )


# --- Cancellation and SLA ----------------------------------------------------------------------------


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
