"""A year of traffic, fast: what `generate_load_data` writes and how.

Items are copies of the demo submissions (demo/items/), each gated once by the real
engine against the policy in force, so queues, rule snapshots, risk levels and
outcomes are what the gate would give. Each item then lives a plausible life: the
reviews of its queue (four-eyes where the queue asks, escalations, edits,
rejections with reason codes, expiry), its history rows with their actors, its
sealed decisions, the outbox messages of its consequences with their delivery
attempts, and now and then an incident.

Rows go in through PostgreSQL's COPY, a batch at a time, each batch in one
transaction, so an interrupted run leaves whole batches and a second run carries on
where the first stopped. Everything random comes from a generator seeded by
(seed, block number): the same seed gives the same data, and topping up a seed to
more items adds exactly the items a larger first run would have made.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, models, transaction
from django.db.models import JSONField

from reviews import chain
from reviews.models import (
    PRIORITY_BY_RISK,
    AuditChainHead,
    AuditSeal,
    Decision,
    DecisionAction,
    DeliveryAttempt,
    ExecutionStatus,
    Incident,
    ItemKind,
    ItemStatus,
    OutboxMessage,
    ReasonCode,
    ReviewItem,
)
from reviews.services.transitions import STATE_FIELDS

BLOCK = 1_000  # items per random generator: the unit of reproducibility
BATCH_BLOCKS = 10  # blocks per transaction
PREFIX = "load-"  # integrations (and so items) made by the generator


@dataclass(frozen=True)
class Template:
    """One demo submission as the gate saw it."""

    kind: str
    columns: dict[str, Any]  # JSON columns, already encoded
    external_id: str
    status: str  # pending (held for review), auto_approved or blocked
    queue_id: int | None
    risk_level: str
    matched_rules: str
    shadow_matches: str


@dataclass(frozen=True)
class QueuePlan:
    id: int
    slug: str
    sla: timedelta
    required_approvals: int
    escalation_id: int | None
    reviewers: tuple[int, ...]
    checklist_length: int


@dataclass
class Rows:
    """What one block adds, table by table (each row a dict of column -> value)."""

    tables: dict[type[models.Model], list[dict]] = field(default_factory=dict)
    items: int = 0
    decisions: int = 0

    def add(self, model: type[models.Model], row: dict) -> None:
        self.tables.setdefault(model, []).append(row)


_HISTORY: dict[type[models.Model], type[models.Model]] = {}


def _history(model: type[models.Model]) -> type[models.Model]:
    """The model's history model (looked up once: the `history` manager is costly to build)."""
    if model not in _HISTORY:
        _HISTORY[model] = model.history.model
    return _HISTORY[model]


def through(model: type[models.Model], name: str) -> type[models.Model]:
    return model._meta.get_field(name).remote_field.through


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Generator:
    """Makes the rows of one block of items; pure: no database access."""

    def __init__(
        self,
        *,
        seed: int,
        end: datetime,
        days: int,
        escalation_share: float,
        templates: list[Template],
        queues: dict[int, QueuePlan],
        integrations: list[tuple[int, str, str]],  # (id, slug, callback_url)
        codes: dict[str, list[str]],  # action -> reason codes that apply
        usernames: dict[int, str],
    ):
        self.seed = seed
        self.end = end
        self.span = timedelta(days=days).total_seconds()
        self.escalation_share = escalation_share
        self.templates = templates
        self.queues = queues
        self.integrations = integrations
        self.codes = codes
        self.usernames = usernames
        self.slugs = {pk: slug for pk, slug, _ in integrations}
        self.ids: Ids  # set by `run`, before the workers start

    def block(self, number: int, first: int, last: int) -> Rows:
        """Items `first` to `last - 1` of block `number` (the block's earlier ones are skipped)."""
        rnd = random.Random(f"{self.seed}:{number}")
        self.ids.start(number)
        rows = Rows()
        for index in range(number * BLOCK, min((number + 1) * BLOCK, last)):
            # Earlier items of the block are drawn too (and dropped), so the later ones
            # come out as they would have in a run that made the whole block.
            self._draw_item(rnd, index, rows if index >= first else Rows())
        return rows

    # --- one item -------------------------------------------------------------------

    def _draw_item(self, rnd: random.Random, index: int, rows: Rows) -> None:
        template = self.templates[index % len(self.templates)]
        integration_id, slug, callback_url = self.integrations[rnd.randrange(len(self.integrations))]
        created = self.end - timedelta(seconds=rnd.uniform(60, self.span))
        item_id = uuid.UUID(int=rnd.getrandbits(128), version=4)
        item = {
            "id": item_id,
            "integration_id": integration_id,
            "external_id": f"{template.external_id}-{index}",
            "kind": template.kind,
            **template.columns,
            "callback_url": callback_url,
            "matched_rules": template.matched_rules,
            "shadow_matches": template.shadow_matches,
            "risk_level": template.risk_level,
            "priority": PRIORITY_BY_RISK.get(template.risk_level, PRIORITY_BY_RISK["medium"]),
            "status": template.status,
            "review_round": 1,
            "required_approvals": 1,
            "execution_status": ExecutionStatus.NOT_REQUIRED,
            "idempotency_key": f"{PREFIX}{self.seed}-{index}",
            "created_at": created,
            "updated_at": created,
        }
        rows.items += 1
        history = [
            self._item_history(item, created, f"integration:{slug}", "+", f"submitted: {template.status}")
        ]
        if template.status == ItemStatus.BLOCKED:
            item["decided_at"] = created
            history[0].update(status=ItemStatus.BLOCKED, decided_at=created)
        elif template.status == ItemStatus.AUTO_APPROVED:
            self._approve(item, created)
            history[0].update(self._state(item))
            self._consequences(rnd, item, created, rows)
        else:
            self._review(rnd, item, self.queues[template.queue_id], created, history, rows)
        rows.add(ReviewItem, item)
        for row in history:
            rows.add(_history(ReviewItem), row)

    def _item_history(self, item: dict, at: datetime, actor: str, kind: str, reason: str) -> dict:
        row = {c: item[c] for c in ITEM_HISTORY_COLUMNS if c in item}
        kind_of_actor = actor.split(":", 1)[0] if ":" in actor else "user"
        row.update(
            history_actor_kind=kind_of_actor,
            history_actor=actor.split(":", 1)[1] if kind_of_actor == "integration" else actor,
            history_date=at,
            history_type=kind,
            history_change_reason=reason,
            updated_at=at,
        )
        return row

    @staticmethod
    def _state(item: dict) -> dict:
        return {c: item.get(c) for c in STATE_COLUMNS}

    @staticmethod
    def _approve(item: dict, at: datetime, status: str = ItemStatus.AUTO_APPROVED, edited=None) -> None:
        item["status"] = status
        item["final_output"] = item["output"] if edited is None else raw_json(edited)
        item["final_action"] = item["action"]
        item["decided_at"] = at
        item["updated_at"] = at
        if item["kind"] == ItemKind.ACTION:
            item["execution_status"] = ExecutionStatus.SUCCEEDED
            item["executed_action"] = item["action"]

    def _enter(self, item: dict, queue: QueuePlan, at: datetime) -> None:
        item.update(
            queue_id=queue.id,
            status=ItemStatus.PENDING,
            entered_queue_at=at,
            due_at=at + queue.sla,
            at_risk_at=at + queue.sla / 2,
            required_approvals=max(item["required_approvals"], queue.required_approvals),
        )

    def _review(
        self, rnd: random.Random, item: dict, queue: QueuePlan, created: datetime, history: list, rows: Rows
    ) -> None:
        self._enter(item, queue, created)
        history[0].update(self._state(item))
        now = self.end
        at = created
        approvals: list[int] = []
        step = 0
        while True:
            if at + queue.sla * 2 > now and rnd.random() < 0.6:  # recent: still open
                if rnd.random() < 0.3:  # someone is on it
                    reviewer = rnd.choice(queue.reviewers)
                    claimed = min(at + timedelta(minutes=rnd.uniform(1, 30)), now)
                    item.update(
                        status=ItemStatus.IN_REVIEW,
                        claimed_by_id=reviewer,
                        claimed_at=claimed,
                        claim_expires_at=claimed + timedelta(minutes=15),
                        updated_at=claimed,
                    )
                    history.append(self._by_reviewer(item, reviewer, claimed, "claimed"))
                return
            if rnd.random() < 0.01:  # nobody got to it in time
                expired = item["due_at"]
                item.update(status=ItemStatus.EXPIRED, decided_at=expired, updated_at=expired)
                history.append(self._item_history(item, expired, "system:sla-sweep", "~", "expired"))
                history[-1].update(self._state(item))
                return
            reviewer = rnd.choice([r for r in queue.reviewers if r not in approvals] or queue.reviewers)
            spent = rnd.randint(15, 900)
            claimed = at + timedelta(minutes=min(rnd.expovariate(1 / 40), queue.sla.total_seconds() / 60))
            decided = claimed + timedelta(seconds=spent)
            if decided >= now:
                decided = now - timedelta(seconds=1)
                claimed = decided - timedelta(seconds=spent)
            step += 1
            item.update(status=ItemStatus.IN_REVIEW, claimed_by_id=reviewer, claimed_at=claimed)
            item["claim_expires_at"] = claimed + timedelta(minutes=15)
            history.append(self._by_reviewer(item, reviewer, claimed, "claimed"))
            item.update(claimed_by_id=None, claimed_at=None, claim_expires_at=None, updated_at=decided)

            draw = rnd.random()
            escalate = (
                queue.escalation_id is not None
                and not approvals
                and item["review_round"] <= 3
                and draw < self.escalation_share
            )
            if escalate:
                action = DecisionAction.ESCALATE
            elif approvals:
                action = DecisionAction.REJECT if draw < 0.1 else DecisionAction.APPROVE
            else:
                draw = rnd.random()
                action = (
                    DecisionAction.APPROVE
                    if draw < 0.72
                    else DecisionAction.EDIT
                    if draw < 0.85 and not queue.required_approvals > 1
                    else DecisionAction.REJECT
                )
            is_approval = action in (DecisionAction.APPROVE, DecisionAction.EDIT)
            final = action == DecisionAction.REJECT or (
                is_approval and len(approvals) + 1 >= item["required_approvals"]
            )
            edited = {"text": f"Edited by a reviewer ({item['external_id']})."} if action == "edit" else None
            decision = self._decision(rnd, item, queue, reviewer, action, step, final, spent, decided, edited)
            rows.add(Decision, decision)
            rows.decisions += 1
            if action == DecisionAction.ESCALATE:
                target = self.queues[queue.escalation_id]
                item["review_round"] += 1
                self._enter(item, target, decided)
                history.append(self._by_reviewer(item, reviewer, decided, f"escalated to {target.slug}"))
                queue, at, approvals, step = target, decided, [], 0
                continue
            if action == DecisionAction.REJECT:
                item.update(status=ItemStatus.REJECTED, decided_at=decided)
                history.append(self._by_reviewer(item, reviewer, decided, "rejected"))
                self._consequences(rnd, item, decided, rows)
                self._maybe_incident(rnd, item, decision, rows)
                return
            if not final:
                approvals.append(reviewer)
                item["status"] = ItemStatus.PENDING
                history.append(self._by_reviewer(item, reviewer, decided, "first approval"))
                at = decided
                continue
            status = ItemStatus.EDITED if action == DecisionAction.EDIT else ItemStatus.APPROVED
            self._approve(item, decided, status, edited)
            history.append(self._by_reviewer(item, reviewer, decided, status))
            self._consequences(rnd, item, decided, rows)
            self._maybe_incident(rnd, item, decision, rows)
            return

    def _by_reviewer(self, item: dict, reviewer: int, at: datetime, reason: str) -> dict:
        """The item's history row for a change a reviewer made (a claim, a decision)."""
        row = self._item_history(item, at, self.usernames[reviewer], "~", reason)
        row.update(self._state(item), history_user_id=reviewer)
        return row

    def _decision(self, rnd, item, queue, reviewer, action, step, final, spent, at, edited) -> dict:
        codes = self.codes.get(action) or []
        cited = sorted(rnd.sample(codes, min(len(codes), rnd.randint(1, 2)))) if codes else []
        approving = action in (DecisionAction.APPROVE, DecisionAction.EDIT)
        return {
            "id": self.ids.next(Decision),
            "item_id": item["id"],
            "reviewer_id": reviewer,
            "queue_id": queue.id,
            "action": action,
            "justification": JUSTIFICATIONS[action][rnd.randrange(len(JUSTIFICATIONS[action]))],
            "cited_codes": cited,
            "edited_output": edited,
            "edited_action": None,
            "checklist": [True] * queue.checklist_length if approving else [],
            "round": item["review_round"],
            "step": step,
            "is_final": final,
            "seconds_spent": spent,
            "created_at": at,
        }

    def _consequences(self, rnd: random.Random, item: dict, at: datetime, rows: Rows) -> None:
        """The outbox messages a final item leaves: its execution and its callback."""
        kinds = []
        if item["kind"] == ItemKind.ACTION and item["status"] in (
            ItemStatus.APPROVED,
            ItemStatus.EDITED,
            ItemStatus.AUTO_APPROVED,
        ):
            kinds.append(OutboxMessage.Kind.EXECUTE)
            item["executed_at"] = at + timedelta(milliseconds=rnd.randint(40, 400))
        if item["callback_url"]:
            kinds.append(OutboxMessage.Kind.CALLBACK)
        for kind in kinds:
            failed_first = rnd.random() < 0.03
            delivered = at + timedelta(milliseconds=rnd.randint(40, 400))
            attempts = [(at + timedelta(milliseconds=20), 500, "HTTP 500")] if failed_first else []
            if failed_first:
                delivered += timedelta(seconds=10)
            attempts.append((delivered - timedelta(milliseconds=30), 200, ""))
            message_id = self.ids.next(OutboxMessage)
            for number, (started, code, error) in enumerate(attempts, start=1):
                rows.add(
                    DeliveryAttempt,
                    {
                        "id": self.ids.next(DeliveryAttempt),
                        "message_id": message_id,
                        "number": number,
                        "started_at": started,
                        "duration_ms": 30,
                        "status_code": code,
                        "error": error,
                    },
                )
            message = {
                "id": message_id,
                "item_id": item["id"],
                "kind": kind,
                "msg_id": f"msg_{uuid.UUID(int=rnd.getrandbits(128), version=4).hex}",
                "url": item["callback_url"] if kind == OutboxMessage.Kind.CALLBACK else "",
                "payload": '{"generated": true}',
                "status": OutboxMessage.Status.DELIVERED,
                "attempts": len(attempts),
                "next_attempt_at": at,
                "dispatched_at": at,
                "delivered_at": delivered,
                "created_at": at,
            }
            rows.add(OutboxMessage, message)

    def _maybe_incident(self, rnd: random.Random, item: dict, decision: dict, rows: Rows) -> None:
        if rnd.random() >= 0.004 or item["status"] == ItemStatus.REJECTED:
            return
        rows.add(
            Incident,
            {
                "id": self.ids.next(Incident),
                "decision_id": decision["id"],
                "item_id": item["id"],
                "severity": rnd.choice(Incident.Severity.values),
                "description": "Reported by the integration after execution: the outcome was wrong.",
                "source": Incident.Source.INTEGRATION,
                "status": Incident.Status.OPEN,
                "reported_by_integration_id": item["integration_id"],
                "created_at": min(decision["created_at"] + timedelta(hours=rnd.uniform(1, 72)), self.end),
                "history_actor": self.slugs[item["integration_id"]],
            },
        )


# Item columns that history keeps (history leaves the submission's JSON out).
ITEM_HISTORY_COLUMNS = tuple(
    f.column
    for f in _history(ReviewItem)._meta.concrete_fields
    if not f.name.startswith("history_") and f.column != "history_id"
)
# The columns a state change writes, as the transitions name them (plus the execution's).
STATE_COLUMNS = tuple(ReviewItem._meta.get_field(name).column for name in STATE_FIELDS) + (
    "executed_action",
    "executed_at",
)
JUSTIFICATIONS = {
    DecisionAction.APPROVE: (
        "Checked against the policy: within limits.",
        "Matches the customer's request and the order history.",
        "Sources cited and correct.",
    ),
    DecisionAction.EDIT: (
        "Tone fixed; the facts were right.",
        "Removed a claim the sources do not support.",
    ),
    DecisionAction.REJECT: (
        "Outside the refund policy.",
        "The advice is not allowed without a licensed adviser.",
        "Personal data would leave the region.",
    ),
    DecisionAction.ESCALATE: ("Needs a senior reviewer: the amount is unusual.",),
}


class Table:
    """A table's COPY columns, each column's value when a row does not say, and a row
    formatter compiled for the table (one converter per column, by the field's type)."""

    def __init__(self, model: type[models.Model], *, with_pk: bool = True):
        self.model = model
        self.name = model._meta.db_table
        self.columns: list[str] = []
        namespace: dict[str, Any] = {}
        parts = []
        for f in model._meta.concrete_fields:
            if f.primary_key and isinstance(f, models.AutoField) and not with_pk:
                continue  # left to the table's own sequence
            value = f.get_default()
            if isinstance(f, JSONField) and value is not None:
                value = Raw(_json(value))
            n = len(self.columns)
            self.columns.append(f.column)
            namespace[f"d{n}"] = cell(value)
            namespace[f"c{n}"] = _converter(f)
            parts.append(f"(c{n}(r[{f.column!r}]) if {f.column!r} in r else d{n})")
        source = "def format_row(r):\n    return '\\t'.join((" + ", ".join(parts) + ",))\n"
        exec(compile(source, f"<copy format of {self.name}>", "exec"), namespace)  # noqa: S102
        self.format_row: Callable[[dict], str] = namespace["format_row"]

    def text(self, rows: list[dict]) -> bytes:
        """The rows in COPY's text format."""
        format_row = self.format_row
        return "".join([format_row(row) + "\n" for row in rows]).encode("utf-8")

    def sql(self) -> str:
        names = ", ".join(f'"{column}"' for column in self.columns)
        return f'COPY "{self.name}" ({names}) FROM STDIN'


def _converter(f: models.Field) -> Callable[[Any], str]:
    """A value of field `f` in COPY's text form: None as \\N, the rest by the field's type."""
    if isinstance(f, models.DateTimeField):
        return lambda v: "\\N" if v is None else v.isoformat()
    if isinstance(f, models.BooleanField):
        return lambda v: "\\N" if v is None else ("t" if v else "f")
    if isinstance(f, models.IntegerField | models.AutoField | models.UUIDField | models.ForeignKey):
        return lambda v: "\\N" if v is None else str(v)
    return cell  # text and JSON: escaped (Raw as it is)


class Raw(str):
    """Text already in COPY form (escaped once, such as a template's JSON)."""


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def cell(value: Any) -> str:
    kind = type(value)
    if value is None:
        return "\\N"
    if kind is Raw:
        return value
    if kind is str:
        return value.translate(_ESCAPES)
    if kind is bool:
        return "t" if value else "f"
    if kind is datetime:
        return value.isoformat()
    if kind is dict or kind is list:
        return _json(value).translate(_ESCAPES)
    return str(value)


def raw_json(value: Any) -> Raw | None:
    return None if value is None else Raw(_json(value).translate(_ESCAPES))


# Per item at most: three escalations and two approvals; an execution and a callback,
# each delivered at the second attempt; one incident.
ROOM = {Decision: 5, OutboxMessage: 2, DeliveryAttempt: 4, Incident: 1}


def tables() -> list[Table]:
    """Every table a block writes to, in the order they are written."""
    models_in_order = [
        ReviewItem,
        _history(ReviewItem),
        Decision,
        through(Decision, "reason_codes"),
        _history(Decision),
        OutboxMessage,
        _history(OutboxMessage),
        DeliveryAttempt,
        _history(DeliveryAttempt),
        Incident,
        _history(Incident),
    ]
    return [Table(m, with_pk=m in ROOM) for m in models_in_order]


@dataclass
class Ids:
    """Primary keys for a block: each block owns a fixed range of each table's ids."""

    bases: dict[type[models.Model], int]
    first_block: int
    block: int = 0
    used: dict[type[models.Model], int] = field(default_factory=dict)

    def start(self, block: int) -> None:
        self.block, self.used = block, {}

    def next(self, model: type[models.Model]) -> int:
        n = self.used.get(model, 0)
        room = ROOM[model] * BLOCK
        if n >= room:
            raise RuntimeError(f"Block {self.block} needs more than {room} {model.__name__} ids.")
        self.used[model] = n + 1
        return self.bases[model] + (self.block - self.first_block) * room + n


def reserve_ranges(first_block: int, last_block: int) -> dict[type[models.Model], int]:
    """Move each table's sequence past the ranges the blocks will use; the first id of each."""
    bases = {}
    blocks = last_block - first_block + 1
    with connection.cursor() as cursor:
        for model, room in ROOM.items():
            table, pk = model._meta.db_table, model._meta.pk.column
            cursor.execute(f'LOCK TABLE "{table}" IN SHARE ROW EXCLUSIVE MODE')
            cursor.execute(
                f'SELECT GREATEST((SELECT COALESCE(MAX("{pk}"), 0) FROM "{table}"), '
                "(SELECT last_value FROM pg_sequences WHERE schemaname = current_schema() "
                "AND sequencename = split_part(pg_get_serial_sequence(%s, %s), '.', 2)))",
                [table, pk],
            )
            base = (cursor.fetchone()[0] or 0) + 1
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, %s), %s)", [table, pk, base + blocks * room * BLOCK]
            )
            bases[model] = base
    return bases


@dataclass
class Block:
    """One block, ready to COPY: text per table, and the decisions' seal material."""

    number: int
    items: int
    decisions: int
    text: list[bytes]
    seals: list[tuple[int, str, str, datetime]]  # (decision id, fields, content hash, created)


class Writer:
    """Turns a block's rows into COPY text (in a worker process), then writes batches."""

    def __init__(self, reason_codes: dict[str, int], usernames: dict[int, str]):
        self.reason_codes = reason_codes
        self.usernames = usernames
        self.tables = tables()

    def prepare(self, number: int, rows: Rows) -> Block:
        t = rows.tables
        decisions = t.get(Decision, [])
        messages = t.get(OutboxMessage, [])
        attempts = t.get(DeliveryAttempt, [])
        incidents = t.get(Incident, [])
        usernames = self.usernames
        links = [
            {"decision_id": d["id"], "reasoncode_id": self.reason_codes[code]}
            for d in decisions
            for code in d["cited_codes"]
        ]
        decision_history = [
            d
            | {
                "history_actor_kind": "user",
                "history_actor": usernames[d["reviewer_id"]],
                "history_user_id": d["reviewer_id"],
                "history_date": d["created_at"],
                "history_type": "+",
            }
            for d in decisions
        ]
        message_history = [
            _system(m, m["created_at"], "+") | {"status": OutboxMessage.Status.PENDING, "delivered_at": None}
            for m in messages
        ] + [_system(m, m["delivered_at"], "~") for m in messages]
        attempt_history = [_system(a, a["started_at"], "+") for a in attempts]
        incident_history = [
            i | {"history_actor_kind": "integration", "history_date": i["created_at"], "history_type": "+"}
            for i in incidents
        ]
        ordered = [
            t.get(ReviewItem, []),
            t.get(_history(ReviewItem), []),
            decisions,
            links,
            decision_history,
            messages,
            message_history,
            attempts,
            attempt_history,
            incidents,
            incident_history,
        ]
        seals = []
        for d in decisions:
            fields = chain.column_hashes(Decision, d)
            seals.append((d["id"], _json(fields), chain.content_hash(fields), d["created_at"]))
        return Block(
            number=number,
            items=rows.items,
            decisions=rows.decisions,
            text=[table.text(rows_of) for table, rows_of in zip(self.tables, ordered, strict=True)],
            seals=seals,
        )

    def write(self, blocks: list[Block]) -> None:
        """One batch, inside the caller's transaction: every table, then the seals."""
        with connection.cursor() as cursor:
            for n, table in enumerate(self.tables):
                data = [block.text[n] for block in blocks if block.text[n]]
                if data:
                    with cursor.copy(table.sql()) as copy:
                        for chunk in data:
                            copy.write(chunk)
            seals = [seal for block in blocks for seal in block.seals]
            if seals:
                sealed = self._sealed(seals)  # before the COPY: it reads and moves the chain's head
                with cursor.copy(SEALS.sql()) as copy:
                    copy.write(sealed)

    @staticmethod
    def _sealed(seals: list[tuple[int, str, str, datetime]]) -> bytes:
        """Seal the decisions onto the end of their chain, as the decision service would."""
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(chain="decisions")
        label = Decision._meta.label
        seq, previous = head.seq, head.entry_hash
        rows = []
        for object_id, fields, content, created in seals:
            seq += 1
            link = chain.entry_hash(
                chain="decisions",
                seq=seq,
                model=label,
                object_id=object_id,
                content=content,
                previous=previous,
            )
            rows.append(
                {
                    "chain": "decisions",
                    "seq": seq,
                    "model": label,
                    "object_id": object_id,
                    "fields": Raw(fields),
                    "content_hash": content,
                    "prev_hash": previous,
                    "entry_hash": link,
                    "sealed_at": created,
                }
            )
            previous = link
        head.seq, head.entry_hash = seq, previous
        head.save(update_fields=["seq", "entry_hash"])
        return SEALS.text(rows)


SEALS = Table(AuditSeal, with_pk=False)


def _system(row: dict, at: datetime, kind: str) -> dict:
    return row | {
        "history_actor_kind": "system",
        "history_actor": "system:delivery",
        "history_date": at,
        "history_type": kind,
    }


def fast_load() -> None:
    """Skip per-row trigger work (foreign-key checks) for this transaction, where allowed.

    The rows are consistent by construction; setting the replication role needs a
    superuser, and without one the load runs with every check, only slower.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if cursor.fetchone()[0]:
            cursor.execute("SET LOCAL session_replication_role = replica")


# The worker processes' state: set once per process by `_start_worker`.
_WORK: tuple[Generator, Writer, int, int] | None = None


def _start_worker(generator: Generator, writer: Writer, start: int, stop: int) -> None:
    global _WORK
    _WORK = (generator, writer, start, stop)


def _make_block(number: int) -> Block:
    assert _WORK is not None
    generator, writer, start, stop = _WORK
    return writer.prepare(number, generator.block(number, start, stop))


def run(
    generator: Generator,
    writer: Writer,
    *,
    start: int,
    stop: int,
    processes: int,
    progress: Callable[[int, int], None],
) -> Rows:
    """Generate items `start` to `stop - 1` in `processes` workers; write a batch per transaction.

    Workers make the rows and their COPY text; this process only streams the text
    to PostgreSQL and seals the decisions, in block order.
    """
    done = Rows()
    first_block, last_block = start // BLOCK, (stop - 1) // BLOCK
    with transaction.atomic():
        generator.ids = Ids(reserve_ranges(first_block, last_block), first_block)
    numbers = range(first_block, last_block + 1)

    def flush(batch: list[Block]) -> None:
        with transaction.atomic():
            fast_load()
            writer.write(batch)
        done.items += sum(b.items for b in batch)
        done.decisions += sum(b.decisions for b in batch)
        progress(done.items, stop - start)

    batch: list[Block] = []
    if processes > 1:
        connection.close()  # never share the connection with the forked workers
        context = multiprocessing.get_context("fork")
        with context.Pool(
            processes, initializer=_start_worker, initargs=(generator, writer, start, stop)
        ) as pool:
            for block in pool.imap(_make_block, numbers, chunksize=1):
                batch.append(block)
                if len(batch) == BATCH_BLOCKS:
                    flush(batch)
                    batch = []
    else:
        _start_worker(generator, writer, start, stop)
        for number in numbers:
            batch.append(_make_block(number))
            if len(batch) == BATCH_BLOCKS:
                flush(batch)
                batch = []
    if batch:
        flush(batch)
    return done


def reason_codes_by_action(codes: Iterable[ReasonCode]) -> dict[str, list[str]]:
    """The codes a generated decision may cite: rejections, edits and escalations cite them."""
    by_action: dict[str, list[str]] = {}
    for code in codes:
        for action in code.applies_to or DecisionAction.values:
            if action != DecisionAction.APPROVE:
                by_action.setdefault(action, []).append(code.code)
    return {action: sorted(values) for action, values in by_action.items()}
