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

app.conf.beat_schedule = {
    "sweep-outbox": {"task": "reviews.sweep_outbox", "schedule": SWEEP_SECONDS},
    "expire-claims": {"task": "reviews.expire_claims", "schedule": SLA_SECONDS},
    "flag-at-risk": {"task": "reviews.flag_at_risk", "schedule": SLA_SECONDS},
    "apply-sla-timeouts": {"task": "reviews.apply_sla_timeouts", "schedule": SLA_SECONDS},
    # The audit trail's hash chains, recomputed daily; the admin index shows the result.
    "verify-audit": {"task": "reviews.verify_audit", "schedule": crontab(hour=3, minute=17)},
}
