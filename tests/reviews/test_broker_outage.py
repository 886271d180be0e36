"""Redis down on the request path: the cache (rate limits) and the broker (dispatch
after commit) are real clients against a port where nothing listens. Submissions
and decisions still answer, limits count per process, the outbox keeps what could
not be published, and /healthz tells the broker outage from a database outage.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from reviews import services
from reviews.api import throttles
from reviews.delivery import outbox
from reviews.models import ItemStatus, OutboxMessage, ReviewItem
from tests.conftest import celery_broker
from tests.factories import GateRuleFactory, action_submission, submission
from tests.processes import ROOT, free_port
from tests.reviews.test_api import ITEMS, ApiClient, token_client


@pytest.fixture
def dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture(autouse=True)
def _fresh_outage_state():
    """Each test starts with both services believed up and no per-process counters."""
    for state in (throttles.cache_outage, outbox.broker_outage):
        state.reset()
    throttles.fallback_cache.clear()
    yield
    for state in (throttles.cache_outage, outbox.broker_outage):
        state.reset()
    throttles.fallback_cache.clear()


@pytest.fixture
def dead_cache(settings, dead_redis_url):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead_redis_url,
            "KEY_PREFIX": "hitl",
        }
    }
    return dead_redis_url


@pytest.fixture
def dead_broker(dead_redis_url):
    """Publish to the dead port, as a web process with REDIS_URL set would."""
    with celery_broker(dead_redis_url):
        yield dead_redis_url


@pytest.fixture
def wired(integration):
    integration.callback_url = "https://agent.example/callback"
    integration.action_url = "https://agent.example/actions"
    integration.save()
    return integration


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(name="Review everything", queue=queue)


@pytest.fixture
def api(wired):
    return ApiClient(f"Api-Key {services.issue_api_key(integration=wired)}")


def warnings_about(caplog, service: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "reviews.outage" and r.levelno >= logging.WARNING and r.getMessage().startswith(service)
    ]


# --- Rate limits ------------------------------------------------------------------------------


def test_submissions_are_accepted_while_the_cache_is_down(api, review_all, dead_cache, settings, caplog):
    settings.HITL_CACHE_RETRY_SECONDS = 0  # every request tries the cache again and fails again
    caplog.set_level(logging.WARNING)
    statuses = [api.post(ITEMS, action_submission(external_id=f"a-{i}")).status_code for i in range(3)]
    assert statuses == [201, 201, 201]
    assert ReviewItem.objects.filter(status=ItemStatus.PENDING).count() == 3
    [warning] = warnings_about(caplog, "The shared cache")  # once, not once per request
    assert "rate limits count in each process" in warning.getMessage()


def test_rate_limits_count_per_process_while_the_cache_is_down(
    api, other_integration, dead_cache, settings, caplog
):
    settings.HITL_INTEGRATION_RATE = "3/minute"
    caplog.set_level(logging.WARNING)
    other = ApiClient(f"Api-Key {services.issue_api_key(integration=other_integration)}")
    statuses = [api.get(ITEMS).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api.get(ITEMS)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert other.get(ITEMS).status_code == 200
    assert len(warnings_about(caplog, "The shared cache")) == 1


def test_people_are_limited_per_process_while_the_cache_is_down(reviewer, dead_cache, settings):
    settings.HITL_STAFF_RATE = "2/minute"
    client = token_client(reviewer)
    assert [client.get(ITEMS).status_code for _ in range(3)] == [200, 200, 429]


# --- Decisions and the outbox --------------------------------------------------------------------


def test_a_decision_is_recorded_while_cache_and_broker_are_down(
    api, reviewer, review_all, dead_cache, dead_broker, django_capture_on_commit_callbacks
):
    item_id = api.post(ITEMS, action_submission()).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(reviewer).post(
            f"/api/v1/items/{item_id}/decisions/", {"action": "approve", "justification": "Verified."}
        )
    assert response.status_code == 201
    assert ReviewItem.objects.get(pk=item_id).status == ItemStatus.APPROVED
    messages = OutboxMessage.objects.filter(item_id=item_id)
    assert {m.kind for m in messages} == {"execute", "callback"}
    assert all(m.status == "pending" for m in messages)


def test_an_outage_leaves_messages_to_the_next_sweep_with_one_warning(
    wired, reviewer, review_all, dead_broker, django_capture_on_commit_callbacks, settings, caplog
):
    settings.HITL_OUTBOX_REDISPATCH_SECONDS = 3600
    caplog.set_level(logging.WARNING)
    items = [
        services.submit_item(integration=wired, payload=action_submission(external_id=f"a-{i}")).item
        for i in range(3)
    ]
    for item in items:
        with django_capture_on_commit_callbacks(execute=True):
            services.decide(item=item, user=reviewer, action="approve", justification="Verified.")

    # One failed publish opened the breaker; the other five messages were not even tried.
    [warning] = warnings_about(caplog, "The broker")
    assert "left to the sweep" in warning.getMessage()
    messages = OutboxMessage.objects.filter(item__in=items)
    assert messages.count() == 6
    # Not "dispatched": the first sweep takes them, not one an hour from now.
    assert all(m.dispatched_at is None for m in messages)
    assert outbox.sweep() == 6


def test_an_auto_approved_submission_answers_201_while_the_broker_is_down(
    api, dead_cache, dead_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(ITEMS, submission())
    assert response.status_code == 201 and response.json()["status"] == "auto_approved"
    [message] = OutboxMessage.objects.filter(item_id=response.json()["id"])
    assert message.kind == "callback" and message.dispatched_at is None


# --- Health --------------------------------------------------------------------------------------


def test_healthz_reports_the_broker_down_as_degraded_and_stays_200(client, db, settings, dead_redis_url):
    settings.REDIS_URL = dead_redis_url
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "database": "ok", "broker": "degraded"}


def test_healthz_without_redis_says_not_configured(client, db, settings):
    settings.REDIS_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "not_configured"}


HEALTHZ_IN_A_FRESH_PROCESS = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"status_code": response.status_code, "body": response.json()}))
"""


def test_healthz_is_503_when_the_database_is_unreachable(dead_redis_url):
    """In a process of its own whose PostgreSQL address has nobody listening (this
    process's test database stays untouched); the broker is down too."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="hitl_project.settings",
        DJANGO_SECRET_KEY="healthz-test",
        DJANGO_ALLOWED_HOSTS="testserver",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
        REDIS_URL=dead_redis_url,
    )
    result = subprocess.run(
        [sys.executable, "-c", HEALTHZ_IN_A_FRESH_PROCESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {
        "status_code": 503,
        "body": {"status": "unavailable", "database": "unavailable", "broker": "degraded"},
    }
