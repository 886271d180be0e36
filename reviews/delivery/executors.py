"""Executors carry out approved actions, one registered per `action.type`.

The built-in `webhook` executor, the default for every type, posts the final
action to the integration's `action_url`, signed like every webhook and with
`Idempotency-Key: <item id>`, so a receiver that honours the key applies it
exactly once however often it is delivered. Projects add their own with
`register("payment.refund", MyExecutor())`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from reviews.models import Integration, OutboxMessage, ReviewItem
from reviews.webhooks.http import post_signed


class InvalidAction(ValueError):
    """The final action cannot be executed as it stands."""


@dataclass(frozen=True)
class ExecutionResult:
    ok: bool
    status_code: int | None
    duration_ms: int
    error: str = ""


class Executor:
    """Validate a final action, then carry it out; `execute` runs once per attempt."""

    def validate(self, action: Any) -> None:
        if not isinstance(action, dict) or not isinstance(action.get("type"), str) or not action["type"]:
            raise InvalidAction("The action must be an object with a type.")
        if not isinstance(action.get("params", {}), dict):
            raise InvalidAction("The action's params must be an object.")

    def execute(self, *, item: ReviewItem, message: OutboxMessage) -> ExecutionResult:
        raise NotImplementedError


def post_message(message: OutboxMessage, url: str, extra_headers: dict | None = None) -> ExecutionResult:
    """POST an outbox message to `url`, signed with the integration's secrets (both of
    them during a rotation), with the message's id as `webhook-id`."""
    integration = message.item.integration
    result = post_signed(
        url,
        payload=message.payload,
        secrets=[integration.webhook_secret, integration.previous_webhook_secret],
        msg_id=message.msg_id,
        timeout=settings.HITL_DELIVERY_TIMEOUT_SECONDS,
        extra_headers=extra_headers,
    )
    return ExecutionResult(result.ok, result.status_code, result.duration_ms, result.error)


class WebhookExecutor(Executor):
    def execute(self, *, item: ReviewItem, message: OutboxMessage) -> ExecutionResult:
        if not item.integration.action_url:
            return ExecutionResult(False, None, 0, "The integration has no action_url to send the action to.")
        return post_message(message, item.integration.action_url, {"Idempotency-Key": str(item.pk)})


class RecordingExecutor(Executor):
    """Carries out nothing: the approved action is recorded as executed. For
    integrations set to record actions only (the demo, trials of a new agent)."""

    def execute(self, *, item: ReviewItem, message: OutboxMessage) -> ExecutionResult:
        return ExecutionResult(True, None, 0)


DEFAULT_EXECUTOR = WebhookExecutor()
RECORDING_EXECUTOR = RecordingExecutor()
_registry: dict[str, Executor] = {}


def register(action_type: str, executor: Executor) -> None:
    _registry[action_type] = executor


def executor_for(action: Any, integration: Integration | None = None) -> Executor:
    """The executor for an action: nothing is ever called for a record-only
    integration; otherwise the one registered for the action's type, or the webhook."""
    if integration is not None and integration.action_delivery == Integration.ActionDelivery.RECORD:
        return RECORDING_EXECUTOR
    action_type = action.get("type") if isinstance(action, dict) else None
    return _registry.get(action_type, DEFAULT_EXECUTOR)
