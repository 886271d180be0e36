"""Policy as data: queues, reason codes and gate rules as one JSON document.

The format is that of `demo/policy.json`: top-level `queues`, `reason_codes`
and `rules`, upserted by queue slug, reason-code `code` and rule `name`. An
import never deletes what the file leaves out.

`import_policy` runs in one transaction, in two steps:

1. Plan: check every entry (keys and types, references between entries, then the
   models' own validation) and work out what differs from the database. Any
   problem raises `PolicyError` with every error and its location, such as
   ``rules[3].conditions[0].value: ...``, before anything is written.
2. Apply: save only what differs, with the history change reason
   "import_policy", and give every changed rule a new version. Queues are saved
   before their escalation links, so a queue may name one defined later in the file.

Importing the same file twice saves nothing the second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from policies.models import GateCondition, GateRule
from policies.services import record_new_rule, record_rule_change
from reviews.models import Queue, ReasonCode

CHANGE_REASON = "import_policy"
SECTIONS = ("queues", "reason_codes", "rules")
KIND_LABELS = {"queues": "queue", "reason_codes": "reason code", "rules": "rule"}

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"


class PolicyError(Exception):
    """The policy file is invalid; `errors` says where and why. Nothing was written."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


# --- The format ---------------------------------------------------------------------

REQUIRED = object()


@dataclass(frozen=True)
class Key:
    type: str
    default: Any = REQUIRED


TYPES = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "number": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "str_list": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "str_or_null": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "any": (lambda v: True, "any value"),
}

QUEUE_KEYS = {
    "slug": Key("str"),
    "name": Key("str"),
    "description": Key("str", ""),
    "sla_minutes": Key("int"),
    "required_approvals": Key("int"),
    "checklist": Key("str_list", ()),
    "reviewer_groups": Key("str_list", ()),
    "escalation_queue": Key("str_or_null", None),
    "timeout_outcome": Key("str"),
    "bulk_approve_allowed": Key("bool", False),
}
QUEUE_FIELDS = (
    "name",
    "description",
    "sla_minutes",
    "required_approvals",
    "checklist",
    "timeout_outcome",
    "bulk_approve_allowed",
)

REASON_CODE_KEYS = {
    "code": Key("str"),
    "label": Key("str"),
    "applies_to": Key("str_list"),
    "creates_backlog_item": Key("bool", False),
    "active": Key("bool", True),
}
REASON_CODE_FIELDS = ("label", "applies_to", "creates_backlog_item", "active")

RULE_KEYS = {
    "name": Key("str"),
    "description": Key("str", ""),
    "enabled": Key("bool"),
    "priority": Key("int"),
    "match": Key("str"),
    "outcome": Key("str"),
    "queue": Key("str_or_null", None),
    "risk_level": Key("str"),
    "mode": Key("str", "enforce"),
    "sample_rate": Key("number", 1.0),
    "conditions": Key("list"),
}
RULE_FIELDS = ("description", "enabled", "priority", "match", "outcome", "risk_level", "mode", "sample_rate")

CONDITION_KEYS = {"field": Key("str"), "op": Key("str"), "value": Key("any", None)}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _read_entry(raw: Any, keys: dict[str, Key], loc: str, errors: list[str]) -> dict | None:
    """The entry's values with defaults filled in, or None (and errors) if its shape is wrong."""
    if not isinstance(raw, dict):
        errors.append(f"{loc}: expected an object, got {_json_type(raw)}")
        return None
    ok = True
    for name in raw:
        if name not in keys:
            errors.append(f"{loc}.{name}: unknown key (expected {', '.join(keys)})")
            ok = False
    values = {}
    for name, key in keys.items():
        if name not in raw:
            if key.default is REQUIRED:
                errors.append(f"{loc}.{name}: required")
                ok = False
            else:
                values[name] = list(key.default) if isinstance(key.default, tuple) else key.default
            continue
        check, expected = TYPES[key.type]
        if not check(raw[name]):
            errors.append(f"{loc}.{name}: expected {expected}, got {_json_type(raw[name])}")
            ok = False
        values[name] = raw[name]
    return values if ok else None


def _add_validation_error(errors: list[str], loc: str, exc: ValidationError, *, skip: tuple = ()) -> None:
    if not hasattr(exc, "error_dict"):
        errors.extend(f"{loc}: {message}" for message in exc.messages)
        return
    for name, messages in exc.message_dict.items():
        if name in skip:
            continue
        where = loc if name == NON_FIELD_ERRORS else f"{loc}.{name}"
        errors.extend(f"{where}: {message}" for message in messages)


def _canonical(value: Any) -> str:
    # Compared as JSON, not with ==: in Python True == 1 == 1.0, but a condition
    # comparing with true is not one comparing with 1.
    return json.dumps(value, sort_keys=True)


# --- The report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    kind: str  # "queues", "reason_codes" or "rules"
    key: str
    status: str  # created, updated or unchanged
    fields: tuple[str, ...] = ()

    def line(self) -> str:
        key = f'"{self.key}"' if self.kind == "rules" else self.key
        detail = f" ({', '.join(self.fields)})" if self.status == UPDATED else ""
        return f"{KIND_LABELS[self.kind]} {key}: {self.status}{detail}"


@dataclass
class ImportReport:
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False

    def _by_kind(self, status: str) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {kind: [] for kind in SECTIONS}
        for change in self.changes:
            if change.status == status:
                grouped[change.kind].append(change)
        return grouped

    @property
    def created(self) -> dict[str, list[str]]:
        """Keys created, per kind: ``{"queues": ["payments"], "reason_codes": [], "rules": []}``."""
        return {kind: [c.key for c in changes] for kind, changes in self._by_kind(CREATED).items()}

    @property
    def updated(self) -> dict[str, dict[str, list[str]]]:
        """Keys updated with the fields that changed, per kind."""
        return {
            kind: {c.key: list(c.fields) for c in changes} for kind, changes in self._by_kind(UPDATED).items()
        }

    @property
    def unchanged(self) -> dict[str, list[str]]:
        return {kind: [c.key for c in changes] for kind, changes in self._by_kind(UNCHANGED).items()}

    @property
    def changed(self) -> bool:
        return any(change.status != UNCHANGED for change in self.changes)

    def summary(self) -> str:
        counts = {
            status: sum(c.status == status for c in self.changes) for status in (CREATED, UPDATED, UNCHANGED)
        }
        text = f"{counts[CREATED]} created, {counts[UPDATED]} updated, {counts[UNCHANGED]} unchanged"
        return f"Dry run, nothing written: {text}" if self.dry_run else text

    def lines(self, *, verbose: bool = False) -> list[str]:
        """One line per created or updated object (every object when verbose), then the summary."""
        shown = [c.line() for c in self.changes if verbose or c.status != UNCHANGED]
        return [*shown, self.summary()]


# --- Import: plan -------------------------------------------------------------------


@dataclass
class _QueuePlan:
    queue: Queue
    status: str
    changed: list[str]
    groups: list[str] | None  # reviewer group names to set, or None to leave them
    escalation: str | None  # slug


@dataclass
class _ReasonCodePlan:
    reason_code: ReasonCode
    status: str
    changed: list[str]


@dataclass
class _RulePlan:
    rule: GateRule
    status: str
    changed: list[str]
    queue: str | None  # slug
    conditions: list[tuple[str, str, Any]] | None  # replacement list, or None to leave them


@dataclass
class _Plan:
    queues: list[_QueuePlan]
    reason_codes: list[_ReasonCodePlan]
    rules: list[_RulePlan]

    def report(self, *, dry_run: bool) -> ImportReport:
        changes = [Change("queues", p.queue.slug, p.status, tuple(p.changed)) for p in self.queues]
        changes += [
            Change("reason_codes", p.reason_code.code, p.status, tuple(p.changed)) for p in self.reason_codes
        ]
        changes += [Change("rules", p.rule.name, p.status, tuple(p.changed)) for p in self.rules]
        return ImportReport(changes=changes, dry_run=dry_run)


def _status(created: bool, changed: list[str]) -> str:
    if created:
        return CREATED
    return UPDATED if changed else UNCHANGED


def _unique_entries(section: str, key: str, raw_entries: list, keys: dict, errors: list[str]):
    """(location, values) of each well-formed entry; duplicates of `key` are errors."""
    seen: dict[str, str] = {}
    for index, raw in enumerate(raw_entries):
        loc = f"{section}[{index}]"
        values = _read_entry(raw, keys, loc, errors)
        if values is None:
            continue
        if values[key] in seen:
            errors.append(f"{loc}.{key}: {values[key]!r} appears twice (also {seen[values[key]]})")
            continue
        seen[values[key]] = loc
        yield loc, values


def _plan_queues(
    raw_entries: list, known: set[str], existing: dict[str, Queue], errors: list[str]
) -> list[_QueuePlan]:
    group_name_length = Group._meta.get_field("name").max_length
    plans = []
    for loc, values in _unique_entries("queues", "slug", raw_entries, QUEUE_KEYS, errors):
        slug = values["slug"]
        queue = existing.get(slug) or Queue(slug=slug)
        created = queue.pk is None
        changed = []
        for name in QUEUE_FIELDS:
            if created or getattr(queue, name) != values[name]:
                setattr(queue, name, values[name])
                changed.append(name)

        groups = list(dict.fromkeys(values["reviewer_groups"]))
        for index, name in enumerate(groups):
            if not name.strip() or len(name) > group_name_length:
                errors.append(
                    f"{loc}.reviewer_groups[{index}]: a group name has 1 to {group_name_length} characters"
                )
        current_groups = set() if created else {group.name for group in queue.reviewer_groups.all()}
        if set(groups) != current_groups:
            changed.append("reviewer_groups")

        escalation = values["escalation_queue"]
        if escalation is not None and escalation not in known:
            errors.append(f"{loc}.escalation_queue: unknown queue {escalation!r}")
        elif escalation == slug:
            errors.append(f"{loc}.escalation_queue: a queue cannot escalate to itself")
        current_escalation = queue.escalation_queue.slug if queue.escalation_queue_id else None
        if escalation != current_escalation:
            changed.append("escalation_queue")

        try:
            # The escalation link is checked above: its target may not exist yet.
            queue.full_clean(exclude=["escalation_queue"])
        except ValidationError as exc:
            _add_validation_error(errors, loc, exc)
        plans.append(
            _QueuePlan(
                queue=queue,
                status=_status(created, changed),
                changed=[] if created else changed,
                groups=groups if "reviewer_groups" in changed else None,
                escalation=escalation,
            )
        )
    return plans


def _plan_reason_codes(raw_entries: list, errors: list[str]) -> list[_ReasonCodePlan]:
    existing = {rc.code: rc for rc in ReasonCode.objects.all()}
    plans = []
    for loc, values in _unique_entries("reason_codes", "code", raw_entries, REASON_CODE_KEYS, errors):
        reason_code = existing.get(values["code"]) or ReasonCode(code=values["code"])
        created = reason_code.pk is None
        changed = []
        for name in REASON_CODE_FIELDS:
            if created or getattr(reason_code, name) != values[name]:
                setattr(reason_code, name, values[name])
                changed.append(name)
        try:
            reason_code.full_clean()
        except ValidationError as exc:
            _add_validation_error(errors, loc, exc)
        plans.append(_ReasonCodePlan(reason_code, _status(created, changed), [] if created else changed))
    return plans


def _plan_conditions(raw: list, loc: str, errors: list[str]) -> list[tuple[str, str, Any]]:
    conditions = []
    for index, raw_condition in enumerate(raw):
        where = f"{loc}.conditions[{index}]"
        values = _read_entry(raw_condition, CONDITION_KEYS, where, errors)
        if values is None:
            continue
        condition = GateCondition(
            field=values["field"], op=values["op"], value=values["value"], position=index
        )
        try:
            # Runs validate_field_path, the operator choices and validate_condition_value.
            condition.full_clean(exclude=["rule"])
        except ValidationError as exc:
            _add_validation_error(errors, where, exc)
        conditions.append((values["field"], values["op"], values["value"]))
    return conditions


def _plan_rules(
    raw_entries: list, known: set[str], queues: dict[str, Queue], errors: list[str]
) -> list[_RulePlan]:
    existing = {
        rule.name: rule for rule in GateRule.objects.select_related("queue").prefetch_related("conditions")
    }
    plans = []
    for loc, values in _unique_entries("rules", "name", raw_entries, RULE_KEYS, errors):
        rule = existing.get(values["name"]) or GateRule(name=values["name"])
        created = rule.pk is None
        values["sample_rate"] = float(values["sample_rate"])
        changed = []
        for name in RULE_FIELDS:
            if created or getattr(rule, name) != values[name]:
                setattr(rule, name, values[name])
                changed.append(name)

        slug = values["queue"]
        if slug is not None and slug not in known:
            errors.append(f"{loc}.queue: unknown queue {slug!r}")
        current_slug = rule.queue.slug if rule.queue_id else None
        if created or slug != current_slug:
            rule.queue = queues.get(slug) if slug is not None else None
            changed.append("queue")

        conditions = _plan_conditions(values["conditions"], loc, errors)
        current = [(c.field, c.op, _canonical(c.value)) for c in ([] if created else rule.conditions.all())]
        if [(f, op, _canonical(value)) for f, op, value in conditions] != current:
            changed.append("conditions")

        try:
            rule.full_clean(exclude=["queue"])
        except ValidationError as exc:
            # A queue this import creates has no id yet, which clean() would read as "no queue".
            pending_queue = slug is not None and (rule.queue is None or rule.queue.pk is None)
            _add_validation_error(errors, loc, exc, skip=("queue",) if pending_queue else ())
        plans.append(
            _RulePlan(
                rule=rule,
                status=_status(created, changed),
                changed=[] if created else changed,
                queue=slug,
                conditions=conditions if "conditions" in changed else None,
            )
        )
    return plans


def _plan(data: Any) -> _Plan:
    if not isinstance(data, dict):
        raise PolicyError([f"expected an object with {', '.join(SECTIONS)}, got {_json_type(data)}"])
    errors: list[str] = []
    for name in data:
        if name not in SECTIONS:
            errors.append(f"{name}: unknown key (expected {', '.join(SECTIONS)})")
    sections = {}
    for name in SECTIONS:
        sections[name] = data.get(name, [])
        if not isinstance(sections[name], list):
            errors.append(f"{name}: expected a list, got {_json_type(sections[name])}")
            sections[name] = []

    existing_queues = {
        q.slug: q
        for q in Queue.objects.select_related("escalation_queue").prefetch_related("reviewer_groups")
    }
    # Slugs of every queue entry, even malformed ones, so a broken queue yields its
    # own errors rather than "unknown queue" everywhere it is named.
    known = set(existing_queues) | {
        raw["slug"]
        for raw in sections["queues"]
        if isinstance(raw, dict) and isinstance(raw.get("slug"), str)
    }
    queue_plans = _plan_queues(sections["queues"], known, existing_queues, errors)
    # Rules point at the planned queue objects, new ones included, so applying saves them first.
    queues = {**existing_queues, **{p.queue.slug: p.queue for p in queue_plans}}
    plan = _Plan(
        queues=queue_plans,
        reason_codes=_plan_reason_codes(sections["reason_codes"], errors),
        rules=_plan_rules(sections["rules"], known, queues, errors),
    )
    if errors:
        raise PolicyError(errors)
    return plan


# --- Import: apply ------------------------------------------------------------------


def _save(obj, update_fields: list[str] | None = None, *, history: bool = True) -> None:
    obj._change_reason = CHANGE_REASON
    if update_fields is not None and any(f.name == "updated_at" for f in obj._meta.concrete_fields):
        update_fields = [*update_fields, "updated_at"]
    if history:
        obj.save(update_fields=update_fields)
    else:
        obj.save_without_historical_record(update_fields=update_fields)


def _apply_queues(plans: list[_QueuePlan]) -> None:
    by_slug = {q.slug: q for q in Queue.objects.all()}
    by_slug.update({p.queue.slug: p.queue for p in plans})
    deferred = []
    for p in plans:
        queue = p.queue
        fields = [name for name in p.changed if name in QUEUE_FIELDS]
        if p.status == CREATED or "escalation_queue" in p.changed:
            target = by_slug[p.escalation] if p.escalation is not None else None
            if target is None or target.pk is not None:
                queue.escalation_queue = target
                fields.append("escalation_queue")
            else:
                deferred.append(p)  # a queue defined later in the file: linked once it exists
        if p.status == CREATED:
            _save(queue)
        elif fields:
            _save(queue, update_fields=fields)
        if p.groups is not None:
            queue._change_reason = CHANGE_REASON
            queue.reviewer_groups.set([Group.objects.get_or_create(name=name)[0] for name in p.groups])
    for p in deferred:
        p.queue.escalation_queue = by_slug[p.escalation]
        _save(p.queue, update_fields=["escalation_queue"])


def _apply_reason_codes(plans: list[_ReasonCodePlan]) -> None:
    for p in plans:
        if p.status == CREATED:
            _save(p.reason_code)
        elif p.changed:
            _save(p.reason_code, update_fields=p.changed)


def _apply_rules(plans: list[_RulePlan], queues: dict[str, Queue]) -> None:
    for p in plans:
        rule = p.rule
        if p.status == UNCHANGED:
            continue
        if "queue" in p.changed or p.status == CREATED:
            # Re-assigned now that new queues have ids.
            rule.queue = queues[p.queue] if p.queue is not None else None
        # The rule's version (its history row) is written after its conditions.
        if p.status == CREATED:
            _save(rule, history=False)
        else:
            fields = [name for name in p.changed if name != "conditions"]
            if fields:
                _save(rule, update_fields=fields, history=False)
        if p.conditions is not None:
            for condition in rule.conditions.all() if p.status != CREATED else []:
                condition._change_reason = CHANGE_REASON
                condition.delete()
            for position, (path, op, value) in enumerate(p.conditions):
                _save(GateCondition(rule=rule, field=path, op=op, value=value, position=position))
        rule._change_reason = CHANGE_REASON
        if p.status == CREATED:
            record_new_rule(rule=rule)
        else:
            record_rule_change(rule=rule)


def import_policy(data: dict, *, dry_run: bool = False) -> ImportReport:
    """Create or update the queues, reason codes and rules in `data`; delete nothing.

    Raises PolicyError, having written nothing, when any part of `data` is invalid.
    With `dry_run` the report says what would change and nothing is written.
    """
    with transaction.atomic():
        plan = _plan(data)
        report = plan.report(dry_run=dry_run)
        if not dry_run:
            _apply_queues(plan.queues)
            _apply_reason_codes(plan.reason_codes)
            queues = {q.slug: q for q in Queue.objects.all()}
            _apply_rules(plan.rules, queues)
    return report


# --- Export -------------------------------------------------------------------------


def export_policy() -> dict:
    """Every queue, reason code and rule in the import format, in a stable order."""
    queues = (
        Queue.objects.select_related("escalation_queue").prefetch_related("reviewer_groups").order_by("slug")
    )
    reason_codes = ReasonCode.objects.order_by("code")
    rules = (
        GateRule.objects.select_related("queue").prefetch_related("conditions").order_by("priority", "name")
    )
    return {
        "queues": [
            {
                "slug": q.slug,
                "name": q.name,
                "description": q.description,
                "sla_minutes": q.sla_minutes,
                "required_approvals": q.required_approvals,
                "checklist": list(q.checklist),
                "reviewer_groups": sorted(group.name for group in q.reviewer_groups.all()),
                "escalation_queue": q.escalation_queue.slug if q.escalation_queue_id else None,
                "timeout_outcome": q.timeout_outcome,
                "bulk_approve_allowed": q.bulk_approve_allowed,
            }
            for q in queues
        ],
        "reason_codes": [
            {
                "code": rc.code,
                "label": rc.label,
                "applies_to": list(rc.applies_to),
                "creates_backlog_item": rc.creates_backlog_item,
                "active": rc.active,
            }
            for rc in reason_codes
        ],
        "rules": [
            {
                "name": rule.name,
                "description": rule.description,
                "enabled": rule.enabled,
                "priority": rule.priority,
                "match": rule.match,
                "outcome": rule.outcome,
                "queue": rule.queue.slug if rule.queue_id else None,
                "risk_level": rule.risk_level,
                "mode": rule.mode,
                "sample_rate": rule.sample_rate,
                "conditions": [_export_condition(c) for c in rule.conditions.all()],
            }
            for rule in rules
        ],
    }


def _export_condition(condition: GateCondition) -> dict:
    exported = {"field": condition.field, "op": condition.op}
    if condition.value is not None:  # exists and not_exists take no value
        exported["value"] = condition.value
    return exported
