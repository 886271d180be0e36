"""Settings for the benchmark's server process: the project's, plus one bare view.

Used only by tests/benchmarks (DJANGO_SETTINGS_MODULE=tests.benchmarks.bench_settings).
"""

import os

from hitl_project.settings import *  # noqa: F403

ROOT_URLCONF = "tests.benchmarks.bench_urls"

# Without REDIS_URL the project runs Celery tasks eagerly, so an auto-approved action
# would be delivered inside the submit request. In production the web process only
# publishes the task for a worker; the in-memory broker (which nobody consumes) models
# that without needing Redis. HITL_BENCH_EAGER_TASKS=1 keeps the eager behaviour.
if os.environ.get("HITL_BENCH_EAGER_TASKS", "").strip() not in {"1", "true", "yes"}:
    CELERY_TASK_ALWAYS_EAGER = False
