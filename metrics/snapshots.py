"""What metrics writes: backlog snapshots (the dashboard's trend) and weekly summaries (the
weekly review). Called by the beat tasks (metrics.tasks) and `backfill_snapshots`; each
write is safe to repeat: a queue has one snapshot per moment and one summary per week,
and a second run leaves what the first wrote."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from metrics import selectors
from metrics.models import QueueSnapshot, WeeklySummary
from reviews.models import Queue

BATCH = 1000


def _queues() -> list[Queue]:
    return list(Queue.objects.order_by("slug").only("pk", "slug"))


def _snapshot(queue: Queue, moment: datetime, backlog: selectors.Backlog) -> QueueSnapshot:
    return QueueSnapshot(
        taken_at=moment,
        queue=queue,
        pending=backlog.pending,
        in_review=backlog.in_review,
        at_risk=backlog.at_risk,
        past_sla=backlog.past_sla,
        oldest_pending_seconds=backlog.oldest_pending_seconds,
    )


def take_snapshots(*, now: datetime | None = None) -> int:
    """One snapshot per queue of its backlog now, stamped to the minute: a second run in
    the same minute writes nothing. Returns how many were written. Two or three queries."""
    moment = (now or timezone.now()).replace(second=0, microsecond=0)
    queues = _queues()
    taken = set(QueueSnapshot.objects.filter(taken_at=moment).values_list("queue_id", flat=True))
    missing = [queue for queue in queues if queue.pk not in taken]
    if not missing:
        return 0
    backlog = selectors.backlog_at(queues=missing, moment=moment)
    rows = [_snapshot(queue, moment, backlog[queue.pk]) for queue in missing]
    # A concurrent run (a second beat by mistake) may have written some meanwhile.
    QueueSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


@dataclass(frozen=True)
class Backfill:
    moments: int  # time steps looked at
    written: int  # snapshots written
    kept: int  # queue and step pairs that already had a snapshot


def grid(*, days: float, every_minutes: int, now: datetime) -> list[datetime]:
    """The moments of a backfill, oldest first: every `every_minutes` on the clock (counted
    from midnight UTC, as beat takes them), from `days` before `now` up to `now`."""
    step = every_minutes * 60
    latest = math.floor(now.timestamp() / step) * step
    earliest = math.ceil((now - timedelta(days=days)).timestamp() / step) * step
    return [datetime.fromtimestamp(at, tz=UTC) for at in range(earliest, latest + 1, step)]


def backfill(*, days: float, every_minutes: int | None = None, now: datetime | None = None) -> Backfill:
    """Reconstruct the snapshots of the last `days` from the items' timestamps
    (`selectors.backlog_at`), one aggregate query per time step, for every queue. A
    queue that already has a snapshot within a step (taken by beat, or by an earlier
    backfill) keeps it, and gets none from here for that step."""
    every_minutes = every_minutes or settings.HITL_SNAPSHOT_MINUTES
    now = now or timezone.now()
    moments = grid(days=days, every_minutes=every_minutes, now=now)
    queues = _queues()
    if not moments or not queues:
        return Backfill(len(moments), 0, 0)
    step = timedelta(minutes=every_minutes)
    first = moments[0]
    existing = QueueSnapshot.objects.filter(taken_at__gte=first, taken_at__lt=moments[-1] + step)
    held = {
        (queue_id, (taken_at - first) // step)
        for queue_id, taken_at in existing.values_list("queue_id", "taken_at")
    }
    written = kept = 0
    rows: list[QueueSnapshot] = []
    for index, moment in enumerate(moments):
        wanted = [queue for queue in queues if (queue.pk, index) not in held]
        kept += len(queues) - len(wanted)
        if not wanted:
            continue
        backlog = selectors.backlog_at(queues=wanted, moment=moment)
        rows.extend(_snapshot(queue, moment, backlog[queue.pk]) for queue in wanted)
        if len(rows) >= BATCH:
            written += _save(rows)
            rows = []
    written += _save(rows)
    return Backfill(len(moments), written, kept)


def _save(rows: list[QueueSnapshot]) -> int:
    QueueSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def previous_week(now: datetime | None = None) -> datetime:
    """Monday 00:00 UTC of the last complete week before `now`."""
    return selectors.week_start(now or timezone.now()) - selectors.WEEK


def write_weekly_summaries(*, week: datetime, now: datetime | None = None) -> int:
    """The summary of each queue for the week starting at `week` (a Monday, 00:00 UTC),
    once: queues that already have theirs keep it. Returns how many were written."""
    if week != selectors.week_start(week):
        raise ValueError(f"A week starts on a Monday at 00:00 UTC, not at {week.isoformat()}.")
    now = now or timezone.now()
    if week + selectors.WEEK > now:
        raise ValueError(f"The week of {week.date()} has not ended yet.")
    queues = _queues()
    done = set(WeeklySummary.objects.filter(week_start=week.date()).values_list("queue_id", flat=True))
    missing = [queue for queue in queues if queue.pk not in done]
    if not missing:
        return 0
    figures = selectors.weekly_figures(queues=missing, week=week, now=now)
    with transaction.atomic():
        WeeklySummary.objects.bulk_create(
            [
                WeeklySummary(week_start=week.date(), queue=queue, figures=figures[queue.pk])
                for queue in missing
            ],
            ignore_conflicts=True,
        )
    return len(missing)
