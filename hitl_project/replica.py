"""The optional read replica (`DATABASE_REPLICA_URL`): the metrics and audit reads, nothing else.

Reads go to the `replica` alias only inside `reading_from_replica()` (a context manager
and decorator), only when that alias is configured, and only while the default
connection is outside a transaction (a transaction must see its own writes, which the
replica has not got). Everything else reads the default database, and every write goes
there, inside the block too: the replica is a copy, never written, never migrated.

A replica lags behind. So only reads that show figures or history take it: the metrics
API, `GET /metrics`, the metrics dashboard, the audit log page, the audit export and the
rows of a feedback export (which names the alias itself, once the replica has caught up:
metrics.exports). Who may see them (permissions, readable queues) is decided
on the default database, and so is every read that decides a write (claims, decisions,
locks, sweeps, snapshots).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"
T = TypeVar("T")

_reading = ContextVar("hitl_reading_from_replica", default=False)


def replica_configured() -> bool:
    return REPLICA in connections.settings


def replica_usable() -> bool:
    """Whether a read may go to the replica now: it is configured, and the default
    connection is outside a transaction (which must see its own writes)."""
    return replica_configured() and not connections[DEFAULT_DB_ALIAS].in_atomic_block


@contextlib.contextmanager
def reading_from_replica() -> Iterator[None]:
    """Reads meanwhile go to the replica, when there is one (see `read_alias`). Writes
    still go to the default database, but what a write reads first (simple-history
    reads an object's many-to-many rows to record them) would come from the replica:
    keep writes out of the block."""
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)


def read_alias() -> str:
    """Where a read goes now: the replica inside `reading_from_replica()`, when it is
    configured and the default connection is not in a transaction; else the default."""
    return REPLICA if _reading.get() and replica_usable() else DEFAULT_DB_ALIAS


def streamed_from_replica(items: Iterable[T]) -> Iterator[T]:
    """`items`, each one read from the replica. For streamed responses: their content is
    read after the view returned, a piece at a time. The flag is set around each step
    only, never across a `yield`, so it cannot leak into the server's code between
    pieces, or into the next request when a client goes away mid-stream."""
    iterator = iter(items)
    try:
        while True:
            with reading_from_replica():
                try:
                    item = next(iterator)
                except StopIteration:
                    return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # a client gone mid-stream: let the reads finish now


class ReplicaRouter:
    """DATABASE_ROUTERS, when DATABASE_REPLICA_URL is set."""

    def db_for_read(self, model, **hints) -> str:
        return read_alias()

    def db_for_write(self, model, **hints) -> str:
        # Even for an instance read from the replica: the replica is never written.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the same data on both

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS
