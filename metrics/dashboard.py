"""The metrics dashboard in the admin (SPEC section 6), at `<admin>/metrics/dashboard/`
(URL name `admin:metrics_dashboard`): for a window (a date range, the last 7 days by
default), per queue figures, the backlog trend from the snapshots beat takes, reviewer
workload with overload highlighted, review quality (gold agreement and rubber-stamping
flags), incidents that slipped past reviewers with links to the decision, the reviewer and
the rule version, and this week against the last one, for the weekly review.

Reviewers see their own queues, compliance staff and superusers every queue; anyone else
(policy admins included) gets a 403, as from `GET /api/v1/metrics/`. The figures come from
`metrics.selectors` (definitions in its docstrings): a fixed number of queries whatever
the number of queues or decisions. Charts are inline SVG drawn here (no script, no
external asset, no inline style: the Content-Security-Policy allows none).

`install(site)` mounts the page and links it from the admin index (`metrics_dashboard_url`
in the index's context) for those who may see it; metrics/admin.py calls it, so nothing
outside `metrics` imports `metrics`.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_GET

from hitl_project.replica import reading_from_replica
from metrics import selectors
from metrics.models import WeeklySummary
from reviews.access import is_staff_reader, readable_queues, sees_everything
from reviews.models import Queue

PRESETS = (7, 30)  # days, offered as links
DEFAULT_DAYS = 7
MAX_DAYS = 366
RULE_PERMISSION = "policies.view_gaterule"


def may_see_dashboard(user) -> bool:
    """Reviewers, compliance staff and superusers (the readers of `GET /api/v1/metrics/`)."""
    return is_staff_reader(user)


# --- The window ------------------------------------------------------------------------------


class WindowForm(forms.Form):
    """The date range: `days` (a preset: the last 7 or 30 days up to now) or `since` and
    `until` (dates, UTC; `until` included, to its end; default now and a week before)."""

    since = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="From the start of this day (UTC).",
    )
    until = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="To the end of this day (UTC).",
    )
    days = forms.TypedChoiceField(
        required=False, choices=[(d, f"Last {d} days") for d in PRESETS], coerce=int, empty_value=None
    )

    def __init__(self, *args, now: datetime, **kwargs):
        self.now = now
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            if data.get("days"):
                until = self.now
                since = until - timedelta(days=data["days"])
            else:
                until = self.now
                if data.get("until"):
                    until = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=UTC)
                if data.get("since"):
                    since = datetime.combine(data["since"], time.min, tzinfo=UTC)
                else:
                    since = until - timedelta(days=DEFAULT_DAYS)
        except OverflowError as exc:
            raise forms.ValidationError("That date is out of range.") from exc
        if since >= until:
            raise forms.ValidationError("The range must start before it ends.")
        if until - since > timedelta(days=MAX_DAYS):
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        data["window"] = selectors.Span(since, until)
        return data


# --- Charts ------------------------------------------------------------------------------------

# Plot coordinates: the plot is a 1000 × 100 box stretched to the chart's size.
PLOT_WIDTH, PLOT_HEIGHT = 1000, 100
NICE_STEPS = (1, 2, 5)
TICK_DAYS = (1, 2, 7, 14, 28, 56, 91, 182)
MAX_TICKS = 8
MAX_LABELS = 4


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at or above `value` (and at least 1)."""
    scale = 1
    while True:
        for step in NICE_STEPS:
            if step * scale >= value:
                return step * scale
        scale *= 10


@dataclass(frozen=True)
class Tick:
    percent: float
    label: str
    anchor: str  # text-anchor: start, middle or end


def day_ticks(since: datetime, until: datetime) -> list[Tick]:
    """Labels at midnights (UTC) across the window: every day, or every few days or weeks
    (Mondays), so that at most MAX_TICKS show."""
    total = (until - since).total_seconds()
    days = total / 86400
    step = next((d for d in TICK_DAYS if days / d <= MAX_TICKS), TICK_DAYS[-1])
    moment = datetime.combine(since.astimezone(UTC).date() + timedelta(days=1), time.min, tzinfo=UTC)
    if step >= 7:
        moment += timedelta(days=(7 - moment.weekday()) % 7)
    moments = []
    while moment < until:
        moments.append(moment)
        moment += timedelta(days=step)
    # A gridline at each; a label on every other one when there are many (charts are narrow).
    every = 2 if len(moments) > MAX_LABELS else 1
    ticks = []
    for index, moment in enumerate(moments):
        percent = (moment - since).total_seconds() / total * 100
        anchor = "start" if percent < 4 else "end" if percent > 96 else "middle"
        label = date_format(moment, "D j" if step == 1 else "j M") if index % every == 0 else ""
        ticks.append(Tick(round(percent, 2), label, anchor))
    return ticks


@dataclass(frozen=True)
class Chart:
    """One queue's backlog over the window: an area (the backlog), a line (past their SLA)."""

    areas: list[str]  # SVG path data, one per unbroken stretch
    lines: list[str]
    sla_lines: list[str]
    dots: list[tuple[float, float]]  # stretches of one point
    y_max: int
    ticks: list[Tick]
    gridlines: list[float]  # x of each tick, in plot units
    first: int | None
    last: int | None
    peak: int
    peak_past_sla: int
    points: int

    @property
    def empty(self) -> bool:
        return self.points == 0

    @property
    def y_half(self) -> str:
        """The label of the middle gridline (none when the scale is 0 to 1)."""
        if self.y_max < 2:
            return ""
        half = self.y_max / 2
        return f"{half:g}"

    @property
    def change(self) -> int | None:
        return None if self.first is None or self.last is None else self.last - self.first

    @property
    def description(self) -> str:
        if self.empty:
            return "No snapshots in this range."
        return (
            f"Backlog from {self.first} to {self.last} open items over the range, peak {self.peak}; "
            f"at most {self.peak_past_sla} past their SLA."
        )


def _stretches(points: list[selectors.TrendPoint]) -> list[list[selectors.TrendPoint]]:
    """Points split where snapshots are missing: a gap of more than three times the usual
    spacing breaks the line rather than drawing across it."""
    if not points:
        return []
    gaps = [b.bucket - a.bucket for a, b in zip(points, points[1:], strict=False)]
    usual = statistics.median(gaps) if gaps else 1
    stretches, current = [], [points[0]]
    for gap, point in zip(gaps, points[1:], strict=True):
        if gap > 3 * usual:
            stretches.append(current)
            current = []
        current.append(point)
    stretches.append(current)
    return stretches


def chart(trend: selectors.Trend, queue_id: int, ticks: list[Tick]) -> Chart:
    points = trend.points.get(queue_id, [])
    peak = max((p.backlog for p in points), default=0)
    y_max = nice_ceiling(max(peak, 1) + max(1, peak // 10))  # headroom above the peak

    def x(point: selectors.TrendPoint) -> float:
        return round((point.bucket + 0.5) / trend.buckets * PLOT_WIDTH, 1)

    def y(value: int) -> float:
        return round(PLOT_HEIGHT - value / y_max * PLOT_HEIGHT, 2)

    areas, lines, sla_lines, dots = [], [], [], []
    for stretch in _stretches(points):
        if len(stretch) == 1:
            dots.append((x(stretch[0]), y(stretch[0].backlog)))
            continue
        line = " L ".join(f"{x(p)},{y(p.backlog)}" for p in stretch)
        lines.append(f"M {line}")
        areas.append(f"M {x(stretch[0])},{PLOT_HEIGHT} L {line} L {x(stretch[-1])},{PLOT_HEIGHT} Z")
        sla_lines.append("M " + " L ".join(f"{x(p)},{y(p.past_sla)}" for p in stretch))
    return Chart(
        areas=areas,
        lines=lines,
        sla_lines=sla_lines,
        dots=dots,
        y_max=y_max,
        ticks=ticks,
        gridlines=[round(t.percent * PLOT_WIDTH / 100, 1) for t in ticks],
        first=points[0].backlog if points else None,
        last=points[-1].backlog if points else None,
        peak=peak,
        peak_past_sla=max((p.past_sla for p in points), default=0),
        points=len(points),
    )


# --- The sections ------------------------------------------------------------------------------


@dataclass
class QueueRow:
    queue: Queue
    stats: dict
    slipped: int = 0
    serious: int = 0
    chart: Chart | None = None


@dataclass
class WorkloadGroup:
    """A queue's reviewers, most decisions first, with the share above which one is overloaded."""

    queue: Queue
    rows: list[dict]
    decisions: int
    overload_share: float | None  # None: too few decisions or reviewers to judge

    @property
    def overload_percent(self) -> float | None:
        return None if self.overload_share is None else round(min(self.overload_share, 1) * 100, 1)


@dataclass(frozen=True)
class Flag:
    kind: str  # "fast", "run" or "overload"
    queue: Queue
    reviewer: str
    reviewer_url: str
    detail: str


@dataclass(frozen=True)
class RuleLink:
    label: str
    url: str | None


@dataclass(frozen=True)
class IncidentRow:
    incident: object
    item_label: str
    item_url: str
    decision_url: str
    reviewer: str
    reviewer_url: str
    rules: list[RuleLink]


@dataclass(frozen=True)
class WeekLine:
    label: str
    last: object
    this: object
    delta: float | None
    kind: str  # how to show values: count, rate, seconds


@dataclass
class WeekCard:
    queue: Queue
    lines: list[WeekLine] = field(default_factory=list)
    stored: bool = False  # last week's figures from a stored WeeklySummary


WEEK_LINES = (
    ("Decisions", "decisions", "count"),
    ("Approval rate", "approval_rate", "rate"),
    ("Edit rate", "edit_rate", "rate"),
    ("Rejection rate", "rejection_rate", "rate"),
    ("Median review", "median_review_seconds", "seconds"),
    ("90th percentile review", "p90_review_seconds", "seconds"),
    ("SLA breaches", "sla_breaches", "count"),
    ("Incidents past reviewers", "incidents_past_reviewers", "count"),
    ("Open at the week's end", "backlog_at_end", "count"),
)


def _delta(last, this) -> float | None:
    if last is None or this is None:
        return None
    return this - last


class Dashboard:
    """The dashboard view of one admin site."""

    def __init__(self, site: AdminSite):
        self.site = site

    def url(self, name: str, *args) -> str:
        return reverse(f"admin:{name}", args=args, current_app=self.site.name)

    def reviewer_url(self, reviewer_id: int) -> str:
        """The reviewer's decisions, newest first."""
        return f"{self.url('reviews_decision_changelist')}?{urlencode({'reviewer__id__exact': reviewer_id})}"

    def view(self, request):
        if not may_see_dashboard(request.user):
            raise PermissionDenied("The metrics dashboard is for reviewers, compliance staff and superusers.")
        now = timezone.now()
        form = WindowForm(request.GET or None, now=now)
        context = {
            **self.site.each_context(request),
            "title": "Metrics dashboard",
            "is_nav_sidebar_enabled": False,  # the tables and charts need the width
            "form": form,
            "presets": PRESETS,
            "rules": {
                "overload_factor": selectors.OVERLOAD_FACTOR,
                "overload_min_decisions": selectors.OVERLOAD_MIN_DECISIONS,
                "fast_min_decisions": selectors.FAST_MIN_DECISIONS,
                "fast_percentile": round(selectors.FAST_PERCENTILE * 100),
                "fast_median_fraction": selectors.FAST_MEDIAN_FRACTION,
                "approval_run": selectors.APPROVAL_RUN_FLAG,
                "incident_limit": selectors.INCIDENT_LIST_LIMIT,
            },
        }
        if form.is_bound and not form.is_valid():
            request.current_app = self.site.name
            return TemplateResponse(request, "admin/metrics/dashboard.html", context)
        window = form.cleaned_data["window"] if form.is_bound else selectors.span(now=now)
        if not form.is_bound:  # the fields show the default range
            last_day = (window.until - timedelta(microseconds=1)).date()
            context["form"] = WindowForm(initial={"since": window.since.date(), "until": last_day}, now=now)
        queues = list(readable_queues(request.user).order_by("name", "slug").only("pk", "slug", "name"))
        may_read_rules = request.user.has_perm(RULE_PERMISSION)
        # Who may see what is decided above, on the default database; the figures may lag
        # a little behind it. (The template reads nothing more.)
        with reading_from_replica():
            context.update(self.figures(queues, window, now, may_read_rules=may_read_rules))
        context.update(
            window=window,
            preset=form.cleaned_data.get("days") if form.is_bound else DEFAULT_DAYS,
            sees_everything=sees_everything(request.user),
        )
        request.current_app = self.site.name
        return TemplateResponse(request, "admin/metrics/dashboard.html", context)

    def figures(
        self, queues: list[Queue], window: selectors.Span, now: datetime, *, may_read_rules: bool
    ) -> dict:
        since, until = window.since, window.until
        by_id = {queue.pk: queue for queue in queues}
        stats = selectors.queue_stats(queues=queues, since=since, until=until, now=now)
        rows = {queue.pk: QueueRow(queue, row) for queue, row in zip(queues, stats, strict=True)}

        trend = selectors.backlog_trend(queues=queues, since=since, until=until)
        ticks = day_ticks(since, until)
        for queue_id, row in rows.items():
            row.chart = chart(trend, queue_id, ticks)

        work = selectors.workload(queues=queues, since=since, until=until)
        names = {(row["queue_id"], row["reviewer_id"]): row["reviewer"] for row in work}
        groups = self.workload_groups(queues, work)

        runs = selectors.approval_runs(
            queues=queues, since=since, until=until, at_least=selectors.APPROVAL_RUN_FLAG
        )
        flags = self.flags(by_id, work, runs, names)
        gold = selectors.gold_agreement(queues=queues, since=since, until=until)

        counts = selectors.slipped_incident_counts(queues=queues, since=since, until=until)
        by_reviewer: dict[tuple[int, str], dict] = {}
        for count in counts:
            row = rows[count["queue_id"]]
            row.slipped += count["incidents"]
            row.serious += count["serious"]
            key = (count["reviewer_id"], count["reviewer"])
            entry = by_reviewer.setdefault(key, {"incidents": 0, "serious": 0})
            entry["incidents"] += count["incidents"]
            entry["serious"] += count["serious"]
        incidents = self.incident_rows(
            selectors.slipped_incidents(queues=queues, since=since, until=until),
            may_read_rules=may_read_rules,
        )

        queue_rows = list(rows.values())
        decided = sum(row.stats["decisions"] for row in queue_rows)
        approved = sum(
            round((row.stats["approval_rate"] or 0) * row.stats["decisions"]) for row in queue_rows
        )
        return {
            "queues": queue_rows,
            "trend": trend,
            "workload": groups,
            "flags": flags,
            "stamps": [flag for flag in flags if flag.kind != "overload"],
            "gold": gold,
            "incidents": incidents,
            "incident_total": sum(row.slipped for row in queue_rows),
            "incidents_by_reviewer": [
                {"reviewer": name, "reviewer_url": self.reviewer_url(reviewer_id), **entry}
                for (reviewer_id, name), entry in sorted(
                    by_reviewer.items(), key=lambda kv: (-kv[1]["incidents"], kv[0][1])
                )
            ],
            "glance": {
                "decisions": decided,
                "approval_rate": approved / decided if decided else None,
                "backlog": sum(row.stats["backlog"] for row in queue_rows),
                "sla_breaches": sum(row.stats["sla_breaches"] for row in queue_rows),
                "incidents": sum(row.slipped for row in queue_rows),
                "flags": len(flags),
            },
            **self.weeks(queues, now),
        }

    def workload_groups(self, queues: list[Queue], work: list[dict]) -> list[WorkloadGroup]:
        per_queue: dict[int, list[dict]] = defaultdict(list)
        for row in work:
            per_queue[row["queue_id"]].append({**row, "reviewer_url": self.reviewer_url(row["reviewer_id"])})
        groups = []
        for queue in queues:
            members = per_queue.get(queue.pk)
            if not members:
                continue
            total, count = members[0]["queue_decisions"], members[0]["queue_reviewers"]
            judged = count >= 2 and total >= selectors.OVERLOAD_MIN_DECISIONS
            groups.append(
                WorkloadGroup(queue, members, total, selectors.OVERLOAD_FACTOR / count if judged else None)
            )
        return groups

    def flags(self, by_id: dict, work: list[dict], runs: list[dict], names: dict) -> list[Flag]:
        flags = []
        for row in work:
            queue, url = by_id[row["queue_id"]], self.reviewer_url(row["reviewer_id"])
            if row["overloaded"]:
                even = 1 / row["queue_reviewers"]
                detail = (
                    f"{row['share']:.0%} of the queue's {row['queue_decisions']} decisions; "
                    f"an even share among {row['queue_reviewers']} reviewers is {even:.0%}"
                )
                flags.append(Flag("overload", queue, row["reviewer"], url, detail))
            if row["fast"]:
                flags.append(
                    Flag(
                        "fast",
                        queue,
                        row["reviewer"],
                        url,
                        f"median {seconds_text(row['median_seconds'])} over {row['timed']} timed decisions; "
                        f"the queue's 10th percentile {seconds_text(row['queue_p10_seconds'])}, "
                        f"median {seconds_text(row['queue_median_seconds'])}",
                    )
                )
        for run in runs:
            flags.append(
                Flag(
                    "run",
                    by_id[run["queue_id"]],
                    names.get((run["queue_id"], run["reviewer_id"]), "?"),
                    self.reviewer_url(run["reviewer_id"]),
                    f"{run['longest']} approvals in a row at the longest"
                    + (
                        f", {run['current']} in the current run" if run["current"] else ", the latest not one"
                    ),
                )
            )
        order = {"fast": 0, "run": 1, "overload": 2}
        return sorted(flags, key=lambda flag: (order[flag.kind], flag.queue.name, flag.reviewer))

    def incident_rows(self, incidents: list, *, may_read_rules: bool) -> list[IncidentRow]:
        snapshots = [snap for incident in incidents for snap in (incident.item.matched_rules or [])]
        versions, existing = selectors.rule_versions(snapshots)
        rows = []
        for incident in incidents:
            decision, item = incident.decision, incident.item
            rules = []
            for snap in item.matched_rules or []:
                if not isinstance(snap, dict):
                    continue
                rule_id, version = snap.get("id"), snap.get("version")
                label = str(snap.get("name") or f"rule {rule_id}")[:80]
                if version is not None:
                    label = f"{label}, version {version}"
                url = None
                if may_read_rules and isinstance(rule_id, int):
                    history_id = versions.get((rule_id, version))
                    if history_id is not None:
                        url = self.url("policies_gaterule_simple_history", rule_id, history_id)
                    elif rule_id in existing:
                        url = self.url("policies_gaterule_history", rule_id)
                rules.append(RuleLink(label, url))
            rows.append(
                IncidentRow(
                    incident=incident,
                    item_label=item.external_id or str(item.pk)[:8],
                    item_url=self.url("reviews_reviewitem_timeline", item.pk),
                    decision_url=self.url("reviews_decision_change", decision.pk),
                    reviewer=decision.reviewer.get_username(),
                    reviewer_url=self.reviewer_url(decision.reviewer_id),
                    rules=rules,
                )
            )
        return rows

    def weeks(self, queues: list[Queue], now: datetime) -> dict:
        """This week so far (live) against the last complete one (its stored summary, or
        computed now for queues without one)."""
        this_week = selectors.week_start(now)
        last_week = this_week - selectors.WEEK
        current = selectors.weekly_figures(queues=queues, week=this_week, now=now)
        stored = {
            summary.queue_id: summary.figures
            for summary in WeeklySummary.objects.filter(
                week_start=last_week.date(), queue_id__in=[queue.pk for queue in queues]
            )
        }
        missing = [queue for queue in queues if queue.pk not in stored]
        computed = selectors.weekly_figures(queues=missing, week=last_week, now=now) if missing else {}
        cards = []
        for queue in queues:
            last = stored.get(queue.pk) or computed.get(queue.pk, {})
            this = current[queue.pk]
            card = WeekCard(queue, stored=queue.pk in stored)
            for label, name, kind in WEEK_LINES:
                card.lines.append(
                    WeekLine(
                        label, last.get(name), this.get(name), _delta(last.get(name), this.get(name)), kind
                    )
                )
            cards.append(card)
        return {
            "weeks": cards,
            "this_week": this_week,
            "last_week": last_week,
            "last_week_stored": bool(stored),
        }


def seconds_text(value: float | None) -> str:
    """A duration for people: 45 s, 12 min, 3 h 05 min, 2 d 4 h."""
    if value is None:
        return "–"
    seconds = round(float(value))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def install(site: AdminSite) -> None:
    """Mount the dashboard at `<site>/metrics/dashboard/` and link it from the site's
    index for those who may see it (`metrics_dashboard_url` in the index's context)."""
    site_urls, site_index = site.get_urls, site.index
    dashboard = Dashboard(site)

    def get_urls():
        view = site.admin_view(require_GET(dashboard.view))
        return [path("metrics/dashboard/", view, name="metrics_dashboard"), *site_urls()]

    def index(request, extra_context=None):
        extra = {}
        if may_see_dashboard(request.user):
            extra["metrics_dashboard_url"] = reverse("admin:metrics_dashboard", current_app=site.name)
        return site_index(request, {**extra, **(extra_context or {})})

    site.get_urls = get_urls
    site.index = index
