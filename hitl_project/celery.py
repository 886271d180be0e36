"""The Celery application and the whole beat schedule, declared in one place."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_project.settings")

app = Celery("hitl_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every periodic job, in one place. Each is idempotent, so an overlap or a
# second beat by mistake costs work, not correctness.
app.conf.beat_schedule = {
    "sweep-outbox": {"task": "reviews.sweep_outbox", "schedule": 10.0},
    "expire-claims": {"task": "reviews.expire_claims", "schedule": 30.0},
    "flag-at-risk": {"task": "reviews.flag_at_risk", "schedule": 30.0},
    "apply-sla-timeouts": {"task": "reviews.apply_sla_timeouts", "schedule": 30.0},
}
