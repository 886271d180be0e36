"""Real processes for the integration tests: a private redis-server, and Celery
worker and beat processes running this project against the test database.

Each test gets its own redis-server on a spare port, so stopping or restarting
the broker never touches a shared one, and the test process publishes to it too.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import celery_broker, missing_service
from tests.factories import GateRuleFactory, ReasonCodeFactory
from tests.processes import CeleryProcess, RedisServer, database_url


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        missing_service("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker(redis_server):
    """Point this process's Celery app at the private broker (as the web processes would be)."""
    with celery_broker(redis_server.url):
        yield redis_server


@pytest.fixture
def celery_env(broker, tmp_path) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker.url,
        "DJANGO_SECRET_KEY": "integration-tests",
        "DJANGO_DEBUG": "0",
        "HITL_WEBHOOK_ALLOW_PRIVATE": "1",
        "HITL_DELIVERY_LEASE_SECONDS": "4",
        "HITL_DELIVERY_BACKOFF_SECONDS": "1",
        "HITL_DELIVERY_BACKOFF_MAX_SECONDS": "4",
        "HITL_OUTBOX_REDISPATCH_SECONDS": "2",
        "HITL_OUTBOX_SWEEP_SECONDS": "1",
        "HITL_SLA_SWEEP_SECONDS": "1",
        "DJANGO_CONN_MAX_AGE": "0",
    }
    return env


@pytest.fixture
def worker(celery_env, tmp_path):
    process = CeleryProcess(
        "worker",
        celery_env,
        tmp_path / "worker.log",
        [
            "--concurrency",
            "4",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-n",
            "itest@%h",
        ],
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def beat(celery_env, tmp_path):
    process = CeleryProcess(
        "beat", celery_env, tmp_path / "beat.log", ["--schedule", str(tmp_path / "beat-schedule")]
    )
    process.start(wait=False)
    yield process
    process.stop()


@pytest.fixture
def wired(integration, receiver, queue):
    """An integration whose callbacks and actions reach the receiver, a gate that holds
    everything for review in `queue`, and a reason code for rejections."""
    integration.callback_url = f"{receiver.url}/callback"
    integration.action_url = f"{receiver.url}/actions"
    integration.save()
    GateRuleFactory(name="Review everything", queue=queue)
    ReasonCodeFactory(code="policy_violation", applies_to=["reject", "edit"])
    return integration
