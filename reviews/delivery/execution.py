"""What the delivery worker records about an approved action's execution: the
item's `execution_status`, and what was executed (kept apart from the proposal and
the approval). Only the worker writes these; the services that enqueue an action
never do."""

from __future__ import annotations

from django.utils import timezone

from reviews.models import ExecutionStatus, ReviewItem


def _set_execution(item: ReviewItem, status: str, reason: str) -> None:
    item.execution_status = status
    item._change_reason = reason
    item.save(update_fields=["execution_status", "executed_action", "executed_at", "updated_at"])


def start_execution(*, item: ReviewItem) -> None:
    _set_execution(item, ExecutionStatus.RUNNING, "execution attempt started")


def finish_execution(*, item: ReviewItem, executed_action: dict) -> None:
    """The receiver acknowledged the action: record what was executed."""
    item.executed_action = executed_action
    item.executed_at = timezone.now()
    _set_execution(item, ExecutionStatus.SUCCEEDED, "executed")


def fail_execution(*, item: ReviewItem, reason: str) -> None:
    _set_execution(item, ExecutionStatus.FAILED, f"execution failed: {reason}"[:100])


def requeue_execution(*, item: ReviewItem) -> None:
    _set_execution(item, ExecutionStatus.PENDING, "execution retried")
