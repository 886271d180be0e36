"""The figures of the metrics answer (SPEC section 4) and of `GET /metrics`, computed in
the database: grouped `Count`/`Min`/`Sum` aggregates with filters, and percentiles
with `percentile_cont` on PostgreSQL or, elsewhere (SQLite), exactly from the one or
two ranked values each percentile needs (a window query). A handful of queries per
answer, however many queues and items there are; nothing loops over rows in Python.

Definitions, for a window [since, until) (default: the 7 days up to now) and the
queues the caller may read:

- Gold items (seeded with a known right answer, `reviews.GoldAnswer`) are left out of
  the queue figures, which describe real traffic; their decisions count in the
  reviewers' workload, and `gold_agreement` compares them with the right answers.
- An item counts in the window when its **final decision** (`is_final`: the
  approval that completes it, a second one in a four-eyes queue, or a rejection)
  falls in it, under the queue that decision was made in. So a four-eyes item counts
  once, and escalations (never final) count nowhere: the item counts where it is
  finally decided. `decisions` is that count.

  These figures are read from the item's own row, which records its final
  decision: only that decision (`reviews.services.decisions.decide`) makes an item
  `approved`, `edited` or `rejected`, it sets the item's `decided_at` to the
  decision's time, and the item stays in the decision's queue from then on (no
  escalation, timeout or cancellation touches a decided item). So the per-queue
  figures need no join of decisions to items: one scan of the index
  `item_queue_decided` (tests/metrics check them against the decisions).
- **Rates** are fractions of those items by what they became: `approved`, `edited`
  (an edit approved by a second reviewer is an edit) or `rejected`; null when the
  queue has no final decision in the window.
- **Review time** runs from the item entering the queue it was decided in
  (`entered_queue_at`, reset by each escalation) to its final decision; its median
  and 90th percentile (linear interpolation, as `percentile_cont`) are in seconds.
- **`backlog`** is the queue's open items (pending and in review) now, and
  **`oldest_pending_seconds`** how long the oldest of them has been in the queue
  now (null when none); both ignore the window.
- **`sla_breaches`** counts (a) items finally decided in the queue in the window at
  or after their deadline (`due_at <= decision time`), plus (b) items that expired
  (the timeout outcome `reject`) in the queue in the window. Open items already
  past their deadline are not breaches yet: they show in `backlog` and in the
  Prometheus gauge `hitl_queue_past_sla`. An item a timeout escalated to another
  queue is counted in neither queue (no decision records the move; the item's
  history does), and a late escalation by a reviewer is not a decision of the item.
- **`reviewers`**: for each reviewer, every decision they made in the window in
  those queues (escalations and first approvals included) and the median of their
  `seconds_spent` (from taking the claim to deciding; null when every one of their
  decisions was made without a claim).
- **`incidents`**: incidents created in the window on items of those queues (the
  item's current queue), in total and by severity; with `include_unqueued` (for
  those who read everything and asked for no one queue) also on items that never
  entered a queue, such as auto-approved items whose spot check was rejected.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    Exists,
    F,
    FloatField,
    Func,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Window,
)
from django.db.models.functions import Abs, Least, RowNumber
from django.utils import timezone

from reviews.models import (
    Decision,
    DecisionAction,
    GoldAnswer,
    Incident,
    ItemStatus,
    OutboxMessage,
    Queue,
    ReviewItem,
)

DEFAULT_WINDOW = timedelta(days=7)
MEDIAN, P90 = 0.5, 0.9
REVIEW_QUANTILES = (MEDIAN, P90)
OUTCOMES = {
    "approval_rate": ItemStatus.APPROVED,
    "edit_rate": ItemStatus.EDITED,
    "rejection_rate": ItemStatus.REJECTED,
}
REVIEWED = list(OUTCOMES.values())  # what only a final decision makes an item
OUTBOX_KINDS = tuple(OutboxMessage.Kind.values)
OUTBOX_STATES = (OutboxMessage.Status.PENDING, OutboxMessage.Status.FAILED)


# --- Expressions -------------------------------------------------------------------------


class PercentileCont(Aggregate):
    """`percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)` (PostgreSQL): the
    value at `fraction` of the ordered values, interpolated linearly; NULLs ignored."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        fraction = float(fraction)  # a number written into the SQL, never text
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"A percentile is a fraction between 0 and 1, not {fraction}.")
        super().__init__(expression, fraction=fraction, **extra)


class SecondsBetween(Func):
    """Seconds from `earlier` to `later` (two datetimes), as a float."""

    output_field = FloatField()
    arity = 2

    def __init__(self, later, earlier):
        super().__init__(later, earlier)

    def as_sql(self, compiler, connection, **extra_context):
        # Django's own datetime subtraction: microseconds (a function Django registers on SQLite).
        later, earlier = (compiler.compile(expression) for expression in self.source_expressions)
        sql, params = connection.ops.subtract_temporals("DateTimeField", later, earlier)
        return f"({sql} / 1000000.0)", params

    def as_postgresql(self, compiler, connection, **extra_context):
        # date_part is double precision already; EXTRACT's numeric costs a third more here.
        later, earlier = (compiler.compile(expression) for expression in self.source_expressions)
        return f"date_part('epoch', {later[0]} - {earlier[0]})", (*later[1], *earlier[1])


def _review_seconds() -> SecondsBetween:
    """A decided item's review time: entering the queue it was decided in, to the decision."""
    return SecondsBetween(F("decided_at"), F("entered_queue_at"))


def _has_percentile_cont() -> bool:
    return connection.vendor == "postgresql"


def _percentiles(rows: QuerySet, *, key: str, value, fractions: Sequence[float]) -> dict:
    """`{group: {fraction: value}}` for each group of `rows` by `key` (null values
    ignored), exactly as `percentile_cont` computes it, where the database has no
    percentile: one query ranks each group's values (window functions) and returns
    only the one or two ranks each fraction falls between."""
    ranked = (
        rows.annotate(_value=value)
        .filter(_value__isnull=False)
        .annotate(
            _rank=Window(RowNumber(), partition_by=[F(key)], order_by=[F("_value").asc(), F("pk").asc()]),
            _n=Window(Count("*"), partition_by=[F(key)]),
        )
    )
    # percentile_cont takes the values at positions floor(p(n-1)) and ceil(p(n-1)),
    # counted from 0: the ranks at most one away from that position (a third one at
    # times, unused; never one missing, whatever the last bit of the arithmetic).
    distances = [Abs(F("_rank") - 1 - fraction * (F("_n") - 1)) for fraction in fractions]
    nearest = distances[0] if len(distances) == 1 else Least(*distances)
    picked = (
        ranked.annotate(_distance=nearest)
        .filter(_distance__lte=1)
        .order_by()
        .values_list(key, "_rank", "_n", "_value")
    )
    values: dict[Any, dict[int, float]] = defaultdict(dict)
    sizes: dict[Any, int] = {}
    for group, rank, size, found in picked:  # two or three rows per group and fraction
        values[group][rank - 1] = float(found)
        sizes[group] = size
    result = {}
    for group, at in values.items():
        result[group] = {}
        for fraction in fractions:
            position = fraction * (sizes[group] - 1)
            low, high = math.floor(position), math.ceil(position)
            result[group][fraction] = at[low] + (at[high] - at[low]) * (position - low)
    return result


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- The metrics answer -------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A window [since, until)."""

    since: datetime
    until: datetime


def span(
    *, since: datetime | None = None, until: datetime | None = None, now: datetime | None = None
) -> Span:
    """The window asked for, with the defaults: until now, and 7 days before `until`.
    OverflowError when the default `since` would fall before year 1."""
    until = until or now or timezone.now()
    since = since or until - DEFAULT_WINDOW
    return Span(since, until)


def _queue_ids(queues: Iterable[Queue]) -> list[int]:
    return [queue.pk for queue in queues]


def queue_stats(
    *, queues: Sequence[Queue], since: datetime, until: datetime, now: datetime | None = None
) -> list[dict]:
    """One row per queue (in the order given) with every figure of the answer's `queues`:
    one query for what was decided or expired in the window, one for what is open now."""
    now = now or timezone.now()
    ids = _queue_ids(queues)
    reviewed = Q(status__in=REVIEWED)
    ended = (
        ReviewItem.objects.filter(
            status__in=[*REVIEWED, ItemStatus.EXPIRED],
            queue_id__in=ids,
            decided_at__gte=since,
            decided_at__lt=until,
        )
        .exclude(Exists(GoldAnswer.objects.filter(item_id=OuterRef("pk"))))
        .order_by()
    )
    figures = {
        "decisions": Count("status", filter=reviewed),
        **{name: Count("status", filter=Q(status=status)) for name, status in OUTCOMES.items()},
        "late": Count("status", filter=reviewed & Q(due_at__lte=F("decided_at"))),
        "expired": Count("status", filter=Q(status=ItemStatus.EXPIRED)),
    }
    if _has_percentile_cont():
        figures["median"] = PercentileCont(_review_seconds(), MEDIAN, filter=reviewed)
        figures["p90"] = PercentileCont(_review_seconds(), P90, filter=reviewed)
    decided = {row["queue_id"]: row for row in ended.values("queue_id").annotate(**figures)}
    if not _has_percentile_cont():
        exact = _percentiles(
            ended.filter(reviewed), key="queue_id", value=_review_seconds(), fractions=REVIEW_QUANTILES
        )
        for queue_id, found in exact.items():
            decided[queue_id].update(median=found[MEDIAN], p90=found[P90])

    waiting = {
        row["queue_id"]: row
        for row in ReviewItem.objects.open()
        .filter(queue_id__in=ids)
        .order_by()
        .values("queue_id")
        .annotate(backlog=Count("*"), oldest=Min("entered_queue_at"))
    }

    rows = []
    for queue in queues:
        done = decided.get(queue.pk, {})
        held = waiting.get(queue.pk, {})
        count = done.get("decisions", 0)
        oldest = held.get("oldest")
        rows.append(
            {
                "queue": queue.slug,
                "decisions": count,
                **{name: _rate(done.get(name, 0), count) for name in OUTCOMES},
                "median_review_seconds": _seconds(done.get("median")),
                "p90_review_seconds": _seconds(done.get("p90")),
                "backlog": held.get("backlog", 0),
                "oldest_pending_seconds": None if oldest is None else _age(now, oldest),
                "sla_breaches": done.get("late", 0) + done.get("expired", 0),
            }
        )
    return rows


def _age(now: datetime, since: datetime) -> int:
    return max(0, int((now - since).total_seconds()))


def reviewer_stats(*, queues: Sequence[Queue], since: datetime, until: datetime) -> list[dict]:
    """Each reviewer's decisions in the window in these queues (all actions) and the
    median of their `seconds_spent`; most decisions first, then by name."""
    made = Decision.objects.filter(
        queue_id__in=_queue_ids(queues), created_at__gte=since, created_at__lt=until
    ).order_by()
    figures = {"decisions": Count("*")}
    if _has_percentile_cont():
        figures["median"] = PercentileCont("seconds_spent", MEDIAN)
    # Grouped by the id alone, which PostgreSQL reads in order from the covering index
    # `decision_reviewer_created` (no sort of the rows); the names come after.
    rows = list(made.values("reviewer_id").annotate(**figures))
    if not _has_percentile_cont():
        exact = _percentiles(made, key="reviewer_id", value=F("seconds_spent"), fractions=[MEDIAN])
        for row in rows:
            row["median"] = exact.get(row["reviewer_id"], {}).get(MEDIAN)
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[row["reviewer_id"] for row in rows])
        .values_list("pk", "username")
    )
    answer = [
        {
            "reviewer": names[row["reviewer_id"]],
            "decisions": row["decisions"],
            "median_review_seconds": _seconds(row["median"]),
        }
        for row in rows
    ]
    return sorted(answer, key=lambda row: (-row["decisions"], row["reviewer"]))


def incident_stats(
    *, queues: Sequence[Queue], since: datetime, until: datetime, include_unqueued: bool = False
) -> dict:
    """Incidents created in the window on items of these queues (and, with
    `include_unqueued`, on items that never entered one): total and by severity."""
    on_items = Q(item__queue_id__in=_queue_ids(queues))
    if include_unqueued:
        on_items |= Q(item__queue__isnull=True)
    counts = dict(
        Incident.objects.filter(on_items, created_at__gte=since, created_at__lt=until)
        .order_by()
        .values("severity")
        .annotate(n=Count("*"))
        .values_list("severity", "n")
    )
    by_severity = {severity: counts.get(severity, 0) for severity in Incident.Severity.values}
    return {"total": sum(by_severity.values()), "by_severity": by_severity}


def metrics_answer(
    *,
    queues: Sequence[Queue],
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    include_unqueued_incidents: bool = False,
) -> dict:
    """The whole metrics answer for these queues (already narrowed to what the
    caller may read, in the order to show): `since`, `until`, `queues`,
    `reviewers`, `incidents`."""
    now = now or timezone.now()
    asked = span(since=since, until=until, now=now)
    since, until = asked.since, asked.until
    queues = list(queues)
    return {
        "since": since,
        "until": until,
        "queues": queue_stats(queues=queues, since=since, until=until, now=now),
        "reviewers": reviewer_stats(queues=queues, since=since, until=until),
        "incidents": incident_stats(
            queues=queues, since=since, until=until, include_unqueued=include_unqueued_incidents
        ),
    }


def gold_agreement(*, queues: Sequence[Queue], since: datetime, until: datetime) -> list[dict]:
    """Each reviewer's decisions on gold items in the window (approve, edit or reject;
    an escalation answers nothing) and how many agreed with the known right answer
    (an edit agrees with approve); lowest agreement first."""
    agreeing = Q(
        item__gold__answer=GoldAnswer.Answer.APPROVE, action__in=[DecisionAction.APPROVE, DecisionAction.EDIT]
    )
    agreeing |= Q(item__gold__answer=GoldAnswer.Answer.REJECT, action=DecisionAction.REJECT)
    rows = (
        Decision.objects.filter(
            queue_id__in=_queue_ids(queues),
            created_at__gte=since,
            created_at__lt=until,
            item__gold__isnull=False,
            action__in=[DecisionAction.APPROVE, DecisionAction.EDIT, DecisionAction.REJECT],
        )
        .order_by()
        .values("reviewer__username")
        .annotate(answered=Count("*"), agreed=Count("pk", filter=agreeing))
    )
    answer = [
        {
            "reviewer": row["reviewer__username"],
            "gold_decisions": row["answered"],
            "agreed": row["agreed"],
            "agreement_rate": _rate(row["agreed"], row["answered"]),
        }
        for row in rows
    ]
    return sorted(answer, key=lambda row: (row["agreement_rate"], row["reviewer"]))


# --- Prometheus -------------------------------------------------------------------------------


@dataclass
class QueueGauges:
    """One queue's figures for `GET /metrics`: the state now, and counts over all time."""

    slug: str
    pending: int = 0
    in_review: int = 0
    oldest_pending_seconds: int = 0
    at_risk: int = 0
    past_sla: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DecisionAction.values, 0))
    # Review time: quantiles over the last 7 days; sum and count over all time.
    review_quantiles: dict[float, float | None] = field(
        default_factory=lambda: dict.fromkeys(REVIEW_QUANTILES)
    )
    review_seconds_sum: float = 0.0
    review_count: int = 0
    outbox: dict[tuple[str, str], int] = field(
        default_factory=lambda: {(kind, state): 0 for kind in OUTBOX_KINDS for state in OUTBOX_STATES}
    )


@dataclass
class PrometheusFigures:
    queues: list[QueueGauges]
    # Outbox messages of items that never entered a queue (auto-approved by the gate).
    unqueued_outbox: dict[tuple[str, str], int]


def prometheus_figures(now: datetime | None = None) -> PrometheusFigures:
    """Every queue's gauges and counters, in five queries (six without percentile_cont)."""
    now = now or timezone.now()
    gauges = {queue.pk: QueueGauges(queue.slug) for queue in Queue.objects.order_by("slug").only("slug")}

    open_items = ReviewItem.objects.open().order_by().values("queue_id")
    for row in open_items.annotate(
        pending=Count("status", filter=Q(status=ItemStatus.PENDING)),
        in_review=Count("status", filter=Q(status=ItemStatus.IN_REVIEW)),
        at_risk=Count("status", filter=Q(at_risk_at__lte=now, due_at__gt=now)),
        past_sla=Count("status", filter=Q(due_at__lte=now)),
        oldest=Min("entered_queue_at"),
    ):
        queue = gauges.get(row["queue_id"])
        if queue is not None:
            queue.pending, queue.in_review = row["pending"], row["in_review"]
            queue.at_risk, queue.past_sla = row["at_risk"], row["past_sla"]
            queue.oldest_pending_seconds = _age(now, row["oldest"]) if row["oldest"] else 0

    counted = Decision.objects.order_by().values_list("queue_id", "action").annotate(n=Count("*"))
    for queue_id, action, n in counted:
        if queue_id in gauges:
            gauges[queue_id].decisions[action] = n

    # Decided items, as in the answer: their row records their final decision.
    recent = Q(decided_at__gte=now - DEFAULT_WINDOW, decided_at__lt=now)
    finals = ReviewItem.objects.filter(status__in=REVIEWED).order_by()
    figures = {"total": Sum(_review_seconds()), "n": Count("*")}
    if _has_percentile_cont():
        figures.update(
            {f"q{q}": PercentileCont(_review_seconds(), q, filter=recent) for q in REVIEW_QUANTILES}
        )
    for row in finals.values("queue_id").annotate(**figures):
        queue = gauges.get(row["queue_id"])
        if queue is not None:
            queue.review_seconds_sum, queue.review_count = float(row["total"] or 0), row["n"]
            if _has_percentile_cont():
                queue.review_quantiles = {q: row[f"q{q}"] for q in REVIEW_QUANTILES}
    if not _has_percentile_cont():
        exact = _percentiles(
            finals.filter(recent), key="queue_id", value=_review_seconds(), fractions=REVIEW_QUANTILES
        )
        for queue_id, found in exact.items():
            if queue_id in gauges:
                gauges[queue_id].review_quantiles = found

    unqueued = {(kind, state): 0 for kind in OUTBOX_KINDS for state in OUTBOX_STATES}
    messages = (
        OutboxMessage.objects.filter(status__in=OUTBOX_STATES)
        .order_by()
        .values_list("item__queue_id", "kind", "status")
        .annotate(n=Count("*"))
    )
    for queue_id, kind, state, n in messages:
        if queue_id is None:
            unqueued[(kind, state)] = n
        elif queue_id in gauges:
            gauges[queue_id].outbox[(kind, state)] = n
    return PrometheusFigures(queues=list(gauges.values()), unqueued_outbox=unqueued)
