"""One item's whole story, in order: `item_timeline(item)` (SPEC section 10).

Submission, the gate's result, every history row of the item (claims, releases,
escalations, SLA events, the final state, execution), each decision, the outbox
messages and every delivery attempt, incidents and the backlog items the item's
decisions fed: one list of `TimelineEvent`, oldest first, each with its actor and
the fields it changed in words.

The number of queries is fixed, whatever the number of events: one per source
(`select_related` where a row needs its neighbours), then one for the usernames
and one for the queue names the rows refer to by id, and one for the rule
versions the gate snapshots name. Nothing below may query per row.

Values here are plain strings, never markup; the admin escapes them and marks
hidden characters (`reviews.admin.timeline`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from reviews.audit import actor as actor_of
from reviews.audit import changes, event_type, source_for
from reviews.models import (
    ActorKind,
    BacklogItem,
    DecisionAction,
    DeliveryAttempt,
    OutboxMessage,
    Queue,
    ReasonCode,
    ReviewItem,
)

# A value's first PREVIEW_CHARS are shown; the rest, up to INCLUDED_CHARS, is one click
# away on the page; past that, the page says how much more there is and where it is.
PREVIEW_CHARS = 300
INCLUDED_CHARS = 50_000

NONE = "(none)"
UNATTRIBUTED = "unattributed"

# Item columns that change with every save, or repeat the event's own time.
QUIET_ITEM_FIELDS = {"updated_at", "claimed_at"}
# Item columns worth their new value only: when cleared, "claimed by → (none)" says it.
NEW_VALUE_ONLY_ITEM_FIELDS = {"claim_expires_at"}

# Event kinds, in the order events at the same instant are told.
KIND_ORDER = [
    "submitted",
    "gated",
    "decision",
    "backlog",
    "claimed",
    "released",
    "claim expired",
    "escalated",
    "sla",
    "state change",
    "execution",
    "webhook",
    "webhook attempt",
    "incident",
]

OUTCOME_WORDS = {
    "block": "Block",
    "review": "Hold for review",
    "spot_check": "Pass, then spot-check",
    "auto_approve": "Auto-approve",
}
OPERATOR_WORDS = {
    "eq": "equals",
    "ne": "does not equal",
    "lt": "is less than",
    "lte": "is at most",
    "gt": "is greater than",
    "gte": "is at least",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "contains_any": "contains any of",
    "exists": "is present",
    "not_exists": "is missing",
    "matches": "matches the pattern",
}
ACTOR_KINDS = dict(ActorKind.choices)


# --- What an event is made of ------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A value as text. `text` is what the page holds (all of it up to INCLUDED_CHARS);
    `length` is the whole value's length; `url` says where the whole of a cut value is."""

    text: str
    length: int = 0
    is_code: bool = False
    empty: bool = False
    url: str = ""

    @property
    def is_long(self) -> bool:
        return self.length > PREVIEW_CHARS

    @property
    def preview(self) -> str:
        return self.text[:PREVIEW_CHARS]

    @property
    def cut(self) -> bool:
        """Part of the value is not on the page at all (it says so, with `url`)."""
        return self.length > len(self.text)


@dataclass(frozen=True)
class Detail:
    """One line of an event: `label: value`, or a change `label: old → value`, or a
    list (`entries`: conditions that fired, checklist answers)."""

    label: str
    value: Value | None = None
    old: Value | None = None
    entries: tuple[Value, ...] = ()

    @property
    def is_change(self) -> bool:
        return self.old is not None


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    perm: str = ""  # the permission a reader needs for the link to be worth showing


@dataclass
class TimelineEvent:
    at: datetime
    kind: str
    actor: dict  # {"kind": "user" | "integration" | "system", "name": ...}
    title: str
    details: list[Detail] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    anchor: str = ""  # an id on the page (decisions are linked to from incidents)
    rank: int = 0  # order within the same instant

    @property
    def actor_label(self) -> str:
        name = self.actor.get("name") or UNATTRIBUTED
        return f"system:{name}" if self.actor.get("kind") == ActorKind.SYSTEM else name

    @property
    def actor_kind_label(self) -> str:
        return ACTOR_KINDS.get(self.actor.get("kind"), "System")

    @property
    def at_text(self) -> str:
        return exact_time(self.at)

    @property
    def at_iso(self) -> str:
        return timezone.localtime(self.at).isoformat(timespec="seconds")

    @property
    def css_kind(self) -> str:
        return self.kind.replace(" ", "-")


# --- Values in words ------------------------------------------------------------------------


def exact_time(value: datetime | None) -> str:
    """``2025-05-02 14:03:07 UTC``: to the second, in the site's time zone, named."""
    if value is None:
        return NONE
    local = timezone.localtime(value)
    offset = local.strftime("%z")
    zone = local.tzname() or ""
    if offset in ("+0000", "") and zone in ("UTC", ""):
        return f"{local:%Y-%m-%d %H:%M:%S} UTC"
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]} ({zone})"


def text_value(text: Any, *, is_code: bool = False, url: str = "") -> Value:
    if text is None or text == "":
        return Value(NONE, len(NONE), empty=True)
    text = str(text)
    return Value(text[:INCLUDED_CHARS], len(text), is_code=is_code, url=url)


def json_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return json.dumps(value, ensure_ascii=False, default=str)


def json_value(value: Any, *, url: str = "") -> Value:
    if value is None:
        return text_value(None)
    if isinstance(value, str):
        return text_value(value, url=url)
    return text_value(json_text(value), is_code=isinstance(value, dict | list), url=url)


def short_json(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    seconds = int(seconds)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [(hours, "h"), (minutes, "min"), (seconds, "s")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n) or "0 s"


def condition_in_words(fired: Any) -> str:
    """``signals.confidence is less than 0.7: it was 0.62``: a condition that fired, and why."""
    if not isinstance(fired, dict):
        return short_json(fired)
    path = str(fired.get("field", "?"))[:200]
    op = str(fired.get("op", ""))
    words = OPERATOR_WORDS.get(op, op)
    if op in ("exists", "not_exists"):
        return f"{path} {words}"
    actual = short_json(fired.get("actual")) if fired.get("present", True) else "missing"
    return f"{path} {words} {short_json(fired.get('value'))}: it was {actual}"


def url_for(name: str, *args) -> str:
    try:
        return reverse(f"admin:{name}", args=args)
    except NoReverseMatch:
        return ""


# --- Reading every source once ------------------------------------------------------------------


class Sources:
    """Every row the timeline needs, each source read once, and the names rows refer to."""

    def __init__(self, item: ReviewItem):
        self.item = item
        self.item_source = source_for("reviews.reviewitem")
        self.item_rows = list(
            self.item_source.history.objects.filter(id=item.pk).order_by("history_date", "history_id")
        )
        self.decisions = list(item.decisions.select_related("reviewer", "queue").order_by("created_at", "pk"))
        self.messages = {m.pk: m for m in item.outbox_messages.order_by("created_at", "pk")}
        self.message_source = source_for("reviews.outboxmessage")
        self.message_rows = list(
            self.message_source.history.objects.filter(item_id=item.pk).order_by("history_date", "history_id")
        )
        self.attempts = list(
            DeliveryAttempt.objects.filter(message__item=item).order_by("started_at", "message_id", "number")
        )
        attempt_history = source_for("reviews.deliveryattempt").history
        self.attempt_actors = {
            row.id: actor_of(row)
            for row in attempt_history.objects.filter(message__item=item.pk, history_type="+").only(
                "id", "history_actor", "history_actor_kind"
            )
        }
        self.incident_source = source_for("reviews.incident")
        self.incident_rows = list(
            self.incident_source.history.objects.filter(item_id=item.pk).order_by(
                "history_date", "history_id"
            )
        )
        self.backlog_links = list(
            BacklogItem.decisions.through.objects.filter(decision__item=item)
            .select_related("backlogitem__reason_code", "backlogitem__queue")
            .order_by("decision_id", "backlogitem_id")
        )
        self.backlog_source = source_for("reviews.backlogitem")
        backlog_ids = {link.backlogitem_id for link in self.backlog_links}
        self.backlog_rows = (
            list(
                self.backlog_source.history.objects.filter(id__in=backlog_ids).order_by(
                    "history_date", "history_id"
                )
            )
            if backlog_ids
            else []
        )
        self.spot_checks = list(
            ReviewItem.objects.filter(spot_check_of=item)
            .values("pk", "status", "queue__name")
            .order_by("created_at")
        )
        self.users = self._usernames()
        self.queues = self._queue_names()
        self.codes = self._code_labels()
        self.rule_versions = self._rule_versions()

    def _usernames(self) -> dict[int, str]:
        ids = {row.claimed_by_id for row in self.item_rows if row.claimed_by_id}
        ids |= {row.reported_by_id for row in self.incident_rows if row.reported_by_id}
        if not ids:
            return {}
        users = get_user_model().objects.filter(pk__in=ids)
        return {pk: name for pk, name in users.values_list("pk", get_user_model().USERNAME_FIELD)}

    def _queue_names(self) -> dict[int, str]:
        ids = {row.queue_id for row in self.item_rows if row.queue_id}
        ids |= {row.queue_id for row in self.backlog_rows if row.queue_id}
        if not ids:
            return {}
        return dict(Queue.objects.filter(pk__in=ids).values_list("pk", "name"))

    def _code_labels(self) -> dict[str, str]:
        codes = {code for d in self.decisions for code in (d.cited_codes or []) if isinstance(code, str)}
        if not codes:
            return {}
        return dict(ReasonCode.objects.filter(code__in=codes).values_list("code", "label"))

    def _rule_versions(self) -> dict[tuple[int, int], int]:
        """(rule id, version) → the history id of that version of the rule."""
        wanted = set()
        for snap in [*(self.item.matched_rules or []), *(self.item.shadow_matches or [])]:
            if (
                isinstance(snap, dict)
                and isinstance(snap.get("id"), int)
                and isinstance(snap.get("version"), int)
            ):
                wanted.add((snap["id"], snap["version"]))
        source = source_for("policies.gaterule")
        if not wanted or source is None:
            return {}
        match = Q()
        for rule_id, version in wanted:
            match |= Q(id=rule_id, version=version)
        rows = source.history.objects.filter(match).order_by("history_date", "history_id")
        found: dict[tuple[int, int], int] = {}
        for rule_id, version, history_id in rows.values_list("id", "version", "history_id"):
            found.setdefault((rule_id, version), history_id)  # the row that made the version
        return found

    # Names of what rows refer to by id ------------------------------------------------

    def username(self, user_id: int | None) -> str:
        if user_id is None:
            return NONE
        return self.users.get(user_id, f"user #{user_id}")

    def queue_name(self, queue_id: int | None) -> str:
        if queue_id is None:
            return NONE
        return self.queues.get(queue_id, f"queue #{queue_id}")


# --- Item history in words ---------------------------------------------------------------------


def field_value(sources: Sources, model_field, value: Any) -> Value:
    """A history value as a compliance reader says it: names for ids, labels for codes,
    exact times, and a final version that is the submitted one said to be so."""
    name = model_field.name
    item = sources.item
    if value is None or value == "":
        return text_value(None)
    if name == "claimed_by" or name == "reported_by":
        return text_value(sources.username(value))
    if name == "queue":
        return text_value(sources.queue_name(value))
    if name == "integration" or name == "reported_by_integration":
        if value == item.integration_id:
            return text_value(f"{item.integration.name} ({item.integration.slug})")
        return text_value(f"integration #{value}")
    if isinstance(value, datetime):
        return text_value(exact_time(value))
    if isinstance(value, date):
        return text_value(value.isoformat())
    if isinstance(value, bool):
        return text_value("yes" if value else "no")
    if model_field.choices and isinstance(value, str | int):
        choices = dict(model_field.flatchoices)
        if value in choices:
            return text_value(str(choices[value]))
    if name in ("final_output", "executed_action", "final_action"):
        submitted = item.output if name == "final_output" else item.action
        if value == submitted:
            return text_value("as submitted (unchanged)")
    if isinstance(value, dict | list):
        return json_value(value)
    return text_value(value)


def change_details(
    sources: Sources, source, row, previous, *, quiet=frozenset(), new_only=frozenset()
) -> list[Detail]:
    """The fields `row` changed, in the model's own order, each as `label: old → new`.
    A value that changed below the second (a deadline set again) is shown once, as are
    the `new_only` fields (left out when cleared); the `quiet` ones are left out."""
    fields = {f.name: f for f in source.tracked_fields()}
    order = {f.name: index for index, f in enumerate(source.model._meta.concrete_fields)}
    changed = sorted(changes(source, row, previous), key=lambda name: order.get(name, len(order)))
    details = []
    for name in changed:
        if name in quiet or name not in fields:
            continue
        model_field = fields[name]
        old = field_value(sources, model_field, getattr(previous, model_field.attname, None))
        new = field_value(sources, model_field, getattr(row, model_field.attname))
        label = str(model_field.verbose_name).capitalize()
        if name in new_only:
            if not new.empty:
                details.append(Detail(label, new))
        elif old.text == new.text:
            details.append(Detail(label, new))
        else:
            details.append(Detail(label, new, old=old))
    return details


def item_row_event(sources: Sources, row, previous) -> TimelineEvent:
    """One change of the item: a claim, a release, an escalation, an SLA flag, a final
    state, an execution status, named from the reason the service gave."""
    reason = (row.history_change_reason or "").strip()
    who = actor_of(row)
    details = change_details(
        sources,
        sources.item_source,
        row,
        previous,
        quiet=QUIET_ITEM_FIELDS,
        new_only=NEW_VALUE_ONLY_ITEM_FIELDS,
    )
    before = previous.claimed_by_id if previous is not None else None
    holder = sources.username(before)
    kind, title = "state change", reason.capitalize() if reason else "Changed"

    if reason in ("claimed", "claim renewed"):
        kind = "claimed"
        verb = "Claim renewed" if reason == "claim renewed" else "Claimed"
        title = f"{verb} by {sources.username(row.claimed_by_id)}"
        if before and before != row.claimed_by_id:
            title += f" (the claim of {holder} had run out)"
    elif reason == "released":
        kind = "released"
        releaser = who["name"]
        title = (
            f"Claim released by {releaser}"
            if releaser == holder
            else f"Claim of {holder} released by {releaser}"
        )
    elif reason == "claim expired":
        kind, title = "claim expired", f"Claim of {holder} expired"
    elif reason == "first approval":
        title = "First approval recorded: waiting for a second, different reviewer"
        if before:
            title += f" (claim of {holder} ended)"
    elif reason.startswith("escalated to"):
        kind, title = "escalated", f"Escalated to {sources.queue_name(row.queue_id)}"
    elif reason.startswith("SLA timeout"):
        kind = "sla"
        if row.status == "expired":
            title = "SLA timeout: expired"
        else:
            title = f"SLA timeout: escalated to {sources.queue_name(row.queue_id)}"
    elif reason.startswith("at risk"):
        kind, title = "sla", f"SLA at risk{reason[len('at risk') :]}"
    elif reason.startswith("execution") or reason == "executed":
        kind = "execution"
        title = {
            "execution attempt started": "Execution attempt started",
            "executed": "Executed: the receiver acknowledged the action",
            "execution retried": "Execution queued again (retry)",
        }.get(reason, reason.capitalize())
    elif reason in ("approved", "edited", "rejected"):
        title = f"Final state: {row.get_status_display().lower()}"
        if reason == "rejected" and before:
            title += f" (claim of {holder} ended)"
    elif not reason and event_type(row) == "deleted":
        title = "Deleted"
    return TimelineEvent(row.history_date, kind, who, title, details, rank=rank_of(kind))


def rank_of(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


# --- Submission and the gate ------------------------------------------------------------------


def submission_events(sources: Sources) -> list[TimelineEvent]:
    item = sources.item
    first = sources.item_rows[0] if sources.item_rows else None
    at = first.history_date if first is not None else item.created_at
    who = actor_of(first) if first is not None else {"kind": ActorKind.SYSTEM, "name": UNATTRIBUTED}
    if who["name"] == UNATTRIBUTED:
        # Only integrations submit (`services.submit_item`); a row written outside a
        # request (a script, a test) names nobody, so name the submitter.
        who = {"kind": ActorKind.INTEGRATION, "name": item.integration.slug}
    integration = item.integration
    details = [
        Detail("Integration", text_value(f"{integration.name} ({integration.slug})")),
        Detail("External id", text_value(item.external_id)),
        Detail("Kind", text_value(item.get_kind_display())),
    ]
    if isinstance(item.action, dict) and isinstance(item.action.get("type"), str):
        details.append(Detail("Action type", text_value(item.action["type"])))
    details += [
        Detail(
            "Request fingerprint",
            text_value(item.request_hash, is_code=True)
            if item.request_hash
            else text_value("not recorded (sent without an idempotency key)"),
        ),
        Detail("Idempotency key", text_value(item.idempotency_key, is_code=True)),
        Detail("Item id", text_value(str(item.pk), is_code=True)),
    ]
    if item.callback_url:
        details.append(Detail("Callback URL", text_value(item.callback_url, is_code=True)))
    links = []
    if item.spot_check_of_id:
        details.append(Detail("Spot check of", text_value(str(item.spot_check_of_id), is_code=True)))
        links.append(
            Link(
                "Timeline of the checked item", url_for("reviews_reviewitem_timeline", item.spot_check_of_id)
            )
        )
    submitted = TimelineEvent(
        at, "submitted", who, f"Submitted by {integration.name}", details, links, rank=rank_of("submitted")
    )
    return [submitted, gate_event(sources, at, first)]


def gate_event(sources: Sources, at: datetime, first) -> TimelineEvent:
    item = sources.item
    reason = (first.history_change_reason or "") if first is not None else ""
    outcome = reason.split(":", 1)[1].strip() if reason.startswith("submitted:") else ""
    status = first.status if first is not None else item.status
    queue_name = sources.queue_name(first.queue_id) if first is not None else NONE
    if item.spot_check_of_id:
        title = f"Spot-check copy placed in {queue_name}"
    elif outcome == "review" or status == "pending":
        title = f"Gate: held for review in {queue_name}"
    elif outcome == "block" or status == "blocked":
        title = "Gate: blocked"
    elif outcome == "spot_check":
        title = "Gate: auto-approved, with a spot-check copy"
    else:
        title = "Gate: auto-approved"
    details = [Detail("Risk level", text_value(item.get_risk_level_display() if item.risk_level else ""))]
    if first is not None and first.queue_id:
        details += [
            Detail("Queue", text_value(queue_name)),
            Detail("Approvals required", text_value(first.required_approvals)),
            Detail("Due", text_value(exact_time(first.due_at))),
        ]
    links = []
    rules = item.matched_rules if isinstance(item.matched_rules, list) else []
    shadows = item.shadow_matches if isinstance(item.shadow_matches, list) else []
    if not rules:
        details.append(Detail("Matched rules", text_value("none: the gate's default applied")))
    for snap in rules:
        details.append(rule_detail(snap, "Rule"))
        links += rule_links(sources, snap)
    for snap in shadows:
        details.append(rule_detail(snap, "Shadow rule (recorded, not enforced)"))
        links += rule_links(sources, snap)
    for copy in sources.spot_checks:
        details.append(
            Detail(
                "Spot-check copy", text_value(f"{copy['pk']} in {copy['queue__name'] or NONE}", is_code=True)
            )
        )
        links.append(
            Link("Timeline of the spot-check copy", url_for("reviews_reviewitem_timeline", copy["pk"]))
        )
    who = {"kind": ActorKind.SYSTEM, "name": "gate"}
    return TimelineEvent(at, "gated", who, title, details, links, rank=rank_of("gated"))


def rule_detail(snap: Any, label: str) -> Detail:
    if not isinstance(snap, dict):
        return Detail(label, json_value(snap))
    name = str(snap.get("name") or f"rule {snap.get('id', '?')}")
    version = snap.get("version")
    parts = [OUTCOME_WORDS.get(str(snap.get("outcome")), str(snap.get("outcome") or ""))]
    if snap.get("queue"):
        parts.append(f"queue {snap['queue']}")
    if snap.get("risk_level"):
        parts.append(f"{snap['risk_level']} risk")
    fired = snap.get("fired") if isinstance(snap.get("fired"), list) else []
    entries = tuple(text_value(f"Fired: {condition_in_words(entry)}") for entry in fired)
    heading = f"{label}: {name}" + (f", version {version}" if version is not None else "")
    return Detail(heading[:500], text_value(" · ".join(p for p in parts if p)), entries=entries)


def rule_links(sources: Sources, snap: Any) -> list[Link]:
    if not isinstance(snap, dict) or not isinstance(snap.get("id"), int):
        return []
    name = str(snap.get("name") or snap["id"])[:80]
    history_id = sources.rule_versions.get((snap["id"], snap.get("version")))
    if history_id is not None:
        url = url_for("policies_gaterule_simple_history", snap["id"], history_id)
        return [Link(f"{name}, version {snap.get('version')}", url, "policies.view_gaterule")]
    return [
        Link(f"{name}: history", url_for("policies_gaterule_history", snap["id"]), "policies.view_gaterule")
    ]


# --- Decisions and the backlog ------------------------------------------------------------------


def decision_title(sources: Sources, decision) -> str:
    action = decision.action
    if action == DecisionAction.ESCALATE:
        # The target is not on the decision: the item's next move after it says where.
        moved = next(
            (
                row
                for row in sources.item_rows
                if row.history_date >= decision.created_at
                and (row.history_change_reason or "").startswith("escalated to")
            ),
            None,
        )
        target = f" to {sources.queue_name(moved.queue_id)}" if moved is not None else ""
        return f"Decision: escalate from {decision.queue.name}{target}"
    if action == DecisionAction.REJECT:
        return "Decision: reject (final)"
    verb = "approve" if action == DecisionAction.APPROVE else "edit and approve"
    if decision.is_final:
        return f"Decision: {verb} (final)"
    return f"Decision: {verb}, first of two approvals"


def decision_event(sources: Sources, decision) -> TimelineEvent:
    url = url_for("reviews_decision_change", decision.pk)
    details = [
        Detail("Reviewer", text_value(decision.reviewer.get_username())),
        Detail("Queue", text_value(decision.queue.name)),
        Detail("Round and step", text_value(f"round {decision.round}, step {decision.step}")),
        Detail("Justification", text_value(decision.justification, url=url)),
    ]
    codes = [code for code in decision.cited_codes or [] if isinstance(code, str)]
    details.append(
        Detail(
            "Reason codes",
            None if codes else text_value(None),
            entries=tuple(
                text_value(f"{code}: {sources.codes[code]}" if code in sources.codes else code)
                for code in codes
            ),
        )
    )
    details.append(checklist_detail(decision))
    if decision.edited_output is not None:
        details.append(Detail("Edited output", json_value(decision.edited_output, url=url)))
    if decision.edited_action is not None:
        details.append(Detail("Edited action", json_value(decision.edited_action, url=url)))
    if decision.seconds_spent is not None:
        details.append(Detail("Time on the item", text_value(duration_text(decision.seconds_spent))))
    who = {"kind": ActorKind.USER, "name": decision.reviewer.get_username()}
    links = [Link("Decision record", url, "reviews.view_decision")] if url else []
    return TimelineEvent(
        decision.created_at,
        "decision",
        who,
        decision_title(sources, decision),
        details,
        links,
        anchor=f"decision-{decision.pk}",
        rank=rank_of("decision"),
    )


def checklist_detail(decision) -> Detail:
    answers = decision.checklist if isinstance(decision.checklist, list) else []
    if not answers:
        return Detail("Checklist", text_value("not asked"))
    statements = decision.queue.checklist if isinstance(decision.queue.checklist, list) else []
    named = len(statements) == len(answers)
    entries = tuple(
        text_value(f"{'✓' if answer is True else '✗'} {statements[index] if named else f'item {index + 1}'}")
        for index, answer in enumerate(answers)
    )
    ticked = sum(1 for answer in answers if answer is True)
    return Detail("Checklist", text_value(f"{ticked} of {len(answers)} ticked"), entries=entries)


def backlog_events(sources: Sources) -> list[TimelineEvent]:
    decisions = {d.pk: d for d in sources.decisions}
    events = []
    first_link: dict[int, datetime] = {}
    for link in sources.backlog_links:
        decision = decisions.get(link.decision_id)
        backlog = link.backlogitem
        if decision is None:
            continue
        first_link[backlog.pk] = min(first_link.get(backlog.pk, decision.created_at), decision.created_at)
        details = [
            Detail("Backlog item", text_value(backlog.title)),
            Detail("Reason code", text_value(f"{backlog.reason_code.code}: {backlog.reason_code.label}")),
            Detail("Queue", text_value(backlog.queue.name if backlog.queue else None)),
            Detail("Status now", text_value(backlog.get_status_display())),
            Detail("Opened", text_value(exact_time(backlog.created_at))),
        ]
        url = url_for("reviews_backlogitem_change", backlog.pk)
        events.append(
            TimelineEvent(
                decision.created_at,
                "backlog",
                {"kind": ActorKind.USER, "name": decision.reviewer.get_username()},
                f"Decision added to the backlog item “{backlog.title[:120]}”",
                details,
                [Link("Backlog item", url, "reviews.view_backlogitem")] if url else [],
                rank=rank_of("backlog"),
            )
        )
    # Work on those backlog items since this item fed them: status, title, notes.
    previous: dict[int, Any] = {}
    for row in sources.backlog_rows:
        before = previous.get(row.id)
        previous[row.id] = row
        since = first_link.get(row.id)
        if before is None or since is None or row.history_date < since:
            continue
        details = change_details(sources, sources.backlog_source, row, before, quiet={"updated_at"})
        if not details:
            continue
        reason = (row.history_change_reason or "").strip()
        title = f"Backlog item “{row.title[:120]}” changed" + (f": {reason}" if reason else "")
        events.append(
            TimelineEvent(row.history_date, "backlog", actor_of(row), title, details, rank=rank_of("backlog"))
        )
    return events


# --- Outbox, deliveries, incidents ---------------------------------------------------------------


MESSAGE_WORDS = {
    OutboxMessage.Kind.EXECUTE: ("execution", "Action execution"),
    OutboxMessage.Kind.CALLBACK: ("webhook", "Callback"),
}


def message_events(sources: Sources) -> list[TimelineEvent]:
    events = []
    previous: dict[int, Any] = {}
    for row in sources.message_rows:
        before = previous.get(row.id)
        previous[row.id] = row
        kind, noun = MESSAGE_WORDS.get(row.kind, ("webhook", "Message"))
        if before is None:
            title = f"{noun} queued in the outbox"
            details = [
                Detail("Message id", text_value(row.msg_id, is_code=True)),
                Detail("URL", text_value(row.url or "none: handled by an executor", is_code=bool(row.url))),
                Detail("Attempts allowed", text_value(row.max_attempts)),
            ]
        else:
            details = change_details(sources, sources.message_source, row, before)
            if not details:
                continue
            title = {
                OutboxMessage.Status.DELIVERED: f"{noun} delivered",
                OutboxMessage.Status.FAILED: f"{noun} failed: no more attempts",
                OutboxMessage.Status.CANCELLED: f"{noun} cancelled",
                OutboxMessage.Status.PENDING: f"{noun} waiting for another attempt",
            }.get(row.status, f"{noun} changed")
            if before.status == OutboxMessage.Status.FAILED and row.status == OutboxMessage.Status.PENDING:
                title = f"{noun} retried by hand"
        events.append(
            TimelineEvent(row.history_date, kind, actor_of(row), title, details, rank=rank_of(kind))
        )
    return events


def attempt_event(sources: Sources, attempt) -> TimelineEvent:
    """One HTTP attempt: its number and status code in the title, then how long it took
    and what went wrong, if anything."""
    message = sources.messages.get(attempt.message_id)
    is_action = message is not None and message.kind == OutboxMessage.Kind.EXECUTE
    noun = "Action request" if is_action else "Callback request"
    if attempt.status_code:
        outcome = f"HTTP {attempt.status_code}"
    elif attempt.error.startswith("not executed"):
        outcome = "not sent"
    elif attempt.error:
        outcome = "no answer"
    else:
        outcome = "no outcome recorded"
    duration = f"{attempt.duration_ms} ms" if attempt.duration_ms is not None else None
    details = [Detail("Duration", text_value(duration))]
    if attempt.error and attempt.error != f"HTTP {attempt.status_code}":
        details.append(Detail("Error", text_value(attempt.error)))
    if message is not None:
        url = message.url or "none: handled by an executor"
        details.append(Detail("URL", text_value(url, is_code=bool(message.url))))
    who = sources.attempt_actors.get(attempt.pk, {"kind": ActorKind.SYSTEM, "name": UNATTRIBUTED})
    title = f"{noun}, attempt {attempt.number}: {outcome}"
    return TimelineEvent(
        attempt.started_at, "webhook attempt", who, title, details, rank=rank_of("webhook attempt")
    )


def incident_events(sources: Sources) -> list[TimelineEvent]:
    events = []
    previous: dict[int, Any] = {}
    decision_ids = {d.pk for d in sources.decisions}
    for row in sources.incident_rows:
        before = previous.get(row.id)
        previous[row.id] = row
        links = []
        if before is None:
            title = f"Incident reported: {row.get_severity_display().lower()} severity"
            details = [
                Detail("Severity", text_value(row.get_severity_display())),
                Detail("Source", text_value(row.get_source_display())),
                Detail("Description", text_value(row.description)),
            ]
            if row.reported_by_id:
                details.append(Detail("Reported by", text_value(sources.username(row.reported_by_id))))
            if row.decision_id:
                details.append(Detail("Let through by decision", text_value(f"#{row.decision_id}")))
                if row.decision_id in decision_ids:
                    links.append(Link("The decision that let it through", f"#decision-{row.decision_id}"))
        else:
            details = change_details(sources, sources.incident_source, row, before)
            reason = (row.history_change_reason or "").strip()
            title = "Incident updated" + (f": {reason}" if reason else "")
        url = url_for("reviews_incident_change", row.id)
        if url:
            links.append(Link("Incident record", url, "reviews.view_incident"))
        events.append(
            TimelineEvent(
                row.history_date, "incident", actor_of(row), title, details, links, rank=rank_of("incident")
            )
        )
    return events


# --- The timeline ----------------------------------------------------------------------------------


def item_timeline(item: ReviewItem) -> list[TimelineEvent]:
    """Everything that happened to `item`, oldest first, in a fixed number of queries."""
    sources = Sources(item)
    events = submission_events(sources)
    for previous, row in zip(sources.item_rows, sources.item_rows[1:], strict=False):
        events.append(item_row_event(sources, row, previous))
    events += [decision_event(sources, decision) for decision in sources.decisions]
    events += backlog_events(sources)
    events += message_events(sources)
    events += [attempt_event(sources, attempt) for attempt in sources.attempts]
    events += incident_events(sources)
    events.sort(key=lambda event: (event.at, event.rank))
    return events
