"""Background work of the metrics app. Each task takes ids, loads rows and calls one
function, and is safe to run twice; what it writes is attributed to a named system
actor (`system:feedback-export`, `system:metrics-snapshots`, ...)."""

from __future__ import annotations

from celery import shared_task

from metrics import exports, snapshots
from reviews.history import acting_as_system

# An export of millions of rows takes minutes, longer than the project's default task
# limits (CELERY_TASK_SOFT_TIME_LIMIT): past the soft limit the export is marked failed.
EXPORT_SOFT_TIME_LIMIT = 2 * 3600
EXPORT_TIME_LIMIT = EXPORT_SOFT_TIME_LIMIT + 60


@shared_task(name=exports.EXPORT_TASK, soft_time_limit=EXPORT_SOFT_TIME_LIMIT, time_limit=EXPORT_TIME_LIMIT)
def run_export(export_id: str) -> str:
    with acting_as_system("feedback-export"):
        return exports.write_export(export_id)


# --- Backlog snapshots and weekly summaries (beat: hitl_project/celery.py) -----------------------


@shared_task(name="metrics.take_snapshots")
def take_snapshots() -> int:
    """Every HITL_SNAPSHOT_MINUTES: one backlog snapshot per queue (once per minute)."""
    with acting_as_system("metrics-snapshots"):
        return snapshots.take_snapshots()


@shared_task(name="metrics.weekly_summary")
def weekly_summary() -> int:
    """Mondays: the summary of the week that just ended, per queue (once per week)."""
    with acting_as_system("metrics-weekly-summary"):
        return snapshots.write_weekly_summaries(week=snapshots.previous_week())
