"""Decisions: a reviewer approves, edits, rejects or escalates (SPEC section 4's rules)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from reviews import chain
from reviews.access import may_read_item
from reviews.delivery.executors import InvalidAction, executor_for
from reviews.exceptions import ClaimedByAnother, InvalidDecision, NoSuchItem, NotAllowed
from reviews.models import Decision, DecisionAction, ItemKind, ItemStatus, Queue, ReasonCode, ReviewItem
from reviews.representation import shows_decisions
from reviews.services.claims import ensure_distinct_approver
from reviews.services.feedback import incident_from_spot_check, raise_backlog_items
from reviews.services.transitions import (
    approve_as_is,
    clear_claim,
    close_item,
    ensure_open,
    escalate,
    free,
    lock,
    save_state,
)

logger = logging.getLogger(__name__)


def decide(
    *,
    item: ReviewItem,
    user,
    action: str,
    justification: str,
    reason_codes: list[str] | None = None,
    edited_output: Any = None,
    edited_action: Any = None,
    checklist: list | None = None,
    escalate_to: Queue | str | None = None,
    bulk: bool = False,
) -> Decision:
    """Record a reviewer's decision and move the item on (`bulk`: one of a bulk
    approval, allowed only where `item.may_be_bulk_approved`).

    1. Lock the item (with its queue, and whether the user reviews that queue, in
       the same statement): only its key is read from `item`, and an item the user
       may not see is no item (NoSuchItem); the user must review its queue; it must
       still be open and not claimed by someone else (an unclaimed item is claimed
       implicitly).
    2. Validate: justification, reason codes for the action, checklist on
       approve and edit, an edit that differs, a distinct second approver.
    3. Write the decision (append-only) and the item's new state:
       approve/edit → approved/edited once enough approvals exist, else pending
       for the second reviewer; reject → rejected (final in any round);
       escalate → pending in the target queue, a new round, a fresh deadline.
    4. Feedback in the same transaction: backlog items for reason codes that
       ask for one, and an incident when a spot check is rejected.
    5. Seal the decision into the audit chain (`reviews.chain`).
    """
    if action not in DecisionAction.values:
        raise InvalidDecision(
            f"Unknown action {action!r}.",
            errors={"action": [f"Choose one of {', '.join(DecisionAction.values)}."]},
        )
    justification = (justification or "").strip()
    if not justification:
        raise InvalidDecision(
            "A justification is required.", errors={"justification": ["This field is required."]}
        )

    now = timezone.now()
    with transaction.atomic():
        try:
            item = lock(item, reviewer=user)
        except ReviewItem.DoesNotExist:
            raise NoSuchItem("Not found.") from None
        queue = item.queue
        if queue is None or not item.reviewable:
            if not may_read_item(user, item):
                raise NoSuchItem("Not found.")
            raise NotAllowed("You are not a reviewer of this queue.")
        ensure_open(item)
        if item.is_claimed_by_other(user, now):
            raise ClaimedByAnother(f"{item.claimed_by} holds the claim on this item.")
        if bulk and (action != DecisionAction.APPROVE or not item.may_be_bulk_approved):
            raise NotAllowed("This item cannot be bulk approved: open it and decide it on its own.")

        codes = _reason_codes(reason_codes or [], action)
        earlier = _decisions_so_far(item)
        this_round = sorted((d for d in earlier if d.round == item.review_round), key=lambda d: d.step)
        approvals = [d for d in this_round if d.is_approval]
        is_approval = action in (DecisionAction.APPROVE, DecisionAction.EDIT)
        if is_approval:
            ensure_distinct_approver(approvals, user)
        if action == DecisionAction.EDIT and approvals:
            raise InvalidDecision(
                "The second reviewer approves or rejects the edited version; "
                "to change it, reject it or escalate."
            )
        answers = _check_checklist(queue, checklist) if is_approval else list(checklist or [])
        if action == DecisionAction.EDIT:
            _check_edit(item, edited_output, edited_action)
        target = _escalation_target(queue, escalate_to) if action == DecisionAction.ESCALATE else None

        escalated_by = {d.reviewer_id for d in earlier if d.action == DecisionAction.ESCALATE}
        is_final = action == DecisionAction.REJECT or (
            is_approval
            and _approvals_suffice(item, [*(d.reviewer_id for d in approvals), user.pk], escalated_by)
        )
        decision = Decision.objects.create(
            item=item,
            reviewer=user,
            queue=queue,
            action=action,
            justification=justification,
            edited_output=edited_output if action == DecisionAction.EDIT else None,
            edited_action=edited_action if action == DecisionAction.EDIT else None,
            checklist=answers,
            cited_codes=[code.code for code in codes],
            round=item.review_round,
            step=len(this_round) + 1,
            is_final=is_final,
            seconds_spent=_seconds_spent(item, user, now),
            created_at=now,
        )
        if codes:  # a new decision has no codes yet: insert the links, nothing to compare with
            cited = Decision.reason_codes.through
            cited.objects.bulk_create([cited(decision=decision, reasoncode=code) for code in codes])
        # The webhook body and the answer show every decision: they are all at hand.
        shows_decisions(item, [*earlier, decision])

        if action == DecisionAction.ESCALATE:
            escalate(item, target, now, f"escalated to {target.slug}")
        elif action == DecisionAction.REJECT:
            close_item(item, ItemStatus.REJECTED, now, "rejected")
        elif is_final:
            _finish_approval(item, decision, approvals, now)
            save_state(item, item.status)
        else:
            free(item, "first approval")  # waiting for a second, different reviewer

        if action == DecisionAction.REJECT:
            logger.info("Item %s rejected by %s: %s", item.pk, user, justification)
        if not item.is_gold:  # a copy of an earlier item: its root cause is already counted
            raise_backlog_items(decision, codes)
        if action == DecisionAction.REJECT and item.is_spot_check:
            incident_from_spot_check(item, decision)
        chain.seal(decision)  # last: it takes the chain's lock, after every other lock
    return decision


def _decisions_so_far(item: ReviewItem) -> list[Decision]:
    """In one statement, every decision on the item with its reviewer, in the order
    they were made: this round's bear on the next one (its approvals, and how many
    steps it has), every escalation says who moved the item, and the item's
    representation shows them all."""
    return list(item.decisions.select_related("reviewer").order_by("created_at", "pk"))


def _approvals_suffice(item: ReviewItem, approver_ids: list[int], escalated_by: set[int]) -> bool:
    """Enough different reviewers approved this round, and not only people who
    escalated the item: whoever moved it to another queue cannot be the one who
    then waves it through there alone."""
    if len(approver_ids) < item.approvals_needed:
        return False
    return any(approver not in escalated_by for approver in approver_ids)


def _reason_codes(codes: list[str], action: str) -> list[ReasonCode]:
    wanted = list(dict.fromkeys(codes or []))
    if any(not isinstance(code, str) for code in wanted):
        raise InvalidDecision(
            "Reason codes are strings.", errors={"reason_codes": ["Reason codes are strings."]}
        )
    if not wanted:
        if action in (DecisionAction.REJECT, DecisionAction.EDIT):
            message = f"Give at least one reason code for {action}."
            raise InvalidDecision(message, errors={"reason_codes": [message]})
        return []
    found = {rc.code: rc for rc in ReasonCode.objects.filter(code__in=wanted, active=True)}
    unknown = [code for code in wanted if code not in found]
    if unknown:
        message = f"Unknown or inactive reason code: {', '.join(unknown)}."
        raise InvalidDecision(message, errors={"reason_codes": [message]})
    wrong = [code for code in wanted if not found[code].applies(action)]
    if wrong:
        message = f"Not a reason code for {action}: {', '.join(wrong)}."
        raise InvalidDecision(message, errors={"reason_codes": [message]})
    return [found[code] for code in wanted]


def _check_checklist(queue: Queue, checklist: list | None) -> list[bool]:
    expected = len(queue.checklist or [])
    answers = list(checklist or [])
    if expected == 0:
        return answers
    if len(answers) != expected or not all(answer is True for answer in answers):
        message = f"Tick every checklist item ({expected}) before approving."
        raise InvalidDecision(message, errors={"checklist": [message]})
    return answers


def _check_edit(item: ReviewItem, edited_output: Any, edited_action: Any) -> None:
    if edited_output is None and edited_action is None:
        message = "An edit needs the edited output or action."
        raise InvalidDecision(message, errors={"edited_output": [message]})
    if edited_action is not None:
        if item.kind != ItemKind.ACTION:
            message = "Only action items have an action to edit."
            raise InvalidDecision(message, errors={"edited_action": [message]})
        if not isinstance(edited_action, dict) or not isinstance(edited_action.get("type"), str):
            message = "The edited action must be an object with a type."
            raise InvalidDecision(message, errors={"edited_action": [message]})
        if edited_action.get("type") != (item.action or {}).get("type"):
            message = "An edit may change the action's parameters, not its type."
            raise InvalidDecision(message, errors={"edited_action": [message]})
        try:
            # Refused now rather than approved and then never executable.
            executor_for(edited_action).validate(edited_action)
        except InvalidAction as exc:
            message = f"The edited action cannot be executed: {exc}"
            raise InvalidDecision(message, errors={"edited_action": [message]}) from exc
    changed_output = edited_output is not None and edited_output != item.output
    changed_action = edited_action is not None and edited_action != item.action
    if not (changed_output or changed_action):
        message = "The edited version is the same as the original; approve it instead."
        raise InvalidDecision(message, errors={"edited_output": [message]})


def _finish_approval(item: ReviewItem, decision: Decision, earlier: list[Decision], now: datetime) -> None:
    """The last required approval: the version on the table becomes final."""
    edit = next((d for d in [*earlier, decision] if d.action == DecisionAction.EDIT), None)
    if edit is None:
        approve_as_is(item, ItemStatus.APPROVED, now)
    else:
        approve_as_is(item, ItemStatus.EDITED, now)
        if edit.edited_output is not None:
            item.final_output = edit.edited_output
        if edit.edited_action is not None:
            item.final_action = edit.edited_action
    clear_claim(item)


def _escalation_target(queue: Queue, escalate_to: Queue | str | None) -> Queue:
    if isinstance(escalate_to, str) and escalate_to:
        target = Queue.objects.filter(slug=escalate_to).first()
        if target is None:
            raise InvalidDecision(
                f"No queue {escalate_to!r}.", errors={"escalate_to": [f"No queue {escalate_to!r}."]}
            )
    else:
        target = escalate_to or queue.escalation_queue
    if target is None:
        message = "This queue has no escalation queue; name one in escalate_to."
        raise InvalidDecision(message, errors={"escalate_to": [message]})
    if target.pk == queue.pk:
        message = "Escalate to another queue than the current one."
        raise InvalidDecision(message, errors={"escalate_to": [message]})
    return target


def _seconds_spent(item: ReviewItem, user, now: datetime) -> int | None:
    if item.claimed_by_id == user.pk and item.claimed_at:
        return max(0, int((now - item.claimed_at).total_seconds()))
    return None
