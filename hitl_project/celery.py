"""The Celery application and the whole beat schedule, declared in one place."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_project.settings")

app = Celery("hitl_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every periodic job, in one place. Each is idempotent, so an overlap or a
# second beat by mistake costs work, not correctness.
# Intervals in seconds, overridable for tests and small deployments.
SWEEP_SECONDS = float(os.environ.get("HITL_OUTBOX_SWEEP_SECONDS", "10"))
SLA_SECONDS = float(os.environ.get("HITL_SLA_SWEEP_SECONDS", "30"))
# settings.HITL_SNAPSHOT_MINUTES, read here from the environment (this module loads before
# the settings). On the clock when it divides the hour (:00, :15, :30, :45), as backfills step.
SNAPSHOT_MINUTES = int(os.environ.get("HITL_SNAPSHOT_MINUTES", "").strip() or 15)
SNAPSHOTS = crontab(minute=f"*/{SNAPSHOT_MINUTES}") if 60 % SNAPSHOT_MINUTES == 0 else SNAPSHOT_MINUTES * 60.0
WEEKLY = crontab(minute=30, hour=0, day_of_week=1)  # Mondays 00:30 UTC: the week just ended

app.conf.beat_schedule = {
    "sweep-outbox": {"task": "reviews.sweep_outbox", "schedule": SWEEP_SECONDS},
    "expire-claims": {"task": "reviews.expire_claims", "schedule": SLA_SECONDS},
    "flag-at-risk": {"task": "reviews.flag_at_risk", "schedule": SLA_SECONDS},
    "apply-sla-timeouts": {"task": "reviews.apply_sla_timeouts", "schedule": SLA_SECONDS},
    # The audit trail's hash chains, recomputed daily; the admin index shows the result.
    "verify-audit": {"task": "reviews.verify_audit", "schedule": crontab(hour=3, minute=17)},
    # The dashboard's backlog trend, and the weekly review's summary of the week just ended.
    "take-snapshots": {"task": "metrics.take_snapshots", "schedule": SNAPSHOTS},
    "weekly-summary": {"task": "metrics.weekly_summary", "schedule": WEEKLY},
}
