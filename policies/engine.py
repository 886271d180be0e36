"""The gate: evaluates the gate rules against a submission and returns a `GateDecision`.

Rules are data written by policy admins, and submissions are arbitrary JSON written
by integrations, so the engine trusts neither: conditions run through a whitelisted
operator table (no `eval`), regular expressions run on RE2 (linear time, no
catastrophic backtracking), and a missing field or a type mismatch makes a
condition false instead of raising. Compiled rules are cached per process and
reloaded when a cheap one-query revision of the rule tables changes.

Each matched rule is returned as a fresh snapshot that also says which of its
conditions fired and on what value (`fired`), with submitted values shortened so
that a large submission never copies itself into the snapshot.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Max

from policies.models import GateRule, Match, Mode, Operator, Outcome
from policies.patterns import MAX_PATTERN_LENGTH, InvalidPattern, compile_re2
from reviews.models import ItemStatus

logger = logging.getLogger(__name__)

MAX_INPUT_LENGTH = 100_000  # characters of a field that `matches` searches
MISSING = object()  # a field absent from the submission (unlike a present null)

# How much of a value a rule snapshot keeps in `fired` (see `shortened`).
MAX_SHOWN_TEXT = 200  # characters of one string (or object key)
MAX_SHOWN_CHARS = 2_000  # characters of all the strings of one value together
MAX_SHOWN_ENTRIES = 10  # entries of a list, keys of an object
MAX_SHOWN_DEPTH = 2  # levels of lists and objects kept; deeper ones become a count
ELLIPSIS = "\u2026"

OUTCOME_RANK = {Outcome.AUTO_APPROVE: 0, Outcome.SPOT_CHECK: 1, Outcome.REVIEW: 2, Outcome.BLOCK: 3}
STATUS_BY_OUTCOME = {
    Outcome.BLOCK: ItemStatus.BLOCKED.value,
    Outcome.REVIEW: ItemStatus.PENDING.value,
    Outcome.SPOT_CHECK: ItemStatus.AUTO_APPROVED.value,
    Outcome.AUTO_APPROVE: ItemStatus.AUTO_APPROVED.value,
}
RISK_RANK = {"": 0, "low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class GateDecision:
    outcome: str
    status: str
    queue_id: int | None = None
    queue_slug: str | None = None
    spot_check_queue_id: int | None = None
    spot_check_queue_slug: str | None = None
    risk_level: str = ""
    matched_rules: list[dict] = field(default_factory=list)
    shadow_matches: list[dict] = field(default_factory=list)
    # The Queue rows as loaded with the rules, so placing an item costs no query.
    queue: Any = field(default=None, compare=False, repr=False)
    spot_check_queue: Any = field(default=None, compare=False, repr=False)


# --- Comparing JSON values -------------------------------------------------------------


def _kind(value: Any) -> str:
    """The JSON type of a value; bool is its own kind so that True never equals 1."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "other"


def _equal(a: Any, b: Any) -> bool:
    """Equality between values of the same JSON kind only (recursion stops at the shallower side)."""
    kind = _kind(a)
    if kind != _kind(b) or kind == "other":
        return False
    if kind == "list":
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if kind == "object":
        return a.keys() == b.keys() and all(_equal(a[key], b[key]) for key in a)
    return a == b


def _orderable(a: Any, b: Any) -> bool:
    kind = _kind(a)
    return kind == _kind(b) and kind in ("number", "string")


def _is_scalar(value: Any) -> bool:
    return _kind(value) in ("bool", "number", "string", "null")


def _in(actual: Any, values: Any) -> bool:
    return _is_scalar(actual) and isinstance(values, list) and any(_equal(actual, v) for v in values)


def _not_in(actual: Any, values: Any) -> bool:
    # Like `ne`, a type mismatch (no member of the actual's kind) is false, not true.
    if not _is_scalar(actual) or not isinstance(values, list):
        return False
    comparable = [v for v in values if _kind(v) == _kind(actual)]
    return bool(comparable) and not any(_equal(actual, v) for v in comparable)


def _contains(actual: Any, value: Any) -> bool:
    if _kind(actual) == "list":
        return any(_equal(member, value) for member in actual)
    return isinstance(actual, str) and isinstance(value, str) and value in actual


def _contains_any(actual: Any, values: Any) -> bool:
    if not isinstance(values, list):
        return False
    if _kind(actual) == "list":
        return any(_equal(member, v) for member in actual for v in values)
    return isinstance(actual, str) and any(isinstance(v, str) and v in actual for v in values)


def _matches(actual: Any, pattern: Any) -> bool:
    if pattern is None or not isinstance(actual, str):
        return False
    text = actual[:MAX_INPUT_LENGTH]
    try:
        return pattern.search(text) is not None
    except UnicodeEncodeError:
        # A lone surrogate must not let text slip past a pattern: search the rest of it.
        return pattern.search(text.encode("utf-8", "replace").decode("utf-8")) is not None


def _exists(actual: Any, value: Any) -> bool:
    return actual is not MISSING and actual is not None


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    Operator.EQ: _equal,
    Operator.NE: lambda a, v: _kind(a) == _kind(v) and not _equal(a, v),
    Operator.LT: lambda a, v: _orderable(a, v) and a < v,
    Operator.LTE: lambda a, v: _orderable(a, v) and a <= v,
    Operator.GT: lambda a, v: _orderable(a, v) and a > v,
    Operator.GTE: lambda a, v: _orderable(a, v) and a >= v,
    Operator.IN: _in,
    Operator.NOT_IN: _not_in,
    Operator.CONTAINS: _contains,
    Operator.CONTAINS_ANY: _contains_any,
    Operator.EXISTS: _exists,
    Operator.NOT_EXISTS: lambda a, v: not _exists(a, v),
    Operator.MATCHES: _matches,
}


def compile_pattern(pattern: Any) -> Any:
    """An RE2 regexp, or None (logged once per pattern and process) when RE2 cannot run it."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        logger.warning("Gate pattern refused (not a string or too long): %.80r", pattern)
        return None
    return _compiled_or_none(pattern)


@functools.lru_cache(maxsize=512)
def _compiled_or_none(pattern: str) -> Any:
    try:
        return compile_re2(pattern)
    except InvalidPattern as exc:
        logger.warning("Gate pattern %r is not valid RE2 and never matches: %s", pattern, exc)
        return None


# --- Shortening values for snapshots ----------------------------------------------------


def shortened(value: Any) -> Any:
    """A short, JSON-safe copy of a submitted value, for a snapshot that every item keeps.

    Strings are cut to MAX_SHOWN_TEXT characters and end in "…" when cut (they stay
    strings); a list keeps its first MAX_SHOWN_ENTRIES entries and then "… N more";
    an object its first keys and then {"…": "N more keys"}; lists and objects nested
    deeper than MAX_SHOWN_DEPTH become "[… N items]" / "{… N keys}"; the strings of one
    value share MAX_SHOWN_CHARS. Characters storage refuses (NUL, lone surrogates) and
    non-finite numbers become text. The result is always a new object.
    """
    return _Shortener().value(value, 0)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class _Shortener:
    def __init__(self) -> None:
        self.room = MAX_SHOWN_CHARS

    def value(self, value: Any, depth: int) -> Any:
        kind = _kind(value)
        if kind in ("bool", "null"):
            return value
        if kind == "number":
            return value if not isinstance(value, float) or math.isfinite(value) else str(value)
        if kind == "string":
            return self.text(value)
        if kind == "list":
            if depth >= MAX_SHOWN_DEPTH:
                return f"[{ELLIPSIS} {_count(len(value), 'item')}]"
            kept = [self.value(entry, depth + 1) for entry in value[:MAX_SHOWN_ENTRIES]]
            if len(value) > MAX_SHOWN_ENTRIES:
                kept.append(f"{ELLIPSIS} {len(value) - MAX_SHOWN_ENTRIES} more")
            return kept
        if kind == "object":
            if depth >= MAX_SHOWN_DEPTH:
                return f"{{{ELLIPSIS} {_count(len(value), 'key')}}}"
            keys = list(itertools.islice(value, MAX_SHOWN_ENTRIES))
            kept = {self.text(str(key)): self.value(value[key], depth + 1) for key in keys}
            if len(value) > MAX_SHOWN_ENTRIES:
                kept[ELLIPSIS] = _count(len(value) - MAX_SHOWN_ENTRIES, "more key")
            return kept
        return self.text(type(value).__name__)  # not JSON at all: name the type, never repr() it

    def text(self, text: str) -> str:
        keep = max(0, min(MAX_SHOWN_TEXT, self.room))
        cut = text[:keep]
        self.room -= len(cut)
        if len(text) > keep:
            cut += ELLIPSIS
        if "\x00" in cut:
            cut = cut.replace("\x00", "\ufffd")
        try:
            cut.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: paired ones are rejoined, the rest replaced
            cut = cut.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return cut


# --- Compiling rules -------------------------------------------------------------------


def resolve(submission: dict, path: tuple[str, ...], integration_slug: str) -> Any:
    """The value at a dotted path, or MISSING; a numeric segment may index into a list."""
    if path == ("integration",):
        return integration_slug
    current: Any = submission
    for key in path:
        if isinstance(current, dict):
            current = current.get(key, MISSING)
        elif isinstance(current, list) and key.isascii() and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current


@dataclass(frozen=True)
class CompiledCondition:
    """One condition, ready to test; `field`, `op` and `value` are as the rule has them."""

    field: Any
    op: Any
    value: Any
    path: tuple[str, ...]
    test: Callable[[Any, Any], bool] | None  # None: an unknown operator, which never matches
    expected: Any  # `value`, or for `matches` the compiled pattern

    def holds(self, submission: dict, integration_slug: str) -> bool:
        return self.holds_for(resolve(submission, self.path, integration_slug))

    def holds_for(self, actual: Any) -> bool:
        if self.test is None:
            return False
        if actual is MISSING and self.op not in (Operator.EXISTS, Operator.NOT_EXISTS):
            return False
        try:
            return self.test(actual, self.expected)
        except Exception:  # user data must never break the gate (e.g. recursion limits)
            logger.exception("Gate condition %s %s failed on a submission", self.field, self.op)
            return False

    def fired(self, actual: Any) -> dict:
        """What a snapshot keeps of this condition having held on `actual`."""
        present = actual is not MISSING
        return {
            "field": str(self.field),
            "op": str(self.op),
            "value": shortened(self.value),
            "actual": shortened(actual) if present else None,
            "present": present,
        }


def compile_condition(field_path: Any, op: Any, value: Any) -> CompiledCondition:
    """A condition ready to test; an unknown operator never matches."""
    test = OPERATORS.get(op)
    if test is None:
        logger.warning("Gate condition with unknown operator %r never matches", op)
    return CompiledCondition(
        field=field_path,
        op=op,
        value=value,
        path=tuple(str(field_path).split(".")),
        test=test,
        expected=compile_pattern(value) if op == Operator.MATCHES and test is not None else value,
    )


@dataclass(frozen=True)
class CompiledRule:
    priority: int
    name: str
    rule_id: int | None
    outcome: str
    enforced: bool
    match_any: bool
    sample_rate: float
    risk_level: str
    queue_id: int | None
    queue_slug: str | None
    queue: Any
    snapshot: dict  # shared by every evaluation: copied, never handed out (see `snapshot_for`)
    conditions: tuple[CompiledCondition, ...]

    def matches(self, submission: dict, integration_slug: str) -> bool:
        if not self.conditions:
            return True
        results = (condition.holds(submission, integration_slug) for condition in self.conditions)
        return any(results) if self.match_any else all(results)

    def samples_in(self, item_id: str) -> bool:
        """Deterministic per (item, rule), so a retried submission gets the same answer."""
        if self.sample_rate >= 1:
            return True
        digest = hashlib.sha256(f"{item_id}:{self.rule_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.sample_rate

    def snapshot_for(self, submission: dict, integration_slug: str) -> dict:
        """A new snapshot of this rule having matched `submission`, with the conditions that fired.

        Called for matched rules only, so the gate pays for it only where it gated.
        Under `match: all` every condition held; under `any` each is tested again
        (the match stopped at the first that held) and only those that hold are kept.
        """
        fired = []
        for condition in self.conditions:
            actual = resolve(submission, condition.path, integration_slug)
            if not self.match_any or condition.holds_for(actual):
                fired.append(condition.fired(actual))
        return {**self.snapshot, "fired": fired}


def compile_rule(rule: GateRule, conditions: Iterable[Any]) -> CompiledRule:
    """Conditions are GateCondition objects or dicts with field, op and value."""
    compiled = []
    for condition in conditions:
        if isinstance(condition, dict):
            parts = (condition.get("field"), condition.get("op"), condition.get("value"))
        else:
            parts = (condition.field, condition.op, condition.value)
        compiled.append(compile_condition(*parts))
    return CompiledRule(
        priority=rule.priority,
        name=rule.name,
        rule_id=rule.pk,
        outcome=rule.outcome,
        enforced=rule.mode != Mode.SHADOW,
        match_any=rule.match == Match.ANY,
        sample_rate=rule.sample_rate,
        risk_level=rule.risk_level,
        queue_id=rule.queue_id,
        queue_slug=rule.queue.slug if rule.queue_id else None,
        queue=rule.queue if rule.queue_id else None,
        snapshot=rule.snapshot(),
        conditions=tuple(compiled),
    )


def _item_key(item_id: Any) -> str:
    """The same item gives the same samples whether its id comes as a UUID or a string."""
    try:
        return str(uuid.UUID(str(item_id)))
    except ValueError:
        return str(item_id)


def apply_rules(
    rules: Iterable[CompiledRule], submission: Any, *, item_id: Any, integration_slug: str
) -> GateDecision:
    """Apply compiled rules: every enforced match is recorded, the strongest outcome wins."""
    applied = applying_rules(rules, submission, item_id=item_id, integration_slug=integration_slug)
    return decide(applied, submission, integration_slug=integration_slug)


def applying_rules(
    rules: Iterable[CompiledRule], submission: Any, *, item_id: Any, integration_slug: str
) -> list[CompiledRule]:
    """The rules that take part in the decision on a submission (matched, and sampled in), in
    priority order. Apart from `decide` so a backtest tests each rule once for two rule sets."""
    body = submission if isinstance(submission, dict) else {}
    key = _item_key(item_id)
    ordered = sorted(rules, key=lambda r: (r.priority, r.name))
    return [r for r in ordered if r.matches(body, integration_slug) and r.samples_in(key)]


def decide(
    applied: Iterable[CompiledRule], submission: Any, *, integration_slug: str, snapshots: bool = True
) -> GateDecision:
    """The decision once `applied` (see `applying_rules`) is known: outcome precedence and queue.

    Without `snapshots`, matched_rules and shadow_matches stay empty (a backtest needs
    only the outcome and the queue).
    """
    body = submission if isinstance(submission, dict) else {}
    ordered = sorted(applied, key=lambda r: (r.priority, r.name))
    enforced = [r for r in ordered if r.enforced]
    shadow = [r.snapshot_for(body, integration_slug) for r in ordered if not r.enforced] if snapshots else []
    if not enforced:
        return GateDecision(Outcome.AUTO_APPROVE.value, ItemStatus.AUTO_APPROVED.value, shadow_matches=shadow)

    outcome = max((r.outcome for r in enforced), key=lambda o: OUTCOME_RANK.get(o, -1))
    # `enforced` is in priority order, so the first rule with the winning outcome picks the queue.
    winner = next(r for r in enforced if r.outcome == outcome)
    review, spot_check = outcome == Outcome.REVIEW, outcome == Outcome.SPOT_CHECK
    return GateDecision(
        outcome=str(outcome),
        status=STATUS_BY_OUTCOME.get(outcome, ItemStatus.AUTO_APPROVED.value),
        queue_id=winner.queue_id if review else None,
        queue_slug=winner.queue_slug if review else None,
        spot_check_queue_id=winner.queue_id if spot_check else None,
        spot_check_queue_slug=winner.queue_slug if spot_check else None,
        queue=winner.queue if review else None,
        spot_check_queue=winner.queue if spot_check else None,
        risk_level=max((r.risk_level for r in enforced), key=lambda level: RISK_RANK.get(level, 0)),
        matched_rules=[r.snapshot_for(body, integration_slug) for r in enforced] if snapshots else [],
        shadow_matches=shadow,
    )


def evaluate_rules(
    submission: Any, *, item_id: Any, integration_slug: str, rules: Iterable[GateRule]
) -> GateDecision:
    """Evaluate given (possibly unsaved) rules, e.g. a draft in a backtest; disabled ones are skipped.

    Conditions come from a `conditions_list` attribute, else from `rule.conditions`.
    """
    compiled = [compile_rule(rule, _conditions_of(rule)) for rule in rules if rule.enabled]
    return apply_rules(compiled, submission, item_id=item_id, integration_slug=integration_slug)


def _conditions_of(rule: GateRule) -> Iterable[Any]:
    conditions = getattr(rule, "conditions_list", None)
    if conditions is not None:
        return conditions
    return rule.conditions.all() if rule.pk else []


# --- The per-process cache -------------------------------------------------------------

_lock = threading.Lock()
_cache: _Cached | None = None


def rules_revision() -> tuple:
    """One query that changes whenever a rule, a condition or a rule's queue is saved or deleted.

    Saves bump `updated_at` (auto_now) and deletions lower a count. A bulk
    `QuerySet.update()` bypasses auto_now and so goes unnoticed until the next save.
    """
    stats = GateRule.objects.order_by().aggregate(
        rule_count=Count("id", distinct=True),
        rule_at=Max("updated_at"),
        condition_count=Count("conditions", distinct=True),
        condition_at=Max("conditions__updated_at"),
        queue_at=Max("queue__updated_at"),
    )
    return tuple(sorted(stats.items()))


def load_rules() -> list[CompiledRule]:
    """The enabled rules, compiled, in two queries (rules with queues, then conditions)."""
    rules = GateRule.objects.filter(enabled=True).select_related("queue").prefetch_related("conditions")
    return [compile_rule(rule, rule.conditions.all()) for rule in rules]


def evaluate(submission: Any, *, item_id: Any, integration_slug: str) -> GateDecision:
    """The gate's decision on a submission.

    The revision query runs at most every HITL_RULES_REFRESH_SECONDS per process
    (a rule edit reaches every process within that time), and the rules are
    reloaded only when it changed; in between, evaluating costs no query.
    """
    global _cache
    now = time.monotonic()
    with _lock:
        cached = _cache
    elapsed = now - cached.checked_at if cached is not None else None
    # A negative elapsed time means the clock the cache was stamped with is not this one.
    if elapsed is None or not 0 <= elapsed < settings.HITL_RULES_REFRESH_SECONDS:
        revision = rules_revision()
        # Loaded after reading the revision, so the rules are at least that recent.
        rules = cached.rules if cached is not None and cached.revision == revision else load_rules()
        cached = _Cached(revision, rules, now)
        with _lock:
            _cache = cached
    return apply_rules(cached.rules, submission, item_id=item_id, integration_slug=integration_slug)


@dataclass(frozen=True)
class _Cached:
    revision: tuple
    rules: list[CompiledRule]
    checked_at: float
