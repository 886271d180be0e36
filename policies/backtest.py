"""Backtesting a gate rule: how the stored items of a past window would have fared with it.

The candidate is a saved rule as it is now (enabled or not: a disabled rule is a
draft) or a draft described like a rule of a policy file (`policies.io`). Each item
of the window is decided twice by the engine (`applying_rules` and `decide`, the
two halves of `apply_rules`, so outcome precedence, sampling and queue choice are the
gate's own):

- before: the enabled, enforced rules in force now. A draft that names an existing
  rule is a change to it, so that rule stands here as it is now; a saved rule is
  measured against the rules in force without it, so that one in force shows what
  it adds and a disabled one what enabling it would do;
- after: the same rules with the candidate in its place.

Nothing is written. Items are read in keyset batches of `batch_size` (created_at,
id), one query each, with only the columns the rules look at; spot-check copies
are skipped (they repeat their original). The report holds counts and item ids,
never item content.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q

from policies.engine import (
    CompiledRule,
    GateDecision,
    RuleSet,
    applying_rules,
    compile_rule,
    decide,
    load_rules,
)
from policies.io import REQUIRED, RULE_KEYS, PolicyError, export_policy, import_policy
from policies.models import GateRule, Outcome
from reviews.models import Queue, ReviewItem

PASS = "pass"  # auto-approved, by a rule or because none matched
MAX_SAMPLES = 5  # item ids kept per transition

# The submission as the gate saw it: `submit_item` hands the engine the API payload
# (these keys; the callback URL is kept apart) and the item stores each one as a column.
SUBMITTED_FIELDS = ("external_id", "kind", "input", "output", "action", "context", "signals", "metadata")

Progress = Callable[[int, int], None]  # (items read so far, items in the window)


class BacktestError(Exception):
    """The backtest cannot run as asked; `errors` says why."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


def submission_of(row: Mapping[str, Any]) -> dict:
    """The submission dict the engine saw, from an item's stored columns (those present in `row`)."""
    return {name: row[name] for name in SUBMITTED_FIELDS if name in row}


# --- The report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where the gate sends an item: its outcome, and the queue for review and spot-check."""

    outcome: str  # pass, spot_check, review or block
    queue: str | None = None

    @classmethod
    def of(cls, decision: GateDecision) -> Placement:
        outcome = PASS if decision.outcome == Outcome.AUTO_APPROVE else decision.outcome
        return cls(outcome, decision.queue_slug or decision.spot_check_queue_slug)

    @property
    def label(self) -> str:
        return f"{self.outcome} ({self.queue})" if self.queue else self.outcome

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "queue": self.queue}


@dataclass
class Transition:
    before: Placement
    after: Placement
    count: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``pass → review``, ``review → block``, ``review → review (other queue)``."""
        other = " (other queue)" if self.before.outcome == self.after.outcome else ""
        return f"{self.before.outcome} → {self.after.outcome}{other}"

    def as_dict(self) -> dict:
        return {
            "transition": self.label,
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "items": self.count,
            "sample_item_ids": list(self.samples),
        }


@dataclass(frozen=True)
class PlacementCount:
    placement: Placement
    before: int
    after: int

    @property
    def change(self) -> int:
        return self.after - self.before


@dataclass
class BacktestReport:
    candidate: str  # the rule's name
    candidate_id: int | None  # None for a draft of a new rule
    is_draft: bool
    baseline: str  # what "before" means, in words
    since: datetime
    until: datetime
    queue: str | None = None
    read: int = 0  # items of the window read (every batch)
    examined: int = 0  # of those, the items reported on (all, or those placed in `queue`)
    matched: int = 0  # items the candidate applies to (matched, and sampled in)
    replaced_matched: int | None = None  # items the rule it replaces applies to, if one is in force
    transitions: list[Transition] = field(default_factory=list)  # most items first
    placements: list[PlacementCount] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(t.count for t in self.transitions)

    def as_dict(self) -> dict:
        return {
            "candidate": {"name": self.candidate, "id": self.candidate_id, "draft": self.is_draft},
            "baseline": self.baseline,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "queue": self.queue,
            "items_read": self.read,
            "items_examined": self.examined,
            "items_matched": self.matched,
            "items_matched_by_replaced_rule": self.replaced_matched,
            "items_changed": self.changed,
            "transitions": [t.as_dict() for t in self.transitions],
            "placements": [
                {**p.placement.as_dict(), "before": p.before, "after": p.after, "change": p.change}
                for p in self.placements
            ],
        }


# --- The candidate ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Setup:
    candidate: CompiledRule
    replaced: CompiledRule | None  # the in-force rule the candidate takes the place of
    others: list[CompiledRule]
    is_draft: bool
    baseline: str


def _in_force() -> list[CompiledRule]:
    return [rule for rule in load_rules() if rule.enforced]


def _saved(rule: GateRule) -> _Setup:
    try:
        current = GateRule.objects.select_related("queue").prefetch_related("conditions").get(pk=rule.pk)
    except ObjectDoesNotExist:
        raise BacktestError(f"Gate rule {rule.pk} no longer exists.") from None
    rules = _in_force()
    others = [r for r in rules if r.rule_id != current.pk]
    in_force = len(others) < len(rules)
    return _Setup(
        candidate=compile_rule(current, current.conditions.all()),
        replaced=None,
        others=others,
        is_draft=False,
        baseline=f"the rules in force without “{current.name}”" if in_force else "the rules in force now",
    )


def _draft(draft: Any) -> _Setup:
    rule, conditions = read_draft(draft)
    rules = _in_force()
    replaced = next((r for r in rules if rule.pk is not None and r.rule_id == rule.pk), None)
    return _Setup(
        candidate=compile_rule(rule, conditions),
        replaced=replaced,
        others=[r for r in rules if r is not replaced],
        is_draft=True,
        baseline=(
            f"the rules in force, with “{rule.name}” as it is now"
            if replaced is not None
            else "the rules in force now"
        ),
    )


def read_draft(draft: Any) -> tuple[GateRule, list[dict]]:
    """An unsaved rule and its conditions from a draft in the policy-file format.

    Checked exactly as `import_policy` checks a rule (a dry run of it, which writes
    nothing). A draft naming an existing rule may leave keys out: they keep that
    rule's values, and the rule's id is kept so sampling picks the same items.
    `enabled` may be left out too: a draft is evaluated whatever it says.
    """
    if not isinstance(draft, dict):
        raise BacktestError("draft: expected an object describing one rule, as in a policy file's rules")
    name = draft.get("name")
    existing = GateRule.objects.filter(name=name).first() if isinstance(name, str) and name else None
    values = dict(draft)
    if existing is not None:
        exported = next(r for r in export_policy()["rules"] if r["name"] == existing.name)
        values = {**exported, **values}
    values.setdefault("enabled", True)
    try:
        import_policy({"rules": [values]}, dry_run=True)
    except PolicyError as exc:
        raise BacktestError([error.replace("rules[0]", "draft", 1) for error in exc.errors]) from exc
    values = {
        **{name: key.default for name, key in RULE_KEYS.items() if key.default is not REQUIRED},
        **values,
    }
    rule = GateRule(
        pk=existing.pk if existing is not None else None,
        name=values["name"],
        description=values["description"],
        enabled=True,
        priority=values["priority"],
        match=values["match"],
        outcome=values["outcome"],
        queue=Queue.objects.get(slug=values["queue"]) if values["queue"] is not None else None,
        risk_level=values["risk_level"],
        mode=values["mode"],
        sample_rate=float(values["sample_rate"]),
        version=existing.version if existing is not None else 1,
    )
    conditions = [{"field": c["field"], "op": c["op"], "value": c.get("value")} for c in values["conditions"]]
    return rule, conditions


# --- Running it -------------------------------------------------------------------------


def _columns(rules: list[CompiledRule]) -> list[str]:
    """The submitted fields some condition looks at (`integration` comes with every row)."""
    wanted = {condition.path[0] for rule in rules for condition in rule.conditions}
    return [name for name in SUBMITTED_FIELDS if name in wanted]


def backtest(
    *,
    rule: GateRule | None = None,
    draft: dict | None = None,
    since: datetime,
    until: datetime,
    queue: str | None = None,
    batch_size: int = 2000,
    progress: Progress | None = None,
) -> BacktestReport:
    """How the items submitted in [since, until) would fare with the candidate (see the module).

    1. Set up: the candidate (`rule`, or `draft` checked like a policy file), the rules
       in force, and the columns their conditions read.
    2. Read the window's items (spot-check copies aside) in keyset batches, calling
       `progress(read, total)` after each.
    3. Decide each item before and after with the engine: each rule is tested once
       (`applying_rules`), then `decide` runs on the rules that applied, without the
       candidate for before and without the rule it replaces for after; when neither
       of those two applied, both decisions are the same one.
    4. With `queue`, report only the items placed in that queue before or after.

    Raises BacktestError for a bad window, queue, batch size or draft.
    """
    if (rule is None) == (draft is None):
        raise BacktestError("Give either a saved rule or a draft rule to backtest.")
    if since.tzinfo is None or until.tzinfo is None:
        raise BacktestError("since and until must be timezone-aware datetimes.")
    if since >= until:
        raise BacktestError("The window is empty: since must be before until.")
    if batch_size < 1:
        raise BacktestError("The batch size must be at least 1.")
    if queue is not None and not Queue.objects.filter(slug=queue).exists():
        raise BacktestError(f"No queue with the slug {queue!r}.")

    setup = _saved(rule) if rule is not None else _draft(draft)
    candidate, replaced = setup.candidate, setup.replaced
    every_rule = [*setup.others, *([replaced] if replaced else []), candidate]
    columns = _columns(every_rule)
    indexed = RuleSet(every_rule)  # indexed once, as the gate caches its rules

    report = BacktestReport(
        candidate=candidate.name,
        candidate_id=candidate.rule_id,
        is_draft=setup.is_draft,
        baseline=setup.baseline,
        since=since,
        until=until,
        queue=queue,
        replaced_matched=0 if replaced is not None else None,
    )
    window = ReviewItem.objects.filter(
        created_at__gte=since, created_at__lt=until, spot_check_of__isnull=True
    ).order_by()
    total = window.count() if progress is not None else 0
    transitions: dict[tuple[Placement, Placement], Transition] = {}
    before_counts: Counter[Placement] = Counter()
    after_counts: Counter[Placement] = Counter()

    last: tuple[datetime, Any] | None = None
    while True:
        batch = window
        if last is not None:
            # A range on created_at the index can seek to, then the tie-break on id.
            batch = batch.filter(Q(created_at__gt=last[0]) | Q(id__gt=last[1]), created_at__gte=last[0])
        rows = batch.order_by("created_at", "id").values("id", "created_at", "integration__slug", *columns)
        count = 0
        for row in rows[:batch_size].iterator(chunk_size=batch_size):
            count += 1
            last = (row["created_at"], row["id"])
            body, key, slug = submission_of(row), str(row["id"]), row["integration__slug"]
            # Each rule is tested once; before and after differ only in the candidate's place.
            applied = applying_rules(indexed, body, item_id=key, integration_slug=slug)
            candidate_applies = any(r is candidate for r in applied)
            replaced_applies = replaced is not None and any(r is replaced for r in applied)
            before = decide(
                [r for r in applied if r is not candidate], body, integration_slug=slug, snapshots=False
            )
            after = (
                decide(
                    [r for r in applied if r is not replaced], body, integration_slug=slug, snapshots=False
                )
                if candidate_applies or replaced_applies
                else before
            )
            was, becomes = Placement.of(before), Placement.of(after)
            if queue is not None and queue not in (was.queue, becomes.queue):
                continue
            report.examined += 1
            report.matched += candidate_applies
            if replaced_applies:
                report.replaced_matched += 1
            before_counts[was] += 1
            after_counts[becomes] += 1
            if was != becomes:
                transition = transitions.setdefault((was, becomes), Transition(was, becomes))
                transition.count += 1
                if len(transition.samples) < MAX_SAMPLES:
                    transition.samples.append(key)
        report.read += count
        if progress is not None and count:
            progress(report.read, max(total, report.read))
        if count < batch_size:
            break

    report.transitions = sorted(transitions.values(), key=lambda t: (-t.count, t.before.label, t.after.label))
    report.placements = [
        PlacementCount(placement, before_counts[placement], after_counts[placement])
        for placement in sorted(set(before_counts) | set(after_counts), key=_placement_order)
    ]
    return report


OUTCOME_ORDER = {Outcome.BLOCK: 0, Outcome.REVIEW: 1, Outcome.SPOT_CHECK: 2, PASS: 3}


def _placement_order(placement: Placement) -> tuple:
    return (OUTCOME_ORDER.get(placement.outcome, 4), placement.queue or "")
