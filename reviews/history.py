"""Who made each change: the actor on every history row, written as the row is created.

Every history row names its actor twice over: `history_actor_kind` (a person, an
integration or the system) and `history_actor` (the username, the integration's
slug, or the name of the task or command). simple-history fills `history_user` for
people only; the rest comes from here:

- a person: `history_user`, from the request (admin, session or token API calls);
- an integration: set on the request by API-key authentication (`act_for_integration`);
- the system: a Celery task or a management command wraps its work in
  `acting_as_system("sla-sweep")`, which wins over any request (a task run eagerly
  inside a reviewer's request is still the task's doing, not the reviewer's).

The same context may carry a change reason, used where the writer gave none.
Rows that the hash chain covers are sealed as they are written (`reviews.chain`).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simple_history.models import HistoricalRecords
from simple_history.signals import post_create_historical_record, pre_create_historical_record

from reviews import chain
from reviews.models import ActorKind, Integration

REQUEST_INTEGRATION_ATTRIBUTE = "hitl_integration"


@dataclass(frozen=True)
class Actor:
    kind: str
    name: str
    reason: str = ""

    def __str__(self) -> str:
        return f"system:{self.name}" if self.kind == ActorKind.SYSTEM else self.name


_system_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
    "hitl_system_actor", default=None
)


@contextlib.contextmanager
def acting_as_system(name: str, reason: str = "") -> Iterator[Actor]:
    """Attribute every write inside the block to `system:<name>` (a task or command)."""
    actor = Actor(ActorKind.SYSTEM, name, reason)
    token = _system_actor.set(actor)
    try:
        yield actor
    finally:
        _system_actor.reset(token)


def act_for_integration(request, integration: Integration) -> None:
    """Mark a request as made by an integration (its API key), for its history rows."""
    django_request = getattr(request, "_request", request)
    setattr(django_request, REQUEST_INTEGRATION_ATTRIBUTE, integration)


def current_actor(history_user=None) -> Actor | None:
    """Who is acting now, as the history rows being written will name them."""
    system = _system_actor.get()
    if system is not None:
        return system
    if history_user is not None:
        return Actor(ActorKind.USER, history_user.get_username())
    request = getattr(HistoricalRecords.context, "request", None)
    integration = getattr(request, REQUEST_INTEGRATION_ATTRIBUTE, None)
    if integration is not None:
        return Actor(ActorKind.INTEGRATION, integration.slug)
    if request is None and Path(sys.argv[0]).name == "manage.py" and len(sys.argv) > 1:
        return Actor(ActorKind.SYSTEM, sys.argv[1])  # a command of Django's or a package's
    return None


def record_actor(sender, history_instance, history_user=None, **kwargs) -> None:
    if not hasattr(history_instance, "history_actor_kind"):
        return
    if history_instance.history_actor_kind:  # set explicitly by the writer
        return
    actor = current_actor(history_user)
    if actor is None:
        history_instance.history_actor_kind = ActorKind.SYSTEM
        history_instance.history_actor = "unattributed"
        return
    if actor.kind == ActorKind.SYSTEM:
        history_instance.history_user = None
    history_instance.history_actor_kind = actor.kind
    history_instance.history_actor = actor.name
    if actor.reason and not history_instance.history_change_reason:
        history_instance.history_change_reason = actor.reason


def seal_row(sender, history_instance, **kwargs) -> None:
    chain.seal_if_chained(history_instance)


def connect() -> None:
    pre_create_historical_record.connect(record_actor, dispatch_uid="reviews.history.record_actor")
    post_create_historical_record.connect(seal_row, dispatch_uid="reviews.history.seal_row")
