"""The Celery application and the whole beat schedule, declared in one place."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_project.settings")

app = Celery("hitl_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "expire-claims": {"task": "reviews.expire_claims", "schedule": 30.0},
    "apply-sla-timeouts": {"task": "reviews.apply_sla_timeouts", "schedule": 30.0},
}
