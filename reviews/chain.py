"""Tamper evidence: the records that matter most are sealed into hash chains.

Each chain is a sequence of seals (`AuditSeal`). A seal keeps a hash of each field
of one row as it was written, the hash of all of them (`content_hash`), and a hash
over its place in the chain and the previous seal's hash (`entry_hash`), so
changing, removing or inserting any sealed row, or any seal, breaks the chain from
that point on. `verify()` recomputes every chain and names the first broken link.

The chains:
- `decisions`: every reviewer decision (sealed by the decision service);
- `rule-versions`: every version of every gate rule, with its conditions;
- `integration-keys`: every event in the life of an integration and its API keys
  (created, rotated, revoked).

What it proves: that no sealed row was changed, removed or slipped in after it was
sealed, by anyone without the means to rewrite every later seal. What it cannot
prove on its own: someone with write access to the database and this code can
recompute the whole chain. Keeping the chain heads somewhere else (the daily audit
export prints them) closes that gap: a rewritten chain no longer ends where the
copy says it did.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from django.apps import apps
from django.db import models, transaction
from django.utils import timezone

from reviews.models import AuditChainHead, AuditSeal

# Which rows each chain seals, by model label.
CHAINS: dict[str, tuple[str, ...]] = {
    "decisions": ("reviews.Decision",),
    "rule-versions": ("policies.HistoricalGateRule",),
    "integration-keys": ("reviews.HistoricalIntegration", "reviews.HistoricalApiKey"),
}
CHAIN_OF_MODEL = {label: name for name, labels in CHAINS.items() for label in labels}

# Columns that may change without the record changing: the user foreign key of a
# history row is kept beside the actor's name, which is what is sealed.
UNSEALED_COLUMNS = frozenset({"history_user_id"})

GENESIS = "0" * 64
BATCH = 2000


def _encode(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, (date, uuid.UUID, Decimal)):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be sealed")


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_encode)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def sealed_columns(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if f.attname not in UNSEALED_COLUMNS]


def field_hashes(row: models.Model) -> dict[str, str]:
    """A hash per column, so a broken seal can say which field differs."""
    return column_hashes(type(row), {name: getattr(row, name) for name in sealed_columns(type(row))})


def column_hashes(model: type[models.Model], values: dict) -> dict[str, str]:
    """`field_hashes` of a row given as {attname: value}, as the database returns them."""
    return {name: _sha256(f"{name}\x00{canonical(values[name])}") for name in sealed_columns(model)}


def content_hash(fields: dict[str, str]) -> str:
    return _sha256(canonical(fields))


def entry_hash(*, chain: str, seq: int, model: str, object_id: int, content: str, previous: str) -> str:
    return _sha256(f"{chain}|{seq}|{model}|{object_id}|{content}|{previous}")


def seal(row: models.Model) -> AuditSeal:
    """Add `row` to the end of its chain, inside the caller's transaction.

    1. Read the row back, so the seal holds what the database stores (JSON numbers,
       time precision) rather than what the caller had in memory.
    2. Lock the chain's head: seals of one chain are written one at a time, each
       after the one before. The head is locked last in every transaction that
       takes it, after any item lock, so writers never wait on each other in a ring.
    """
    label = row._meta.label
    name = CHAIN_OF_MODEL[label]
    stored = type(row)._default_manager.get(pk=row.pk)
    fields = field_hashes(stored)
    content = content_hash(fields)
    # No savepoint of its own: a seal that fails fails the caller's transaction too.
    with transaction.atomic(savepoint=False):
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(chain=name)
        seq = head.seq + 1
        link = entry_hash(
            chain=name, seq=seq, model=label, object_id=row.pk, content=content, previous=head.entry_hash
        )
        sealed = AuditSeal.objects.create(
            chain=name,
            seq=seq,
            model=label,
            object_id=row.pk,
            fields=fields,
            content_hash=content,
            prev_hash=head.entry_hash,
            entry_hash=link,
        )
        head.seq, head.entry_hash = seq, link
        head.save(update_fields=["seq", "entry_hash"])
    return sealed


def seal_if_chained(row: models.Model) -> None:
    if row._meta.label in CHAIN_OF_MODEL:
        seal(row)


def seal_unsealed(model: type[models.Model]) -> int:
    """Seal the rows of `model` written before its chain existed, oldest first."""
    done = AuditSeal.objects.filter(model=model._meta.label).values("object_id")
    count = 0
    for row in model._default_manager.exclude(pk__in=done).order_by("pk").iterator(chunk_size=BATCH):
        seal(row)
        count += 1
    return count


# --- Verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class BrokenLink:
    chain: str
    model: str
    object_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.model} {self.object_id}" if self.object_id is not None else self.model
        return f"chain {self.chain}: {where}: {self.problem}"


@dataclass
class Verification:
    checked: int = 0
    broken: BrokenLink | None = None
    heads: dict[str, dict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.broken is None


def _check_batch(name: str, seals: list[AuditSeal]) -> BrokenLink | None:
    by_model: dict[str, list[int]] = {}
    for s in seals:
        by_model.setdefault(s.model, []).append(s.object_id)
    rows = {
        label: apps.get_model(label)._default_manager.in_bulk(ids, field_name="pk")
        for label, ids in by_model.items()
    }
    for s in seals:
        row = rows[s.model].get(s.object_id)
        if row is None:
            return BrokenLink(name, s.model, s.object_id, "the sealed row is gone")
        # Only the columns the seal covers: a column added later is not part of old seals.
        fields = field_hashes(row)
        differing = sorted(k for k in s.fields if fields.get(k) != s.fields[k])
        if differing:
            return BrokenLink(
                name, s.model, s.object_id, f"changed since it was sealed: {', '.join(differing)}"
            )
        if content_hash(s.fields) != s.content_hash:
            return BrokenLink(name, s.model, s.object_id, "the seal's field hashes were altered")
    return None


def verify_chain(
    name: str, progress: Callable[[str, int], None] | None = None
) -> tuple[int, BrokenLink | None]:
    """Walk one chain from its first seal; returns (seals checked, first broken link)."""
    previous, expected_seq, checked = GENESIS, 1, 0
    batch: list[AuditSeal] = []

    def links() -> Iterator[AuditSeal]:
        yield from AuditSeal.objects.filter(chain=name).order_by("seq").iterator(chunk_size=BATCH)

    for s in links():
        if s.seq != expected_seq:
            return checked, BrokenLink(
                name, s.model, s.object_id, f"seal {expected_seq} of the chain is missing"
            )
        if s.prev_hash != previous:
            return checked, BrokenLink(name, s.model, s.object_id, "does not follow the seal before it")
        recomputed = entry_hash(
            chain=name,
            seq=s.seq,
            model=s.model,
            object_id=s.object_id,
            content=s.content_hash,
            previous=previous,
        )
        if recomputed != s.entry_hash:
            return checked, BrokenLink(name, s.model, s.object_id, "the seal itself was altered")
        previous, expected_seq = s.entry_hash, expected_seq + 1
        batch.append(s)
        if len(batch) == BATCH:
            broken = _check_batch(name, batch)
            if broken:
                return checked, broken
            checked += len(batch)
            batch = []
            if progress:
                progress(name, checked)
    if batch:
        broken = _check_batch(name, batch)
        if broken:
            return checked, broken
        checked += len(batch)

    head = AuditChainHead.objects.filter(chain=name).first()
    head_seq, head_hash = (head.seq, head.entry_hash) if head else (0, GENESIS)
    if (head_seq, head_hash) != (expected_seq - 1, previous):
        return checked, BrokenLink(
            name,
            "reviews.AuditChainHead",
            None,
            f"the chain ends at seal {expected_seq - 1}, its head says {head_seq}",
        )
    for label in CHAINS[name]:
        model = apps.get_model(label)
        done = AuditSeal.objects.filter(model=label).values("object_id")
        unsealed = (
            model._default_manager.exclude(pk__in=done).order_by("pk").values_list("pk", flat=True).first()
        )
        if unsealed is not None:
            return checked, BrokenLink(name, label, unsealed, "was never sealed (written around the chain)")
    return checked, None


def verify(progress: Callable[[str, int], None] | None = None) -> Verification:
    result = Verification()
    for name in CHAINS:
        checked, broken = verify_chain(name, progress)
        result.checked += checked
        head = AuditChainHead.objects.filter(chain=name).first()
        result.heads[name] = {"seq": head.seq if head else 0, "hash": head.entry_hash if head else GENESIS}
        if broken:
            result.broken = broken
            return result
    return result
