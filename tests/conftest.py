"""Shared fixtures: personas (SPEC section 2) and service gates.

Tests that need PostgreSQL, Redis or a browser are skipped with the reason when
the service is not configured; with HITL_REQUIRE_SERVICES=1 they fail instead.
"""

from __future__ import annotations

import contextlib
import os
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from hitl_project.celery import app as celery_app
from policies import engine
from reviews.delivery import outbox
from reviews.models import COMPLIANCE_GROUP, POLICY_ADMINS_GROUP, REVIEWERS_GROUP
from tests.factories import IntegrationFactory, QueueFactory, UserFactory
from tests.receiver import Receiver

REQUIRE_SERVICES = os.environ.get("HITL_REQUIRE_SERVICES", "").strip() in {"1", "true", "yes"}
REDIS_DATABASES = 16  # what a Redis server has unless its `databases` setting says otherwise


def worker_redis_url(url: str, worker: int) -> str:
    """REDIS_URL for pytest-xdist worker number `worker`: the same server, a database of
    its own, counted down from the one `url` names (gw0 keeps it, gw1 the one below...).
    Workers cannot share one: cache.clear() empties a whole database (FLUSHDB), and
    rate-limit counters are keyed by ids that every worker's test database hands out."""
    if worker == 0:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if "db" in query or parts.scheme == "unix":  # unix:///run/redis.sock?db=15
        query["db"] = str((int(query.get("db") or 0) - worker) % REDIS_DATABASES)
        return f"{url.partition('?')[0]}?{urlencode(query)}"
    database = (int(parts.path.strip("/") or 0) - worker) % REDIS_DATABASES
    return parts._replace(path=f"/{database}").geturl()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """Each xdist worker starts with REDIS_URL naming its own Redis database, before its
    Django settings load, so its cache, broker and every process it spawns use that one."""
    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        return
    if len(specs) > REDIS_DATABASES:
        raise pytest.UsageError(f"{len(specs)} workers, but a Redis server has {REDIS_DATABASES} databases")
    for number, spec in enumerate(specs):
        spec.env["REDIS_URL"] = worker_redis_url(url, number)


def missing_service(reason: str) -> None:
    """Skip the test, or fail it when the run requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"HITL_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def redis_problem() -> str | None:
    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        return "Redis is not configured (set REDIS_URL=redis://...)"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis at {url} does not answer: {exc}"
    return None


@pytest.fixture(autouse=True)
def _service_markers(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        missing_service("PostgreSQL is not configured (set DATABASE_URL=postgres://...)")
    if request.node.get_closest_marker("redis"):
        problem = redis_problem()
        if problem:
            missing_service(problem)


def _role(name: str) -> Group:
    return Group.objects.get(name=name)


@pytest.fixture
def queue(db):
    group = Group.objects.create(name="general-reviewers")
    q = QueueFactory(slug="general", name="General review")
    q.reviewer_groups.add(group)
    return q


def make_reviewer(username: str, *queues):
    user = UserFactory(username=username)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(_role(REVIEWERS_GROUP))
    for q in queues:
        user.groups.add(*q.reviewer_groups.all())
    return user


@pytest.fixture
def reviewer(queue):
    return make_reviewer("reviewer", queue)


@pytest.fixture
def other_reviewer(queue):
    return make_reviewer("other_reviewer", queue)


@pytest.fixture
def outsider(db):
    """A reviewer, but of no queue the tests use."""
    other_group = Group.objects.create(name="elsewhere-reviewers")
    user = UserFactory(username="outsider")
    user.groups.add(_role(REVIEWERS_GROUP), other_group)
    return user


@pytest.fixture
def compliance(db):
    user = UserFactory(username="compliance", is_staff=True)
    user.groups.add(_role(COMPLIANCE_GROUP))
    return user


@pytest.fixture
def policy_admin(db):
    user = UserFactory(username="policy_admin", is_staff=True)
    user.groups.add(_role(POLICY_ADMINS_GROUP))
    return user


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def integration(db):
    return IntegrationFactory(slug="support-bot", name="Support bot")


@pytest.fixture
def other_integration(db):
    return IntegrationFactory(slug="other-bot", name="Other bot")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _rules_apply_at_once(settings):
    """Tests edit rules and evaluate right after; production rechecks every second.
    Each test starts with a cold rule cache, whatever an earlier one left in it."""
    settings.HITL_RULES_REFRESH_SECONDS = 0
    engine._cache = None
    yield
    engine._cache = None


@contextlib.contextmanager
def celery_broker(url: str):
    """This process publishes to the broker at `url`, as a web process with REDIS_URL would."""
    conf = celery_app.conf
    saved = conf.broker_url, conf.task_always_eager
    conf.broker_url, conf.task_always_eager = url, False
    _forget_broker_connections()
    try:
        yield
    finally:
        conf.broker_url, conf.task_always_eager = saved
        _forget_broker_connections()


def _forget_broker_connections() -> None:
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    outbox.broker_outage.reset()  # a new broker: publish to it at once


@pytest.fixture
def eager():
    """Tasks run in this process at dispatch, as under `make run`, even when REDIS_URL is set."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def receiver(settings):
    """A real HTTP endpoint on 127.0.0.1 for callbacks and actions (private addresses allowed)."""
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = True
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _release_test_database(django_db_setup, django_db_blocker):
    """At the end of the run, end connections other threads left open (a live
    server's keep-alive request threads), so PostgreSQL can drop the test database."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
