"""Every write that changes a review item's state.

The admin, the REST API, management commands and Celery tasks all call these
functions; nothing else assigns `ReviewItem.status`. Each function is one
transaction: the item row is locked (`select_for_update`) and its state is
checked again after the lock, so two requests racing on one item serialise and
the loser sees the winner's result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.text import slugify

from policies.engine import GateDecision, evaluate
from reviews.delivery import outbox
from reviews.delivery.executors import InvalidAction, executor_for
from reviews.exceptions import (
    AlreadyDecided,
    ClaimedByAnother,
    Conflict,
    IdempotencyMismatch,
    InvalidDecision,
    InvalidInput,
    NotAllowed,
    NotClaimed,
)
from reviews.models import (
    PRIORITY_BY_RISK,
    ApiKey,
    BacklogItem,
    Decision,
    DecisionAction,
    ExecutionStatus,
    Incident,
    Integration,
    ItemKind,
    ItemStatus,
    Queue,
    ReasonCode,
    ReviewItem,
    RiskLevel,
    new_webhook_secret,
)

logger = logging.getLogger(__name__)

# The fields a state change may write; the submitted payload is never rewritten.
STATE_FIELDS = [
    "status",
    "queue",
    "review_round",
    "required_approvals",
    "entered_queue_at",
    "at_risk_at",
    "at_risk_flagged_at",
    "due_at",
    "claimed_by",
    "claimed_at",
    "claim_expires_at",
    "final_output",
    "final_action",
    "decided_at",
    "execution_status",
    "updated_at",
]


# --- Integrations -----------------------------------------------------------------------


def issue_api_key(*, integration: Integration, name: str = "default") -> str:
    """Create a key for the integration and return it; only its hash is stored."""
    for _ in range(5):
        prefix = secrets.token_hex(ApiKey.PREFIX_LENGTH // 2)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    key = f"hitl_{prefix}.{secrets.token_urlsafe(32)}"
    ApiKey.objects.create(integration=integration, name=name, prefix=prefix, hashed_key=ApiKey.hash_key(key))
    return key


def revoke_api_key(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key for good; a revoked key is never restored (issue another instead)."""
    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key._change_reason = "revoked"
            api_key.save(update_fields=["revoked_at"])
    return api_key


@transaction.atomic
def create_integration(
    *,
    name: str,
    slug: str = "",
    callback_url: str = "",
    action_url: str = "",
    action_delivery: str = Integration.ActionDelivery.WEBHOOK,
) -> tuple[Integration, str]:
    """A new integration with its first API key (returned once, stored hashed)."""
    slug = slug or slugify(name)
    if not slug:
        raise InvalidDecision(
            "The name needs at least one letter or digit.", errors={"name": ["Invalid name."]}
        )
    if Integration.objects.filter(slug=slug).exists():
        raise Conflict(f"An integration with the slug {slug!r} already exists.")
    integration = Integration(
        name=name,
        slug=slug,
        callback_url=callback_url,
        action_url=action_url,
        action_delivery=action_delivery,
    )
    try:
        integration.full_clean()
    except ValidationError as exc:
        errors = exc.message_dict
        raise InvalidInput(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), errors=errors
        ) from exc
    integration.save()
    return integration, issue_api_key(integration=integration)


def rotate_webhook_secret(*, integration: Integration) -> str:
    """A new secret signs alongside the current one until the rotation is finished."""
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration.pk)
        integration.previous_webhook_secret = integration.webhook_secret
        integration.webhook_secret = new_webhook_secret()
        integration._change_reason = "webhook secret rotation started"
        integration.save(update_fields=["webhook_secret", "previous_webhook_secret"])
    return integration.webhook_secret


def finish_secret_rotation(*, integration: Integration) -> None:
    integration.previous_webhook_secret = ""
    integration._change_reason = "webhook secret rotation finished"
    integration.save(update_fields=["previous_webhook_secret"])


# --- Submission ---------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitResult:
    item: ReviewItem
    created: bool


def request_fingerprint(payload: dict[str, Any]) -> str:
    """A stable hash of a submission body, to tell a replay from a different request."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _enter_queue(item: ReviewItem, queue: Queue, now: datetime) -> None:
    """Place an item at the back of a queue's SLA clock (on submission and on escalation).
    The item keeps the strictest approval requirement it has met: moving it to a
    one-approval queue never removes the second pair of eyes."""
    item.queue = queue
    item.required_approvals = max(item.required_approvals or 1, queue.required_approvals)
    item.status = ItemStatus.PENDING
    item.entered_queue_at = now
    item.due_at = now + queue.sla
    item.at_risk_at = now + queue.sla / 2
    item.at_risk_flagged_at = None
    item.claimed_by = None
    item.claimed_at = None
    item.claim_expires_at = None


def _approve_as_is(item: ReviewItem, status: str, now: datetime) -> None:
    item.status = status
    item.final_output = item.output
    item.final_action = item.action
    item.decided_at = now
    # Spot-check copies are reviewed after the fact: deciding them never executes.
    needs_execution = item.kind == ItemKind.ACTION and not item.is_spot_check
    item.execution_status = ExecutionStatus.PENDING if needs_execution else ExecutionStatus.NOT_REQUIRED


def submit_item(
    *,
    integration: Integration,
    payload: dict[str, Any],
    idempotency_key: str = "",
    callback_url: str = "",
) -> SubmitResult:
    """Store a submission and apply the gate to it.

    1. The gate engine decides: blocked, auto-approved, held in a queue, or
       auto-approved with a spot-check copy in a queue.
    2. The item is inserted straight away. A known `Idempotency-Key` hits the
       unique (integration, idempotency_key) constraint: the insert is rolled
       back and the first item returned (`created=False`), or
       `IdempotencyMismatch` raised when the body differs. Replays and racing
       duplicates take the same path, and first submissions pay no lookup.
    """
    # The callback URL is part of the request: the same key with another URL is another request.
    fingerprint = request_fingerprint({**payload, "callback_url": callback_url}) if idempotency_key else ""
    item_id = uuid.uuid4()
    gate = evaluate(payload, item_id=item_id, integration_slug=integration.slug)
    try:
        with transaction.atomic():
            item = _create_item(
                item_id=item_id,
                integration=integration,
                payload=payload,
                gate=gate,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                callback_url=callback_url or integration.callback_url,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _replay(integration, idempotency_key, fingerprint)
        if existing is None:
            raise
        return SubmitResult(existing, created=False)
    return SubmitResult(item, created=True)


def _replay(integration: Integration, idempotency_key: str, fingerprint: str) -> ReviewItem | None:
    item = ReviewItem.objects.filter(integration=integration, idempotency_key=idempotency_key).first()
    if item is not None and item.request_hash != fingerprint:
        raise IdempotencyMismatch(
            "This Idempotency-Key was already used with a different request body.",
        )
    return item


def _create_item(
    *,
    item_id: uuid.UUID,
    integration: Integration,
    payload: dict[str, Any],
    gate: GateDecision,
    idempotency_key: str,
    fingerprint: str,
    callback_url: str,
) -> ReviewItem:
    now = timezone.now()
    risk = gate.risk_level or ""
    item = ReviewItem(
        id=item_id,
        integration=integration,
        external_id=payload.get("external_id") or "",
        kind=payload["kind"],
        input=payload.get("input") or {},
        output=payload.get("output"),
        action=payload.get("action"),
        context=payload.get("context") or {},
        signals=payload.get("signals") or {},
        metadata=payload.get("metadata") or {},
        callback_url=callback_url,
        matched_rules=list(gate.matched_rules),
        shadow_matches=list(gate.shadow_matches),
        risk_level=risk,
        priority=PRIORITY_BY_RISK.get(risk, PRIORITY_BY_RISK[RiskLevel.MEDIUM]),
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        created_at=now,
    )
    if gate.status == ItemStatus.PENDING:
        _enter_queue(item, gate.queue or Queue.objects.get(pk=gate.queue_id), now)
    elif gate.status == ItemStatus.BLOCKED:
        item.status = ItemStatus.BLOCKED
        item.decided_at = now
    else:
        _approve_as_is(item, ItemStatus.AUTO_APPROVED, now)
    item._change_reason = f"submitted: {gate.outcome}"
    item.save(force_insert=True)
    if item.is_final:
        outbox.enqueue_consequences(item)

    if gate.spot_check_queue_id is not None:
        copy = ReviewItem(
            integration=integration,
            external_id=item.external_id,
            kind=item.kind,
            input=item.input,
            output=item.output,
            action=item.action,
            context=item.context,
            signals=item.signals,
            metadata=item.metadata,
            matched_rules=item.matched_rules,
            shadow_matches=item.shadow_matches,
            risk_level=risk,
            priority=item.priority,
            spot_check_of=item,
            created_at=now,
        )
        _enter_queue(copy, gate.spot_check_queue or Queue.objects.get(pk=gate.spot_check_queue_id), now)
        copy._change_reason = "spot check of an auto-approved item"
        copy.save(force_insert=True)
    return item


# --- Claims ------------------------------------------------------------------------------


def _claim_duration() -> timedelta:
    return timedelta(minutes=settings.HITL_CLAIM_MINUTES)


def _require_reviewer(user, queue: Queue | None) -> None:
    if queue is None or not Queue.objects.reviewable_by(user).filter(pk=queue.pk).exists():
        raise NotAllowed("You are not a reviewer of this queue.")


def _take_claim(item: ReviewItem, user, now: datetime, reason: str) -> None:
    item.status = ItemStatus.IN_REVIEW
    item.claimed_by = user
    item.claimed_at = now
    item.claim_expires_at = now + _claim_duration()
    item._change_reason = reason
    item.save(update_fields=STATE_FIELDS)


def _lock(item: ReviewItem) -> ReviewItem:
    """Lock the item's row and return it as it is now (the caller's copy may be stale)."""
    return ReviewItem.objects.select_for_update(of=("self",)).select_related("queue").get(pk=item.pk)


def claim_next(*, queue: Queue, user) -> ReviewItem | None:
    """Claim the next item of a queue for `user`, or return None when none is free.

    1. A reviewer who already holds a live claim in the queue gets that item back
       (with a fresh lease) instead of a second one.
    2. Otherwise the first claimable item in review order (priority, due_at,
       age) that the user has not already approved in this round (four-eyes).
    3. PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent reviewers
       take different rows without waiting. SQLite has no row locks: its
       writers are serialised (IMMEDIATE transactions), and the claim is a
       conditional UPDATE that only succeeds while the item is still free.
    """
    _require_reviewer(user, queue)
    now = timezone.now()
    with transaction.atomic():
        held = (
            ReviewItem.objects.select_for_update(of=("self",))
            .filter(queue=queue, status=ItemStatus.IN_REVIEW, claimed_by=user, claim_expires_at__gt=now)
            .order_by("claimed_at")
            .first()
        )
        if held is not None:
            _take_claim(held, user, now, "claim renewed")
            return held

        already_approved = Decision.objects.filter(
            item=OuterRef("pk"),
            round=OuterRef("review_round"),
            reviewer=user,
            action__in=[DecisionAction.APPROVE, DecisionAction.EDIT],
        )
        candidates = (
            ReviewItem.objects.claimable(now)
            .filter(queue=queue)
            .exclude(Exists(already_approved))
            .in_review_order()
        )
        if connection.features.has_select_for_update_skip_locked:
            item = candidates.select_for_update(skip_locked=True, of=("self",)).first()
            if item is not None:
                _take_claim(item, user, now, "claimed")
            return item

        for item_id in candidates.values_list("pk", flat=True)[:20]:
            taken = (
                ReviewItem.objects.claimable(now)
                .filter(pk=item_id)
                .update(
                    status=ItemStatus.IN_REVIEW,
                    claimed_by=user,
                    claimed_at=now,
                    claim_expires_at=now + _claim_duration(),
                )
            )
            if taken:
                item = ReviewItem.objects.get(pk=item_id)
                _take_claim(item, user, now, "claimed")  # the same values again, now with history
                return item
        return None


def claim(*, item: ReviewItem, user) -> ReviewItem:
    """Claim one specific item (opening it from the changelist)."""
    now = timezone.now()
    with transaction.atomic():
        item = _lock(item)
        _require_reviewer(user, item.queue)
        _ensure_open(item)
        if item.is_claimed_by_other(user, now):
            raise ClaimedByAnother(f"{item.claimed_by} is reviewing this item.")
        _ensure_distinct_approver(_round_approvals(item), user)
        _take_claim(item, user, now, "claimed")
    return item


def release(*, item: ReviewItem, user) -> ReviewItem:
    """Give a claim back: the item is pending again for anyone."""
    now = timezone.now()
    with transaction.atomic():
        item = _lock(item)
        _require_reviewer(user, item.queue)
        _ensure_open(item)
        if not item.claim_is_active(now):
            raise NotClaimed("This item is not claimed.")
        if item.claimed_by_id != user.pk and not user.is_superuser:
            raise ClaimedByAnother(f"{item.claimed_by} holds the claim on this item.")
        _free(item, "released")
    return item


def _free(item: ReviewItem, reason: str) -> None:
    item.status = ItemStatus.PENDING
    _clear_claim(item)
    item._change_reason = reason
    item.save(update_fields=STATE_FIELDS)


def expire_claims(*, now: datetime | None = None) -> int:
    """Return items whose lease ran out to their queue. Claimability does not wait
    for this sweep (an expired claim is claimable at once); it tidies the status."""
    now = now or timezone.now()
    count = 0
    ids = list(
        ReviewItem.objects.filter(status=ItemStatus.IN_REVIEW, claim_expires_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    for item_id in ids:
        with transaction.atomic():
            item = (
                ReviewItem.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=item_id)
                .first()
            )
            if item and item.status == ItemStatus.IN_REVIEW and item.claim_expires_at <= now:
                _free(item, "claim expired")
                count += 1
    return count


# --- Decisions ---------------------------------------------------------------------------


def _ensure_open(item: ReviewItem) -> None:
    if not item.is_open:
        raise AlreadyDecided(f"This item is already {item.get_status_display().lower()}.")


def _round_approvals(item: ReviewItem) -> list[Decision]:
    return list(
        item.decisions.filter(
            round=item.review_round, action__in=[DecisionAction.APPROVE, DecisionAction.EDIT]
        ).order_by("step")
    )


def _ensure_distinct_approver(approvals: list[Decision], user) -> None:
    if any(d.reviewer_id == user.pk for d in approvals):
        raise NotAllowed("Four-eyes queue: the second approval must come from another reviewer.")


def _approvals_suffice(item: ReviewItem, approver_ids: list[int]) -> bool:
    """Enough different reviewers approved this round, and not only people who
    escalated the item: whoever moved it to another queue cannot be the one who
    then waves it through there alone."""
    if len(approver_ids) < item.approvals_needed:
        return False
    escalated_by = set(
        item.decisions.filter(action=DecisionAction.ESCALATE).values_list("reviewer_id", flat=True)
    )
    return any(approver not in escalated_by for approver in approver_ids)


def _reason_codes(codes: list[str], action: str) -> list[ReasonCode]:
    wanted = list(dict.fromkeys(codes or []))
    if any(not isinstance(code, str) for code in wanted):
        raise InvalidDecision(
            "Reason codes are strings.", errors={"reason_codes": ["Reason codes are strings."]}
        )
    found = {rc.code: rc for rc in ReasonCode.objects.filter(code__in=wanted, active=True)}
    unknown = [code for code in wanted if code not in found]
    if unknown:
        message = f"Unknown or inactive reason code: {', '.join(unknown)}."
        raise InvalidDecision(message, errors={"reason_codes": [message]})
    wrong = [code for code in wanted if not found[code].applies(action)]
    if wrong:
        message = f"Not a reason code for {action}: {', '.join(wrong)}."
        raise InvalidDecision(message, errors={"reason_codes": [message]})
    if action in (DecisionAction.REJECT, DecisionAction.EDIT) and not wanted:
        message = f"Give at least one reason code for {action}."
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

    1. Lock the item; the user must review its queue; it must still be open
       and not claimed by someone else (an unclaimed item is claimed implicitly).
    2. Validate: justification, reason codes for the action, checklist on
       approve and edit, an edit that differs, a distinct second approver.
    3. Write the decision (append-only) and the item's new state:
       approve/edit → approved/edited once enough approvals exist, else pending
       for the second reviewer; reject → rejected (final in any round);
       escalate → pending in the target queue, a new round, a fresh deadline.
    4. Feedback in the same transaction: backlog items for reason codes that
       ask for one, and an incident when a spot check is rejected.
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
        item = _lock(item)
        queue = item.queue
        _require_reviewer(user, queue)
        _ensure_open(item)
        if item.is_claimed_by_other(user, now):
            raise ClaimedByAnother(f"{item.claimed_by} holds the claim on this item.")
        if bulk and (action != DecisionAction.APPROVE or not item.may_be_bulk_approved):
            raise NotAllowed("This item cannot be bulk approved: open it and decide it on its own.")

        codes = _reason_codes(reason_codes or [], action)
        approvals = _round_approvals(item)
        is_approval = action in (DecisionAction.APPROVE, DecisionAction.EDIT)
        if is_approval:
            _ensure_distinct_approver(approvals, user)
        if action == DecisionAction.EDIT and approvals:
            raise InvalidDecision(
                "The second reviewer approves or rejects the edited version; "
                "to change it, reject it or escalate."
            )
        answers = _check_checklist(queue, checklist) if is_approval else list(checklist or [])
        if action == DecisionAction.EDIT:
            _check_edit(item, edited_output, edited_action)
        target = _escalation_target(queue, escalate_to) if action == DecisionAction.ESCALATE else None

        step = item.decisions.filter(round=item.review_round).count() + 1
        is_final = action == DecisionAction.REJECT or (
            is_approval and _approvals_suffice(item, [*(d.reviewer_id for d in approvals), user.pk])
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
            step=step,
            is_final=is_final,
            seconds_spent=_seconds_spent(item, user, now),
            created_at=now,
        )
        decision.reason_codes.set(codes)

        if action == DecisionAction.ESCALATE:
            _enter_queue(item, target, now)
            item.review_round += 1
            item._change_reason = f"escalated to {target.slug}"
        elif action == DecisionAction.REJECT:
            item.status = ItemStatus.REJECTED
            item.decided_at = now
            _clear_claim(item)
            item._change_reason = "rejected"
        elif is_final:
            _finish_approval(item, decision, approvals, now)
        else:
            item.status = ItemStatus.PENDING  # waiting for a second, different reviewer
            _clear_claim(item)
            item._change_reason = "first approval"
        item.save(update_fields=STATE_FIELDS)

        if is_final:
            outbox.enqueue_consequences(item)
        if action == DecisionAction.REJECT:
            logger.info("Item %s rejected by %s: %s", item.pk, user, justification)
        _raise_backlog_items(decision, codes)
        if action == DecisionAction.REJECT and item.is_spot_check:
            _incident_from_spot_check(item, decision)
    return decision


def _clear_claim(item: ReviewItem) -> None:
    item.claimed_by = None
    item.claimed_at = None
    item.claim_expires_at = None


def _finish_approval(item: ReviewItem, decision: Decision, earlier: list[Decision], now: datetime) -> None:
    """The last required approval: the version on the table becomes final."""
    edit = next((d for d in [*earlier, decision] if d.action == DecisionAction.EDIT), None)
    if edit is None:
        _approve_as_is(item, ItemStatus.APPROVED, now)
    else:
        _approve_as_is(item, ItemStatus.EDITED, now)
        if edit.edited_output is not None:
            item.final_output = edit.edited_output
        if edit.edited_action is not None:
            item.final_action = edit.edited_action
    _clear_claim(item)
    item._change_reason = item.status


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


def _raise_backlog_items(decision: Decision, codes: list[ReasonCode]) -> None:
    if decision.action not in (DecisionAction.REJECT, DecisionAction.EDIT):
        return
    for code in codes:
        if not code.creates_backlog_item:
            continue
        backlog = (
            BacklogItem.objects.select_for_update()
            .filter(
                reason_code=code,
                queue=decision.queue,
                status__in=[BacklogItem.Status.OPEN, BacklogItem.Status.IN_PROGRESS],
            )
            .first()
        )
        if backlog is None:
            backlog = BacklogItem.objects.create(
                title=f"{code.label} ({decision.queue.name})", reason_code=code, queue=decision.queue
            )
        else:
            backlog._change_reason = f"new {decision.action} with {code.code}"
            backlog.save(update_fields=["updated_at"])
        backlog.decisions.add(decision)


def _incident_from_spot_check(item: ReviewItem, decision: Decision) -> None:
    Incident.objects.create(
        item=item.spot_check_of,
        severity=Incident.Severity.MEDIUM,
        description=f"Slipped past the gate (spot check rejected): {decision.justification}",
        source=Incident.Source.SPOT_CHECK,
        reported_by=decision.reviewer,
    )


# --- Cancellation and timeouts ---------------------------------------------------------------


def cancel(*, item: ReviewItem, integration: Integration) -> ReviewItem:
    """Withdraw an item that no reviewer has decided yet."""
    with transaction.atomic():
        item = _lock(item)
        if item.integration_id != integration.pk:
            raise NotAllowed("This item belongs to another integration.")
        if not item.is_open:
            raise AlreadyDecided(f"This item is already {item.get_status_display().lower()}.")
        item.status = ItemStatus.CANCELLED
        item.decided_at = timezone.now()
        _clear_claim(item)
        item._change_reason = "cancelled by the integration"
        item.save(update_fields=STATE_FIELDS)
        outbox.enqueue_consequences(item)
    return item


def apply_timeout(*, item: ReviewItem, now: datetime | None = None) -> ReviewItem:
    """Past its deadline an item follows its queue's timeout outcome: escalate
    with a fresh deadline, or reject as expired. Never an approval."""
    now = now or timezone.now()
    with transaction.atomic():
        item = _lock(item)
        if not item.is_open or item.due_at is None or item.due_at > now:
            return item
        queue = item.queue
        target = queue.escalation_queue
        if (
            queue.timeout_outcome == Queue.TimeoutOutcome.ESCALATE
            and target is not None
            and target.pk != queue.pk
        ):
            _enter_queue(item, target, now)
            item.review_round += 1
            item._change_reason = f"SLA timeout: escalated to {target.slug}"
        else:
            item.status = ItemStatus.EXPIRED
            item.decided_at = now
            _clear_claim(item)
            item._change_reason = "SLA timeout: expired"
        item.save(update_fields=STATE_FIELDS)
        if item.is_final:
            outbox.enqueue_consequences(item)
    return item


def flag_at_risk(*, now: datetime | None = None) -> int:
    """Flag open items that have used half their SLA (once per pass through a queue)."""
    now = now or timezone.now()
    count = 0
    for item_id in (
        ReviewItem.objects.at_risk(now).filter(at_risk_flagged_at__isnull=True).values_list("pk", flat=True)
    ):
        with transaction.atomic():
            item = _lock(ReviewItem(pk=item_id))
            if item.is_at_risk(now) and item.at_risk_flagged_at is None:
                item.at_risk_flagged_at = now
                item._change_reason = "at risk: half the SLA has passed"
                item.save(update_fields=["at_risk_flagged_at", "updated_at"])
                count += 1
    return count


def apply_sla_timeouts(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    overdue = list(ReviewItem.objects.overdue(now).values_list("pk", flat=True))
    for item_id in overdue:
        apply_timeout(item=ReviewItem(pk=item_id), now=now)
    return len(overdue)


def report_incident(
    *,
    item: ReviewItem,
    severity: str,
    description: str,
    user=None,
    integration: Integration | None = None,
) -> Incident:
    """Record harm that got past the gate or a reviewer, linked to the decision that let it through."""
    description = (description or "").strip()
    if severity not in Incident.Severity.values:
        raise InvalidInput(
            f"Unknown severity {severity!r}.",
            errors={"severity": [f"Choose one of {', '.join(Incident.Severity.values)}."]},
        )
    if not description:
        raise InvalidInput("Describe the incident.", errors={"description": ["This field is required."]})
    final = item.decisions.filter(is_final=True).first()
    let_through = final if final and final.action != DecisionAction.REJECT else None
    return Incident.objects.create(
        item=item,
        severity=severity,
        description=description,
        source=Incident.Source.INTEGRATION if integration else Incident.Source.REVIEWER,
        decision=let_through,
        reported_by=user,
        reported_by_integration=integration,
    )
