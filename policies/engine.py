"""The gate: evaluates the gate rules against a submission and returns a `GateDecision`.

Rules are data written by policy admins, and submissions are arbitrary JSON written
by integrations, so the engine trusts neither: conditions run through a whitelisted
operator table (no `eval`), regular expressions run on RE2 (linear time, no
catastrophic backtracking), and a missing field or a type mismatch makes a
condition false instead of raising. Compiled rules are cached per process, indexed
(`RuleSet`) so that a submission is tested only against the rules that can match it,
and reloaded when a cheap one-query revision of the rule tables changes.

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
import operator
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
_UNSEEN = object()  # a field not looked up yet

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


_KIND_OF_TYPE = {
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    type(None): "null",
    list: "list",
    tuple: "list",
    dict: "object",
}
SCALAR_KINDS = frozenset({"bool", "number", "string", "null"})


def _kind(value: Any) -> str:
    """The JSON type of a value; bool is its own kind so that True never equals 1."""
    kind = _KIND_OF_TYPE.get(type(value))  # what JSON decodes to; subclasses take the long way
    if kind is not None:
        return kind
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
    return _kind(value) in SCALAR_KINDS


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
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate must not let text slip past a pattern: search the rest of it.
        encoded = text.encode("utf-8", "replace")
    # RE2 searches UTF-8 bytes: given a str it would encode it the same way, and then map the
    # match's offsets back to characters, which a yes or no never needs.
    return pattern.search(encoded) is not None


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


_ORDERING = {
    Operator.LT: operator.lt,
    Operator.LTE: operator.le,
    Operator.GT: operator.gt,
    Operator.GTE: operator.ge,
}


def _never(actual: Any) -> bool:
    return False


def _key(value: Any) -> tuple[str, Any] | None:
    """A hashable stand-in for a scalar such that two keys are equal exactly when `_equal`
    holds between their values (NaN equals nothing, so it has none); None otherwise."""
    kind = _kind(value)
    if kind not in SCALAR_KINDS or (isinstance(value, float) and math.isnan(value)):
        return None
    return (kind, value)


def _member_keys(values: list) -> frozenset:
    return frozenset(key for key in map(_key, values) if key is not None)


def _bound_test(op: Any, expected: Any, test: Callable[[Any, Any], bool]) -> Callable[[Any], bool]:
    """`test` with its expected value bound: the same answer as `test(actual, expected)` for
    every actual, with what depends on the value alone (its kind, a set of the members of
    a list) worked out once instead of on every submission."""
    kind = _kind(expected)
    scalar = kind in SCALAR_KINDS
    if op == Operator.EQ and scalar:
        return lambda actual: actual == expected and _kind(actual) == kind
    if op == Operator.NE and scalar:
        return lambda actual: _kind(actual) == kind and actual != expected
    if op in _ORDERING:
        if kind not in ("number", "string"):
            return _never
        compare = _ORDERING[op]
        return lambda actual: _kind(actual) == kind and compare(actual, expected)
    if op in (Operator.IN, Operator.NOT_IN):
        if not isinstance(expected, list):
            return _never
        members = _member_keys(expected)
        if op == Operator.IN:
            return lambda actual: (k := _kind(actual)) in SCALAR_KINDS and (k, actual) in members
        kinds = frozenset(map(_kind, expected))  # `not_in` is false when no member is of the actual's kind
        return lambda actual: (
            (k := _kind(actual)) in kinds and k in SCALAR_KINDS and (k, actual) not in members
        )
    if op == Operator.CONTAINS and scalar:

        def contains(actual: Any) -> bool:
            actual_kind = _kind(actual)
            if actual_kind == "list":
                return any(member == expected and _kind(member) == kind for member in actual)
            return actual_kind == "string" and kind == "string" and expected in actual

        return contains
    if op == Operator.MATCHES and expected is None:
        return _never
    return lambda actual: test(actual, expected)


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
    kind = _KIND_OF_TYPE.get(type(value))
    # The common cases, which come back as they are: short plain strings and finite numbers.
    if kind == "string" and len(value) <= MAX_SHOWN_TEXT and value.isascii() and "\x00" not in value:
        return value
    if kind in ("bool", "null") or (kind == "number" and (type(value) is int or math.isfinite(value))):
        return value
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
    check: Callable[[Any], bool] = _never  # `test` with `expected` bound (`_bound_test`)
    on_missing: bool = False  # the answer for a field the submission lacks
    shown: tuple = ()  # field, op and (shortened) value, as a snapshot shows them

    def holds(self, submission: dict, integration_slug: str) -> bool:
        return self.holds_for(resolve(submission, self.path, integration_slug))

    def holds_for(self, actual: Any) -> bool:
        if actual is MISSING:
            return self.on_missing
        try:
            return self.check(actual)
        except Exception:  # user data must never break the gate (e.g. recursion limits)
            logger.exception("Gate condition %s %s failed on a submission", self.field, self.op)
            return False

    def fired(self, actual: Any) -> dict:
        """What a snapshot keeps of this condition having held on `actual`."""
        present = actual is not MISSING
        field_name, op_name, value = self.shown
        return {
            "field": field_name,
            "op": op_name,
            "value": _fresh(value) if isinstance(value, list | dict) else value,
            "actual": shortened(actual) if present else None,
            "present": present,
        }


def _fresh(value: Any) -> Any:
    """A new copy of a shortened value (JSON: only lists and objects need copying)."""
    if isinstance(value, list):
        return [_fresh(entry) for entry in value]
    if isinstance(value, dict):
        return {key: _fresh(entry) for key, entry in value.items()}
    return value


def compile_condition(field_path: Any, op: Any, value: Any) -> CompiledCondition:
    """A condition ready to test; an unknown operator never matches."""
    test = OPERATORS.get(op)
    if test is None:
        logger.warning("Gate condition with unknown operator %r never matches", op)
    expected = compile_pattern(value) if op == Operator.MATCHES and test is not None else value
    return CompiledCondition(
        field=field_path,
        op=op,
        value=value,
        path=tuple(str(field_path).split(".")),
        test=test,
        expected=expected,
        check=_bound_test(op, expected, test) if test is not None else _never,
        # Only the presence tests answer on an absent field, each always the same way.
        on_missing=op in (Operator.EXISTS, Operator.NOT_EXISTS) and test(MISSING, expected),
        shown=(str(field_path), str(op), shortened(value)),
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

    def snapshot_for(self, submission: dict, integration_slug: str, fields: dict | None = None) -> dict:
        """A new snapshot of this rule having matched `submission`, with the conditions that fired.

        Called for matched rules only, so the gate pays for it only where it gated.
        Under `match: all` every condition held; under `any` each is tested again
        (the match stopped at the first that held) and only those that hold are kept.
        `fields` are values already looked up in the submission, by path (`RuleSet`).
        """
        fields = fields or {}
        retest = self.match_any and len(self.conditions) > 1  # the one condition of an `any` rule held
        fired = []
        for condition in self.conditions:
            actual = fields.get(condition.path, _UNSEEN)
            if actual is _UNSEEN:
                actual = resolve(submission, condition.path, integration_slug)
            if not retest or condition.holds_for(actual):
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
    if isinstance(item_id, uuid.UUID):
        return str(item_id)
    try:
        return str(uuid.UUID(str(item_id)))
    except ValueError:
        return str(item_id)


def _in_order(rule: CompiledRule) -> tuple[int, str]:
    return (rule.priority, rule.name)


@dataclass
class _FieldIndex:
    """What the rules of a RuleSet demand of one field, each rule at most one thing, as
    bitmasks of rule positions: one of some values (`eq`, `in`: the index decides the
    condition), a member (`contains` on a list; a string is left to the condition), or
    only that the field be present (any other condition that is false on an absent field)."""

    demanding: int = 0  # the rules that demand anything of the field
    present: int = 0  # those for which its being present is enough
    by_value: dict[tuple, int] = field(default_factory=dict)  # value key -> the rules it satisfies
    containing: int = 0  # those that demand a member
    by_member: dict[tuple, int] = field(default_factory=dict)  # member key -> the rules it satisfies

    def demand(self, condition: CompiledCondition, bit: int) -> bool:
        """Take on a demand of the condition if the rule has none of this field yet; True when
        the index then decides the condition, so the rule need not test it."""
        if self.demanding & bit:
            return False
        op, expected = condition.op, condition.expected
        if op == Operator.EQ or (op == Operator.IN and isinstance(expected, list)):
            keys = _member_keys(expected if op == Operator.IN else [expected])
            if keys:  # holds exactly when the field has one of these values
                self.demanding |= bit
                for key in keys:
                    self.by_value[key] = self.by_value.get(key, 0) | bit
                return True
        key = _key(expected) if op == Operator.CONTAINS else None
        if key is not None:  # a list must have the member; a string is searched by the condition
            self.demanding |= bit
            self.containing |= bit
            self.by_member[key] = self.by_member.get(key, 0) | bit
        elif not condition.on_missing:  # false on an absent field
            self.demanding |= bit
            self.present |= bit
        return False

    def met(self, actual: Any) -> int:
        """The demanding rules whose demand a present value meets."""
        met = self.present
        if self.by_value:
            key = _key(actual)
            if key is not None:
                met |= self.by_value.get(key, 0)
        if self.containing:
            kind = _kind(actual)
            if kind == "string":
                met |= self.containing
            elif kind == "list":
                for member in actual:
                    key = _key(member)
                    if key is not None:
                        met |= self.by_member.get(key, 0)
        return met


class RuleSet:
    """Compiled rules in priority order, indexed once so that a submission is tested
    only against the rules that can match it. What the process caches.

    Most conditions of a large policy name the value a field must have
    (`integration eq "support-bot"`, `action.type in [...]`, `signals.category eq
    "hr"`) or a member its list must have (`signals.filter_flags contains "pii"`),
    and nearly all the others need at least the field to be there. Under `match:
    all` a rule can match only a submission that meets all of those demands, so the
    index records, per field, which rules demand what of it: a submission looks
    each indexed field up once, and only the rules whose every demand it meets go
    on to test the conditions the index has not decided, the cheap ones first.
    `any` rules of several conditions are always tested. The rules that apply are
    the same as `applying_rules` finds by testing every rule of a list.
    """

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.rules = sorted(rules, key=_in_order)
        self.index: dict[tuple[str, ...], _FieldIndex] = {}
        self.rest: list[tuple[CompiledCondition, ...]] = []  # per rule, the conditions left to test
        for position, rule in enumerate(self.rules):
            rest = rule.conditions
            if not rule.match_any or len(rule.conditions) == 1:  # one condition: any is all
                rest = self._add(1 << position, rule.conditions)
            self.rest.append(tuple(sorted(rest, key=lambda condition: _COST.get(condition.op, 0))))
        self.every = (1 << len(self.rules)) - 1

    def _add(self, bit: int, conditions: tuple[CompiledCondition, ...]) -> list[CompiledCondition]:
        """Index what a rule's conditions demand; return the conditions the index does not decide.
        The deciding demands go first: a rule has at most one demand per field."""
        deciding = sorted(conditions, key=lambda condition: condition.op not in (Operator.EQ, Operator.IN))
        return [
            condition
            for condition in deciding
            if not self.index.setdefault(condition.path, _FieldIndex()).demand(condition, bit)
        ]

    def __iter__(self):
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def applying(
        self, body: dict, *, item_id: Any, integration_slug: str, fields: dict | None = None
    ) -> list[CompiledRule]:
        """The rules that apply to a submission, as `applying_rules` gives them; the fields
        looked up on the way are left in `fields`, by path."""
        values: dict[tuple[str, ...], Any] = {} if fields is None else fields
        failed = 0  # the rules with a demand the submission does not meet
        for path, entry in self.index.items():
            actual = values[path] = resolve(body, path, integration_slug)
            if actual is MISSING:
                failed |= entry.demanding
            elif entry.by_value or entry.containing:  # (a present field meets every presence demand)
                failed |= entry.demanding & ~entry.met(actual)
        candidates = self.every & ~failed
        applied, sample_key = [], None
        while candidates:  # lowest bit first: in priority order
            lowest = candidates & -candidates
            candidates ^= lowest
            position = lowest.bit_length() - 1
            rule, rest = self.rules[position], self.rest[position]
            if rest and not _conditions_hold(rest, rule.match_any, values, body, integration_slug):
                continue
            if rule.sample_rate < 1:
                sample_key = sample_key or _item_key(item_id)
                if not rule.samples_in(sample_key):
                    continue
            applied.append(rule)
        return applied


# The order a rule's remaining conditions are tested in: the cheap ones first, so a rule
# that fails usually fails before a pattern runs (the answer is the same in any order).
_COST = {Operator.CONTAINS: 1, Operator.CONTAINS_ANY: 2, Operator.MATCHES: 3}


def _conditions_hold(
    conditions: tuple[CompiledCondition, ...], match_any: bool, values: dict, body: dict, slug: str
) -> bool:
    """Whether `conditions` hold together (any or all), with each field looked up once per
    submission in `values`; `CompiledCondition.holds_for`, inlined for the hot loop."""
    for condition in conditions:
        actual = values.get(condition.path, _UNSEEN)
        if actual is _UNSEEN:
            actual = values[condition.path] = resolve(body, condition.path, slug)
        if actual is MISSING:
            held = condition.on_missing
        else:
            try:
                held = condition.check(actual)
            except Exception:  # as in holds_for
                logger.exception("Gate condition %s %s failed on a submission", condition.field, condition.op)
                held = False
        if held:
            if match_any:
                return True
        elif not match_any:
            return False
    return not match_any


def apply_rules(
    rules: Iterable[CompiledRule], submission: Any, *, item_id: Any, integration_slug: str
) -> GateDecision:
    """Apply compiled rules: every enforced match is recorded, the strongest outcome wins."""
    if isinstance(rules, RuleSet):
        # The snapshots reuse the fields that matching looked up.
        body, fields = submission if isinstance(submission, dict) else {}, {}
        applied = rules.applying(body, item_id=item_id, integration_slug=integration_slug, fields=fields)
        return decide(applied, body, integration_slug=integration_slug, fields=fields)
    applied = applying_rules(rules, submission, item_id=item_id, integration_slug=integration_slug)
    return decide(applied, submission, integration_slug=integration_slug)


def applying_rules(
    rules: Iterable[CompiledRule], submission: Any, *, item_id: Any, integration_slug: str
) -> list[CompiledRule]:
    """The rules that take part in the decision on a submission (matched, and sampled in), in
    priority order. Apart from `decide` so a backtest tests each rule once for two rule sets."""
    body = submission if isinstance(submission, dict) else {}
    if isinstance(rules, RuleSet):
        return rules.applying(body, item_id=item_id, integration_slug=integration_slug)
    key = None
    applied = []
    for rule in sorted(rules, key=_in_order):
        if not rule.matches(body, integration_slug):
            continue
        if rule.sample_rate < 1:
            key = key or _item_key(item_id)
            if not rule.samples_in(key):
                continue
        applied.append(rule)
    return applied


def decide(
    applied: Iterable[CompiledRule],
    submission: Any,
    *,
    integration_slug: str,
    snapshots: bool = True,
    fields: dict | None = None,
) -> GateDecision:
    """The decision once `applied` (see `applying_rules`) is known: outcome precedence and queue.

    Without `snapshots`, matched_rules and shadow_matches stay empty (a backtest needs
    only the outcome and the queue). `fields`: see `CompiledRule.snapshot_for`.
    """
    body = submission if isinstance(submission, dict) else {}
    ordered = sorted(applied, key=lambda r: (r.priority, r.name))
    enforced = [r for r in ordered if r.enforced]
    shadow = (
        [r.snapshot_for(body, integration_slug, fields) for r in ordered if not r.enforced]
        if snapshots
        else []
    )
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
        matched_rules=[r.snapshot_for(body, integration_slug, fields) for r in enforced] if snapshots else [],
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
        rules = cached.rules if cached is not None and cached.revision == revision else RuleSet(load_rules())
        cached = _Cached(revision, rules, now)
        with _lock:
            _cache = cached
    return apply_rules(cached.rules, submission, item_id=item_id, integration_slug=integration_slug)


@dataclass(frozen=True)
class _Cached:
    revision: tuple
    rules: Iterable[CompiledRule]  # a RuleSet (any iterable of compiled rules works)
    checked_at: float
