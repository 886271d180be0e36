"""Reading the audit trail: what each history table is about, who acted, what changed.

Every audited model has a history table (simple-history) whose rows carry the
actor (`reviews.history`). This module knows, for each of them, which item and
queue a row belongs to (for the filters and the item timeline), and turns a row
and the one before it into an event: `created`, `changed` or `deleted`, with the
fields that changed as `{field: [old, new]}`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache

from django.apps import apps
from django.db import models

from reviews.models import ActorKind, AuditedHistory

EVENT_TYPES = {"+": "created", "~": "changed", "-": "deleted"}
HISTORY_COLUMNS = frozenset(
    {
        "history_id",
        "history_date",
        "history_type",
        "history_user_id",
        "history_change_reason",
        "history_actor",
        "history_actor_kind",
        "history_relation_id",
    }
)


@dataclass(frozen=True)
class HistorySource:
    """One audited model and its history table."""

    model: type[models.Model]  # the audited model
    history: type[models.Model]  # its history table
    item_path: str | None  # the history column naming the item, if any
    queue_path: str | None  # the history column naming the queue, if any

    @property
    def label(self) -> str:
        """The model's name in events and filters, e.g. `reviews.reviewitem`."""
        return self.model._meta.label_lower

    @property
    def verbose_name(self) -> str:
        return str(self.model._meta.verbose_name)

    def tracked_fields(self) -> list[models.Field]:
        return [f for f in self.history._meta.concrete_fields if f.attname not in HISTORY_COLUMNS]


# For models whose rows belong to an item or a queue: the history column saying which.
ITEM_PATHS = {
    "reviews.reviewitem": "id",
    "reviews.decision": "item_id",
    "reviews.incident": "item_id",
    "reviews.outboxmessage": "item_id",
}
QUEUE_PATHS = {
    "reviews.reviewitem": "queue_id",
    "reviews.decision": "queue_id",
    "reviews.queue": "id",
    "reviews.backlogitem": "queue_id",
    "policies.gaterule": "queue_id",
}


@cache
def history_sources() -> tuple[HistorySource, ...]:
    """Every audited model, in a stable order (by label)."""
    sources = []
    for history in apps.get_models():
        if not issubclass(history, AuditedHistory):
            continue
        model = history.instance_type
        label = model._meta.label_lower
        sources.append(HistorySource(model, history, ITEM_PATHS.get(label), QUEUE_PATHS.get(label)))
    return tuple(sorted(sources, key=lambda s: s.label))


def source_for(label: str) -> HistorySource | None:
    return next((s for s in history_sources() if s.label == label), None)


def plain(value):
    """A history value as JSON can carry it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


def event_type(row) -> str:
    return EVENT_TYPES.get(row.history_type, row.history_type)


def actor(row) -> dict:
    """`{"kind": "user" | "integration" | "system", "name": ...}` as the row recorded it."""
    return {"kind": row.history_actor_kind or ActorKind.SYSTEM, "name": row.history_actor or "unattributed"}


def changes(source: HistorySource, row, previous=None) -> dict[str, list]:
    """`{field: [old, new]}`: every non-empty field of a creation, the fields a change
    changed (against the row before it of the same object), nothing for a deletion."""
    kind = event_type(row)
    if kind == "deleted":
        return {}
    result = {}
    for field in source.tracked_fields():
        new = getattr(row, field.attname)
        old = getattr(previous, field.attname) if previous is not None else None
        if kind == "created" and new in (None, "", [], {}):
            continue
        if previous is None or old != new:
            result[field.name] = [plain(old), plain(new)]
    return result
