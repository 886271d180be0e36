"""Submissions: an integration's item through the gate, and its withdrawal."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from policies.engine import GateDecision, evaluate
from reviews.delivery import outbox
from reviews.exceptions import IdempotencyMismatch, NotAllowed
from reviews.models import PRIORITY_BY_RISK, Integration, ItemStatus, Queue, ReviewItem, RiskLevel
from reviews.services.transitions import approve_as_is, close_item, ensure_open, enter_queue, lock


@dataclass(frozen=True)
class SubmitResult:
    item: ReviewItem
    created: bool


def request_fingerprint(payload: dict[str, Any]) -> str:
    """A stable hash of a submission body, to tell a replay from a different request."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    item = _new_item(
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
        enter_queue(item, gate.queue or Queue.objects.get(pk=gate.queue_id), now)
    elif gate.status == ItemStatus.BLOCKED:
        item.status = ItemStatus.BLOCKED
        item.decided_at = now
    else:
        approve_as_is(item, ItemStatus.AUTO_APPROVED, now)
    item._change_reason = f"submitted: {gate.outcome}"
    item.save(force_insert=True)
    if item.is_final:
        outbox.enqueue_consequences(item)

    if gate.spot_check_queue_id is not None:
        copy = _new_item(
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
        enter_queue(copy, gate.spot_check_queue or Queue.objects.get(pk=gate.spot_check_queue_id), now)
        copy._change_reason = "spot check of an auto-approved item"
        copy.save(force_insert=True)
    return item


def _new_item(**fields) -> ReviewItem:
    """An item about to be inserted. It has no gold answer (those are written for stored
    items): the relation is told so, rather than asking the database when the moves
    consult `item.never_executes`."""
    item = ReviewItem(**fields)
    ReviewItem.gold.related.set_cached_value(item, None)
    return item


def cancel(*, item: ReviewItem, integration: Integration) -> ReviewItem:
    """Withdraw an item that no reviewer has decided yet."""
    with transaction.atomic():
        item = lock(item)
        if item.integration_id != integration.pk:
            raise NotAllowed("This item belongs to another integration.")
        ensure_open(item)
        close_item(item, ItemStatus.CANCELLED, timezone.now(), "cancelled by the integration")
    return item
