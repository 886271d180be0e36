"""What the API answers, as typed dataclasses.

Each has `from_api(data)`, which reads the API's JSON and ignores keys it does not
know (a newer server may add some), and keeps that JSON as `raw`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hitl_client import errors

OPEN_STATUSES = frozenset({"pending", "in_review"})
APPROVED_STATUSES = frozenset({"approved", "edited", "auto_approved"})
FINAL_STATUSES = frozenset({*APPROVED_STATUSES, "rejected", "expired", "cancelled", "blocked"})
FINAL_ACTIONS = frozenset({"approve", "edit", "reject"})


def parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class MatchedRule:
    """A gate rule that matched; on an item, `snapshot` is the rule as it was then."""

    id: int | None
    name: str
    outcome: str | None
    snapshot: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> MatchedRule:
        return cls(
            id=data.get("id"), name=str(data.get("name") or ""), outcome=data.get("outcome"), snapshot=data
        )


def _rules(value: Any) -> tuple[MatchedRule, ...]:
    return tuple(MatchedRule.from_api(rule) for rule in value or () if isinstance(rule, dict))


@dataclass(frozen=True, slots=True)
class Decision:
    """One reviewer's decision on the item (decisions are never changed)."""

    action: str  # approve, edit, reject, escalate
    reviewer: str | None
    justification: str
    reason_codes: tuple[str, ...]
    created_at: datetime | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Decision:
        return cls(
            action=str(data.get("action") or ""),
            reviewer=data.get("reviewer"),
            justification=str(data.get("justification") or ""),
            reason_codes=tuple(data.get("reason_codes") or ()),
            created_at=parse_datetime(data.get("created_at")),
        )


@dataclass(frozen=True, slots=True, repr=False)
class Item:
    """An item as `GET /api/v1/items/{id}/` shows it.

    `final_output` / `final_action` are what to use: the original once approved or
    auto-approved, the reviewer's edit once edited, None otherwise.
    """

    id: str
    status: str
    kind: str
    queue: str | None = None
    external_id: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    action: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    matched_rules: tuple[MatchedRule, ...] = ()
    due_at: datetime | None = None
    claimed_by: str | None = None
    claim_expires_at: datetime | None = None
    final_output: Any = None
    final_action: dict[str, Any] | None = None
    execution_status: str | None = None
    decisions: tuple[Decision, ...] = ()
    created_at: datetime | None = None
    decided_at: datetime | None = None
    review_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Item:
        """The item from its API representation (an answer, or a webhook's `data`)."""
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            kind=str(data.get("kind") or ""),
            queue=data.get("queue"),
            external_id=str(data.get("external_id") or ""),
            input=_dict(data.get("input")),
            output=data.get("output"),
            action=data.get("action") if isinstance(data.get("action"), dict) else None,
            context=_dict(data.get("context")),
            signals=_dict(data.get("signals")),
            metadata=_dict(data.get("metadata")),
            matched_rules=_rules(data.get("matched_rules")),
            due_at=parse_datetime(data.get("due_at")),
            claimed_by=data.get("claimed_by"),
            claim_expires_at=parse_datetime(data.get("claim_expires_at")),
            final_output=data.get("final_output"),
            final_action=data.get("final_action") if isinstance(data.get("final_action"), dict) else None,
            execution_status=data.get("execution_status"),
            decisions=tuple(Decision.from_api(d) for d in data.get("decisions") or () if isinstance(d, dict)),
            created_at=parse_datetime(data.get("created_at")),
            decided_at=parse_datetime(data.get("decided_at")),
            review_url=data.get("review_url"),
            raw=data,
        )

    def __repr__(self) -> str:
        # The content may be large and is the integration's own: left out.
        return f"Item(id={self.id!r}, status={self.status!r}, kind={self.kind!r}, queue={self.queue!r})"

    @property
    def is_open(self) -> bool:
        """Still waiting for a reviewer (`pending` or `in_review`)."""
        return self.status in OPEN_STATUSES

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_approved(self) -> bool:
        """Approved, edited or auto-approved: `final_output` / `final_action` may be used."""
        return self.status in APPROVED_STATUSES

    @property
    def decision(self) -> Decision | None:
        """The decision that settled the item (the last approve, edit or reject), if a person decided."""
        return next((d for d in reversed(self.decisions) if d.action in FINAL_ACTIONS), None)

    @property
    def justification(self) -> str | None:
        return self.decision.justification if self.decision else None

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return self.decision.reason_codes if self.decision else ()

    @property
    def reviewer(self) -> str | None:
        return self.decision.reviewer if self.decision else None

    def raise_for_outcome(self) -> Item:
        """Return the item if it was approved; raise Rejected, Blocked, Expired or
        Cancelled if it ended otherwise, StillPending while it is open."""
        if self.is_approved:
            return self
        if self.is_open:
            raise errors.StillPending(self)
        outcome = {
            "rejected": errors.Rejected,
            "blocked": errors.Blocked,
            "expired": errors.Expired,
            "cancelled": errors.Cancelled,
        }.get(self.status, errors.NotApproved)
        raise outcome(self)


@dataclass(frozen=True, slots=True)
class Submission:
    """The answer to `submit`: where the item stands right after the gate.

    `replayed` is True when the same `idempotency_key` had been sent before: the
    answer is the first one again, and no second item was made.
    """

    id: str
    status: str
    queue: str | None
    matched_rules: tuple[MatchedRule, ...]
    due_at: datetime | None
    url: str | None
    review_url: str | None
    idempotency_key: str
    replayed: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any], *, idempotency_key: str, replayed: bool = False) -> Submission:
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            queue=data.get("queue"),
            matched_rules=_rules(data.get("matched_rules")),
            due_at=parse_datetime(data.get("due_at")),
            url=data.get("url"),
            review_url=data.get("review_url"),
            idempotency_key=idempotency_key,
            replayed=replayed,
            raw=data,
        )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The answer to `evaluate`: the status a submission would get. Nothing was stored."""

    status: str
    queue: str | None
    matched_rules: tuple[MatchedRule, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            status=str(data["status"]),
            queue=data.get("queue"),
            matched_rules=_rules(data.get("matched_rules")),
            raw=data,
        )

    @property
    def would_wait(self) -> bool:
        """A reviewer would have to decide it."""
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class Incident:
    """Something harmful that got past the gate or a reviewer."""

    id: int
    item: str
    severity: str
    description: str
    source: str | None
    status: str | None
    created_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Incident:
        return cls(
            id=int(data["id"]),
            item=str(data["item"]),
            severity=str(data.get("severity") or ""),
            description=str(data.get("description") or ""),
            source=data.get("source"),
            status=data.get("status"),
            created_at=parse_datetime(data.get("created_at")),
            raw=data,
        )
