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
from datetime import UTC, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.contrib.postgres.fields import ArrayField
from django.db import connection, connections
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DateTimeField,
    Exists,
    F,
    FloatField,
    Func,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    RowRange,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Abs, Floor, Least, RowNumber
from django.utils import timezone

from metrics.models import QueueSnapshot
from policies.models import GateRule
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


class PercentilesCont(Aggregate):
    """`percentile_cont(ARRAY[fractions]) WITHIN GROUP (ORDER BY expression)` (PostgreSQL):
    the values at several fractions from one sort of the group's values, as a list in
    the order of `fractions` (each as `PercentileCont` computes it)."""

    function = "PERCENTILE_CONT"
    name = "PercentilesCont"
    template = "%(function)s(ARRAY[%(fractions)s]::float8[]) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = ArrayField(FloatField())

    def __init__(self, expression, fractions: Sequence[float], **extra):
        fractions = [float(fraction) for fraction in fractions]  # numbers written into the SQL
        if not fractions or not all(0.0 <= fraction <= 1.0 for fraction in fractions):
            raise ValueError(f"Percentiles are fractions between 0 and 1, not {fractions}.")
        super().__init__(expression, fractions=", ".join(map(repr, fractions)), **extra)


def percentiles_found(values: list | None, fractions: Sequence[float]) -> dict[float, float]:
    """What a `PercentilesCont` found, by fraction (nothing for a group without values)."""
    return {} if values is None else {f: v for f, v in zip(fractions, values, strict=True) if v is not None}


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
    percentile (see `_ranked_percentiles`)."""
    found = _ranked_percentiles(rows, keys=(key,), value=value, fractions=fractions)
    return {group[0]: figures for group, figures in found.items()}


def _ranked_percentiles(
    rows: QuerySet, *, keys: Sequence[str], value, fractions: Sequence[float]
) -> dict[tuple, dict[float, float]]:
    """`{(key values...): {fraction: value}}` as `percentile_cont` computes it, in one
    query: it ranks each group's values (window functions) and returns only the one or
    two ranks each fraction falls between."""
    partition = [F(key) for key in keys]
    ranked = (
        rows.annotate(_value=value)
        .filter(_value__isnull=False)
        .annotate(
            _rank=Window(RowNumber(), partition_by=partition, order_by=[F("_value").asc(), F("pk").asc()]),
            _n=Window(Count("*"), partition_by=partition),
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
        .values_list(*keys, "_rank", "_n", "_value")
    )
    values: dict[tuple, dict[int, float]] = defaultdict(dict)
    sizes: dict[tuple, int] = {}
    for *group, rank, size, found in picked:  # two or three rows per group and fraction
        values[tuple(group)][rank - 1] = float(found)
        sizes[tuple(group)] = size
    result: dict[tuple, dict[float, float]] = {}
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
        figures["review_seconds"] = PercentilesCont(_review_seconds(), REVIEW_QUANTILES, filter=reviewed)
    decided = {row["queue_id"]: row for row in ended.values("queue_id").annotate(**figures)}
    if _has_percentile_cont():
        for row in decided.values():
            found = percentiles_found(row.pop("review_seconds"), REVIEW_QUANTILES)
            row.update(median=found.get(MEDIAN), p90=found.get(P90))
    else:
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
        figures["quantiles"] = PercentilesCont(_review_seconds(), REVIEW_QUANTILES, filter=recent)
    for row in finals.values("queue_id").annotate(**figures):
        queue = gauges.get(row["queue_id"])
        if queue is not None:
            queue.review_seconds_sum, queue.review_count = float(row["total"] or 0), row["n"]
            if _has_percentile_cont():
                found = row["quantiles"] or [None] * len(REVIEW_QUANTILES)
                queue.review_quantiles = dict(zip(REVIEW_QUANTILES, found, strict=True))
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


# === The dashboard ================================================================================
#
# What the admin dashboard (metrics/dashboard.py), the snapshot task and the weekly summary
# read, beyond the metrics answer. Same rules as above: grouped aggregates in the database, a
# fixed number of queries whatever the number of queues or decisions, and, for a window, the
# decisions made in it in the queues given (`Decision.queue`: where the reviewer decided).
#
# - **Backlog at a moment** (`backlog_at`): the items that had entered their queue at or before
#   the moment and were not yet closed then (`decided_at` unset or later): what was open. Read
#   from each item's own timestamps, so past moments can be reconstructed (`backfill_snapshots`)
#   and the present one is exactly the open items. What the row no longer records is lost: an
#   item counts in its current queue from when it entered it (before an escalation it was in
#   another queue, which no longer counts it), and `in_review` knows only claims still held
#   (a claim that has ended since counts as pending).
# - **Workload**: each reviewer's decisions in each queue (every action), the time they spent
#   (the sum of `seconds_spent`, from taking the claim to deciding), and their share of the
#   queue's decisions. **Overload**: in a queue with at least `OVERLOAD_MIN_DECISIONS`
#   decisions in the window and at least two reviewers, a reviewer whose share is above
#   `OVERLOAD_FACTOR` times the even share (1 / the number of reviewers who decided there).
# - **Rubber-stamping, fast reviews**: in a queue, among the decisions made under a claim
#   (`seconds_spent` known), a reviewer with at least `FAST_MIN_DECISIONS` of them whose
#   median time is below the queue's 10th percentile, or below a quarter of the queue's
#   median (percentiles as `percentile_cont`, over every reviewer's timed decisions there).
# - **Rubber-stamping, approval runs**: a reviewer's decisions in a queue in time order; a run
#   is consecutive approvals (`approve`: an edit, a rejection or an escalation ends it).
#   Flagged when the longest run in the window reaches `APPROVAL_RUN_FLAG`; the current run is
#   the one their latest decision ends.
# - **Incidents that slipped past reviewers**: incidents created in the window whose
#   `decision` (the decision that let the item through) was made in these queues; counted by
#   that decision's queue and reviewer.

OVERLOAD_FACTOR = 1.5
OVERLOAD_MIN_DECISIONS = 10
FAST_MIN_DECISIONS = 5
FAST_PERCENTILE = 0.1
FAST_MEDIAN_FRACTION = 0.25
APPROVAL_RUN_FLAG = 20
TREND_POINTS = 120  # at most this many points per queue on a trend chart
INCIDENT_LIST_LIMIT = 50
WEEK = timedelta(days=7)


def _grouped_percentiles(
    rows: QuerySet, *, keys: Sequence[str], value, fractions: Sequence[float]
) -> dict[tuple, dict[float, float]]:
    """`{(key values...): {fraction: value}}` for each group of `rows` by several `keys`,
    as `percentile_cont` computes it: `percentile_cont` on PostgreSQL, elsewhere the exact
    window-query fallback of `_ranked_percentiles` (one query either way)."""
    if _has_percentile_cont():
        found = rows.order_by().values(*keys).annotate(_found=PercentilesCont(value, fractions))
        return {tuple(row[key] for key in keys): percentiles_found(row["_found"], fractions) for row in found}
    return _ranked_percentiles(rows, keys=keys, value=value, fractions=fractions)


def _decisions_in(queues: Sequence[Queue], since: datetime, until: datetime) -> QuerySet:
    return Decision.objects.filter(
        queue_id__in=_queue_ids(queues), created_at__gte=since, created_at__lt=until
    ).order_by()


# --- Backlog: snapshots and trends ------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """One queue's open items at one moment, as a `QueueSnapshot` keeps them."""

    pending: int = 0
    in_review: int = 0
    at_risk: int = 0
    past_sla: int = 0
    oldest_pending_seconds: int | None = None

    @property
    def total(self) -> int:
        return self.pending + self.in_review


def backlog_at(*, queues: Sequence[Queue], moment: datetime) -> dict[int, Backlog]:
    """Each queue's backlog at `moment` (now, or a past moment reconstructed from the
    items' timestamps; see the definitions above), in one query. Every queue given has
    an entry, empty queues a zero one."""
    open_then = Q(decided_at__isnull=True) | Q(decided_at__gt=moment)
    rows = (
        ReviewItem.objects.filter(open_then, queue_id__in=_queue_ids(queues), entered_queue_at__lte=moment)
        .order_by()
        .values("queue_id")
        .annotate(
            open=Count("pk"),
            in_review=Count("pk", filter=Q(claimed_at__lte=moment)),
            at_risk=Count("pk", filter=Q(at_risk_at__lte=moment, due_at__gt=moment)),
            past_sla=Count("pk", filter=Q(due_at__lte=moment)),
            oldest=Min("entered_queue_at"),
        )
    )
    found = {
        row["queue_id"]: Backlog(
            pending=row["open"] - row["in_review"],
            in_review=row["in_review"],
            at_risk=row["at_risk"],
            past_sla=row["past_sla"],
            oldest_pending_seconds=_age(moment, row["oldest"]) if row["oldest"] else None,
        )
        for row in rows
    }
    return {queue.pk: found.get(queue.pk, Backlog()) for queue in queues}


@dataclass(frozen=True)
class TrendPoint:
    """The snapshots of one stretch of the window: the largest backlog and the largest
    number past their SLA any of them recorded, and when the last was taken."""

    bucket: int  # the stretch's place in the window, from 0
    backlog: int
    past_sla: int
    taken_at: datetime


@dataclass(frozen=True)
class Trend:
    since: datetime
    until: datetime
    buckets: int
    bucket_seconds: int
    points: dict[int, list[TrendPoint]]  # by queue id, in time order


def backlog_trend(
    *, queues: Sequence[Queue], since: datetime, until: datetime, points: int = TREND_POINTS
) -> Trend:
    """Each queue's backlog over the window from its snapshots, in at most `points`
    stretches of equal length (at least a minute each), in one query: snapshots are taken
    every few minutes, a chart needs a hundred points or so."""
    span_seconds = max(1, math.ceil((until - since).total_seconds()))
    width = max(60, math.ceil(span_seconds / points))
    buckets = math.ceil(span_seconds / width)
    bucket = Floor(SecondsBetween(F("taken_at"), Value(since, output_field=DateTimeField())) / width)
    rows = (
        QueueSnapshot.objects.filter(queue_id__in=_queue_ids(queues), taken_at__gte=since, taken_at__lt=until)
        .order_by()
        .annotate(_bucket=bucket)
        .values("queue_id", "_bucket")
        .annotate(
            backlog=Max(F("pending") + F("in_review")), past_sla=Max("past_sla"), taken_at=Max("taken_at")
        )
    )
    found: dict[int, list[TrendPoint]] = {queue.pk: [] for queue in queues}
    for row in rows:
        index = min(buckets - 1, int(row["_bucket"]))
        found[row["queue_id"]].append(TrendPoint(index, row["backlog"], row["past_sla"], row["taken_at"]))
    for series in found.values():
        series.sort(key=lambda point: point.bucket)
    return Trend(since=since, until=until, buckets=buckets, bucket_seconds=width, points=found)


# --- Workload and review speed ------------------------------------------------------------------


def workload(*, queues: Sequence[Queue], since: datetime, until: datetime) -> list[dict]:
    """One row per queue and reviewer who decided there in the window: `queue_id`,
    `reviewer_id`, `reviewer`, `decisions`, `approvals`, `timed` (decisions under a claim),
    `seconds_spent` (their sum), `share` of the queue's decisions, `overloaded`, and for
    review speed `median_seconds` (of their timed decisions), the queue's
    `queue_p10_seconds` and `queue_median_seconds`, and `fast` (the rubber-stamping rule
    above). Queues in the order given, then most decisions first. Two or three queries."""
    made = _decisions_in(queues, since, until)
    rows = list(
        made.values("queue_id", "reviewer_id", "reviewer__username").annotate(
            decisions=Count("pk"),
            approvals=Count("pk", filter=Q(action=DecisionAction.APPROVE)),
            timed=Count("seconds_spent"),
            seconds_spent=Sum("seconds_spent"),
        )
    )
    timed = made.filter(seconds_spent__isnull=False)
    mine = _grouped_percentiles(
        timed, keys=["queue_id", "reviewer_id"], value=F("seconds_spent"), fractions=[MEDIAN]
    )
    theirs = _grouped_percentiles(
        timed, keys=["queue_id"], value=F("seconds_spent"), fractions=[FAST_PERCENTILE, MEDIAN]
    )
    totals: dict[int, int] = defaultdict(int)
    reviewers: dict[int, int] = defaultdict(int)
    for row in rows:
        totals[row["queue_id"]] += row["decisions"]
        reviewers[row["queue_id"]] += 1
    order = {queue_id: index for index, queue_id in enumerate(_queue_ids(queues))}
    answer = []
    for row in rows:
        queue_id, total, count = row["queue_id"], totals[row["queue_id"]], reviewers[row["queue_id"]]
        share = row["decisions"] / total
        median = mine.get((queue_id, row["reviewer_id"]), {}).get(MEDIAN)
        queue_figures = theirs.get((queue_id,), {})
        p10, queue_median = queue_figures.get(FAST_PERCENTILE), queue_figures.get(MEDIAN)
        fast = (
            row["timed"] >= FAST_MIN_DECISIONS
            and median is not None
            and (median < p10 or median < FAST_MEDIAN_FRACTION * queue_median)
        )
        answer.append(
            {
                "queue_id": queue_id,
                "reviewer_id": row["reviewer_id"],
                "reviewer": row["reviewer__username"],
                "decisions": row["decisions"],
                "approvals": row["approvals"],
                "timed": row["timed"],
                "seconds_spent": row["seconds_spent"] or 0,
                "share": share,
                "queue_decisions": total,
                "queue_reviewers": count,
                "overloaded": count >= 2
                and total >= OVERLOAD_MIN_DECISIONS
                and share > OVERLOAD_FACTOR / count,
                "median_seconds": _seconds(median),
                "queue_p10_seconds": _seconds(p10),
                "queue_median_seconds": _seconds(queue_median),
                "fast": bool(fast),
            }
        )
    return sorted(answer, key=lambda row: (order[row["queue_id"]], -row["decisions"], row["reviewer"]))


def approval_runs(
    *, queues: Sequence[Queue], since: datetime, until: datetime, at_least: int = 1
) -> list[dict]:
    """Each reviewer's runs of consecutive approvals in each queue in the window (see the
    definitions above): `queue_id`, `reviewer_id`, `longest`, `current`, for those whose
    longest run has at least `at_least` approvals; longest first.

    One query: window functions number each reviewer's non-approvals so far (a run is the
    approvals between two of them), then runs are counted by that number. PostgreSQL and
    SQLite (3.25 and later) both run it, exactly; the work is one sort of the window's
    decisions, and the answer one row per reviewer and queue."""
    if not queues:
        return []  # no SQL for "in ()"
    in_order = [F("created_at").asc(), F("pk").asc()]
    by_reviewer = [F("queue_id"), F("reviewer_id")]
    breaks = Sum(Case(When(action=DecisionAction.APPROVE, then=Value(0)), default=Value(1)))
    numbered = _decisions_in(queues, since, until).values(
        q=F("queue_id"),
        r=F("reviewer_id"),
        a=F("action"),
        run=Window(breaks, partition_by=by_reviewer, order_by=in_order, frame=RowRange(start=None, end=0)),
        last_run=Window(breaks, partition_by=by_reviewer),
    )
    using = numbered.db  # the replica inside hitl_project.replica.reading_from_replica()
    inner, params = numbered.query.get_compiler(using=using).as_sql()
    sql = (
        "SELECT q, r, MAX(n), MAX(CASE WHEN run = last_run THEN n ELSE 0 END) FROM ("
        " SELECT q, r, run, last_run, COUNT(*) AS n FROM (" + inner + ") numbered"
        " WHERE a = %s GROUP BY q, r, run, last_run"
        ") runs GROUP BY q, r HAVING MAX(n) >= %s"
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [*params, DecisionAction.APPROVE.value, int(at_least)])
        rows = cursor.fetchall()
    answer = [
        {"queue_id": queue_id, "reviewer_id": reviewer_id, "longest": longest, "current": current}
        for queue_id, reviewer_id, longest, current in rows
    ]
    return sorted(answer, key=lambda row: (-row["longest"], row["queue_id"], row["reviewer_id"]))


# --- Incidents that slipped past reviewers ------------------------------------------------------


def slipped_incident_counts(*, queues: Sequence[Queue], since: datetime, until: datetime) -> list[dict]:
    """Incidents created in the window that a reviewer's decision in these queues let
    through, counted by that decision's queue and reviewer: `queue_id`, `reviewer_id`,
    `reviewer`, `incidents`, and `serious` (high or critical). One query."""
    serious = [Incident.Severity.HIGH, Incident.Severity.CRITICAL]
    rows = (
        Incident.objects.filter(
            decision__queue_id__in=_queue_ids(queues), created_at__gte=since, created_at__lt=until
        )
        .order_by()
        .values("decision__queue_id", "decision__reviewer_id", "decision__reviewer__username")
        .annotate(incidents=Count("pk"), serious=Count("pk", filter=Q(severity__in=serious)))
    )
    return [
        {
            "queue_id": row["decision__queue_id"],
            "reviewer_id": row["decision__reviewer_id"],
            "reviewer": row["decision__reviewer__username"],
            "incidents": row["incidents"],
            "serious": row["serious"],
        }
        for row in rows
    ]


# What the incident list shows: never the item's content, which may be large.
INCIDENT_FIELDS = (
    *("id", "severity", "status", "source", "created_at", "item_id", "decision_id"),
    *("item__id", "item__external_id", "item__matched_rules"),
    *(
        "decision__id",
        "decision__action",
        "decision__created_at",
        "decision__queue_id",
        "decision__reviewer_id",
    ),
    *(
        "decision__reviewer__username",
        "decision__queue__id",
        "decision__queue__slug",
        "decision__queue__name",
    ),
)


def slipped_incidents(
    *, queues: Sequence[Queue], since: datetime, until: datetime, limit: int = INCIDENT_LIST_LIMIT
) -> list[Incident]:
    """The latest `limit` of those incidents, with their decision, its reviewer and queue,
    and of the item only its id, external id and the rule snapshots that gated it. One query."""
    return list(
        Incident.objects.filter(
            decision__queue_id__in=_queue_ids(queues), created_at__gte=since, created_at__lt=until
        )
        .select_related("decision__reviewer", "decision__queue", "item")
        .only(*INCIDENT_FIELDS)
        .order_by("-created_at", "-pk")[:limit]
    )


def rule_versions(snapshots: Iterable[dict]) -> tuple[dict[tuple[int, int], int], set[int]]:
    """For rule snapshots (`{"id", "version", ...}`, as items keep them): the history id
    of each (rule id, version) still on record, and the ids of the rules that exist now.
    Two queries, none without a snapshot."""
    wanted = {
        (snap["id"], snap["version"])
        for snap in snapshots
        if isinstance(snap, dict) and isinstance(snap.get("id"), int) and isinstance(snap.get("version"), int)
    }
    if not wanted:
        return {}, set()
    match = Q()
    for rule_id, version in wanted:
        match |= Q(id=rule_id, version=version)
    versions = {
        (rule_id, version): history_id
        for rule_id, version, history_id in GateRule.history.filter(match)
        .order_by("history_id")
        .values_list("id", "version", "history_id")
    }
    existing = set(
        GateRule.objects.filter(pk__in={rule_id for rule_id, _ in wanted}).values_list("pk", flat=True)
    )
    return versions, existing


# --- Weekly summaries ------------------------------------------------------------------------------


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the week `moment` falls in."""
    day = moment.astimezone(UTC).date()
    return datetime.combine(day - timedelta(days=day.weekday()), time.min, tzinfo=UTC)


NOW_FIGURES = ("backlog", "oldest_pending_seconds")  # of queue_stats: the state now, not the week's


def weekly_figures(
    *, queues: Sequence[Queue], week: datetime, now: datetime | None = None
) -> dict[int, dict]:
    """The headline figures of each queue for the week starting at `week` (a Monday,
    00:00 UTC), up to its end or `now` if sooner, as a `WeeklySummary` keeps them (JSON):
    the queue's row of the metrics answer for the week (its backlog figures aside),
    `incidents` created in the week on the queue's items, `incidents_past_reviewers`, and
    the backlog and how many were past their SLA at the end (`backlog_at`). Five or six
    queries, whatever the number of queues."""
    now = now or timezone.now()
    until = min(week + WEEK, now)
    queues = list(queues)
    stats = queue_stats(queues=queues, since=week, until=until, now=until)
    ids = _queue_ids(queues)
    incidents = dict(
        Incident.objects.filter(item__queue_id__in=ids, created_at__gte=week, created_at__lt=until)
        .order_by()
        .values("item__queue_id")
        .annotate(n=Count("pk"))
        .values_list("item__queue_id", "n")
    )
    slipped: dict[int, int] = defaultdict(int)
    for row in slipped_incident_counts(queues=queues, since=week, until=until):
        slipped[row["queue_id"]] += row["incidents"]
    backlog = backlog_at(queues=queues, moment=until)
    answer = {}
    for queue, row in zip(queues, stats, strict=True):
        figures = {name: value for name, value in row.items() if name not in NOW_FIGURES}
        answer[queue.pk] = {
            **figures,
            "week_start": week.date().isoformat(),
            "until": until.isoformat(),
            "incidents": incidents.get(queue.pk, 0),
            "incidents_past_reviewers": slipped[queue.pk],
            "backlog_at_end": backlog[queue.pk].total,
            "past_sla_at_end": backlog[queue.pk].past_sla,
        }
    return answer
