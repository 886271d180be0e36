"""The optional read replica (DATABASE_REPLICA_URL, hitl_project.replica): the router, the
flag and its streams, the settings, and which reads of which pages go where.

This module defines the `replica` alias as DATABASE_REPLICA_URL does under tests (a mirror:
a second connection to the test database); the tests that read through it commit their data
(`on_both`), since another connection never sees a test's open transaction. Queries are
told apart by the connection that ran them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hitl_project.replica import (
    REPLICA,
    ReplicaRouter,
    read_alias,
    reading_from_replica,
    replica_configured,
    streamed_from_replica,
)
from metrics import exports
from metrics.exports import start_export
from metrics.models import FeedbackExport
from reviews.audit import audit_events, history_sources
from reviews.models import Decision, Queue, ReasonCode
from tests.reviews.test_api import token_client
from tests.reviews.test_audit_log import tell_story

ROOT = Path(__file__).resolve().parents[1]
ROUTER = "hitl_project.replica.ReplicaRouter"
TOKEN = "replica-scrape-token"
DECISIONS = f'"{Decision._meta.db_table}"'
EXPORTS = f'"{FeedbackExport._meta.db_table}"'
CODES = f'"{ReasonCode._meta.db_table}"'


def history_tables() -> list[str]:
    return [f'"{source.history._meta.db_table}"' for source in history_sources()]


# --- Fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _replica_alias(django_db_setup) -> Iterator[None]:
    """The `replica` alias, for this module's tests, on the test database, as
    DATABASE_REPLICA_URL sets it under tests (left as it is when the run has it). Defined
    before any test starts, so that a test may name it in its `databases`."""
    added = not replica_configured()
    if added:
        mirrored = copy.deepcopy(connections[DEFAULT_DB_ALIAS].settings_dict)
        mirrored["TEST"] = {**mirrored["TEST"], "MIRROR": DEFAULT_DB_ALIAS}
        connections.settings[REPLICA] = mirrored
    yield
    if added:
        with contextlib.suppress(AttributeError):
            connections[REPLICA].close()
            del connections[REPLICA]
        del connections.settings[REPLICA]


@pytest.fixture
def routed(settings) -> None:
    """The router, as DATABASE_REPLICA_URL installs it."""
    settings.DATABASE_ROUTERS = [ROUTER]  # resets django.db.router's routers


# Committed data (another connection never sees a test's open transaction), readable on both.
on_both = pytest.mark.django_db(
    transaction=True, serialized_rollback=True, databases=[DEFAULT_DB_ALIAS, REPLICA]
)


@pytest.fixture
def replica(routed) -> None:
    """Reads inside `reading_from_replica()` go to the replica (tests marked `on_both`)."""


@pytest.fixture
def no_replica(settings) -> Iterator[None]:
    """As without DATABASE_REPLICA_URL: one database, no router."""
    settings.DATABASE_ROUTERS = []
    saved = connections.settings.pop(REPLICA)
    yield
    connections.settings[REPLICA] = saved


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()


@pytest.fixture
def exports_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "exports"
    monkeypatch.setattr(FeedbackExport._meta.get_field("file"), "storage", FileSystemStorage(location=folder))
    return folder


@pytest.fixture
def story(integration, queue, reviewer, compliance, settings) -> dict:
    """A rejected item, another one pending, an incident, history on several tables
    (tests.reviews.test_audit_log), and a token for GET /metrics."""
    settings.HITL_METRICS_TOKEN = TOKEN
    return tell_story(integration, queue, reviewer)


def is_read(sql: str) -> bool:
    """A SELECT, or PostgreSQL's server-side cursor over one (`.iterator()`)."""
    return sql.startswith("SELECT ") or (sql.startswith("DECLARE ") and " FOR SELECT " in sql)


@dataclass
class Queries:
    """SQL run meanwhile, by the alias that ran it."""

    default: list[str] = field(default_factory=list)
    replica: list[str] = field(default_factory=list)

    def on_default(self, table: str) -> list[str]:
        return [sql for sql in self.default if table in sql]

    def read_on_default(self, table: str) -> list[str]:
        return [sql for sql in self.on_default(table) if is_read(sql)]

    def on_replica(self, table: str) -> list[str]:
        return [sql for sql in self.replica if table in sql]


@contextlib.contextmanager
def recorded() -> Iterator[Queries]:
    queries = Queries()
    with contextlib.ExitStack() as stack:
        on_default = stack.enter_context(CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]))
        on_replica = (
            stack.enter_context(CaptureQueriesContext(connections[REPLICA])) if replica_configured() else None
        )
        yield queries
    queries.default = [query["sql"] for query in on_default.captured_queries]
    queries.replica = [query["sql"] for query in on_replica.captured_queries] if on_replica else []


def streamed(response) -> str:
    assert response.status_code == 200
    assert response.streaming is True
    return b"".join(response.streaming_content).decode()


def signed_in(client, compliance):
    """A session and an API token for compliance staff, and the audit log as it stands."""
    client.force_login(compliance)
    return client, token_client(compliance), audit_events(limit=10_000)[0]


def read_everything(client, api, compliance) -> dict:
    """Every read the replica serves, as its users ask for them: the metrics API, the
    Prometheus scrape, the dashboard, the audit log page, the audit export (consumed, so
    its reads happen) and a feedback export (run here, tasks being eager)."""
    metrics = api.get("/api/v1/metrics/")
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    dashboard = client.get(reverse("admin:metrics_dashboard"))
    audit_log = client.get(reverse("admin:audit_log"))
    audit_export = streamed(client.get("/api/v1/audit/events/"))
    export = start_export(user=compliance, format="jsonl")
    return {
        "metrics": metrics,
        "scrape": scrape,
        "dashboard": dashboard,
        "audit_log": audit_log,
        "audit_export": audit_export,
        "export": export,
    }


def assert_the_answers_are_right(answers: dict, events: list[dict], story: dict, exports_dir: Path) -> None:
    metrics = answers["metrics"]
    assert metrics.status_code == 200
    general = next(q for q in metrics.json()["queues"] if q["queue"] == "general")
    assert general["decisions"] == 1 and general["rejection_rate"] == 1.0
    assert general["backlog"] == 1
    assert answers["scrape"].status_code == 200
    assert 'hitl_decisions_total{queue="general",action="reject"} 1' in answers["scrape"].content.decode()
    assert answers["dashboard"].status_code == 200
    assert answers["dashboard"].context_data["glance"]["decisions"] == 1
    assert answers["audit_log"].status_code == 200
    assert [row.object_id for row in answers["audit_log"].context_data["rows"]] == [
        e["object_id"] for e in events[:50]
    ]
    assert [json.loads(line) for line in answers["audit_export"].splitlines()] == events
    export = FeedbackExport.objects.get(pk=answers["export"].pk)
    assert export.status == FeedbackExport.Status.SUCCEEDED and export.rows == 1
    [line] = (exports_dir / export.file.name).read_text().splitlines()
    assert json.loads(line)["item_id"] == story["first"]


# --- The router and the flag ----------------------------------------------------------------


def test_reads_go_to_the_replica_only_inside_the_block_and_writes_never(routed):
    assert router.db_for_read(Queue) == DEFAULT_DB_ALIAS
    with reading_from_replica():
        assert router.db_for_read(Queue) == REPLICA
        with reading_from_replica():
            assert router.db_for_read(Decision) == REPLICA
        assert router.db_for_read(Decision) == REPLICA  # the inner block's end keeps the outer one
        assert router.db_for_write(Queue) == DEFAULT_DB_ALIAS
        read_there = Queue(slug="x")
        read_there._state.db = REPLICA
        assert router.db_for_write(Queue, instance=read_there) == DEFAULT_DB_ALIAS
    assert router.db_for_read(Queue) == DEFAULT_DB_ALIAS
    assert router.db_for_read(Queue, instance=read_there) == DEFAULT_DB_ALIAS


def test_the_block_is_a_decorator_too(routed):
    @reading_from_replica()
    def where() -> str:
        return router.db_for_read(Queue)

    assert [where(), where()] == [REPLICA, REPLICA]
    assert router.db_for_read(Queue) == DEFAULT_DB_ALIAS


def test_the_replica_is_never_migrated_and_relations_across_are_allowed():
    replica_router = ReplicaRouter()
    assert replica_router.allow_migrate(DEFAULT_DB_ALIAS, "reviews", "decision") is True
    assert replica_router.allow_migrate(REPLICA, "reviews", "decision") is False
    assert replica_router.allow_relation(Queue(), Decision()) is True


def test_without_the_alias_the_block_reads_the_default_database(no_replica, routed):
    with reading_from_replica():
        assert read_alias() == DEFAULT_DB_ALIAS
        assert router.db_for_read(Queue) == DEFAULT_DB_ALIAS


@on_both
def test_inside_a_transaction_reads_stay_where_its_writes_are(replica):
    with transaction.atomic(), reading_from_replica():
        Queue.objects.create(slug="fresh", name="Fresh")
        assert read_alias() == DEFAULT_DB_ALIAS
        with recorded() as queries:
            assert Queue.objects.filter(slug="fresh").exists()  # the replica would not see it yet
        assert queries.replica == [] and len(queries.on_default('"reviews_queue"')) == 1
    with reading_from_replica():
        assert read_alias() == REPLICA


@on_both
def test_a_write_inside_the_block_goes_to_the_default_database_and_reads_to_the_replica(replica):
    with reading_from_replica(), recorded() as queries:
        ReasonCode.objects.create(code="typo", label="Typo", applies_to=["reject"])
        assert ReasonCode.objects.filter(code="typo").count() == 1
    assert [sql.split()[0] for sql in queries.on_default(CODES)] == ["INSERT"]
    assert [sql.split()[0] for sql in queries.on_replica(CODES)] == ["SELECT"]


def test_a_stream_reads_each_piece_from_the_replica_and_nothing_between_pieces():
    inside: list[str] = []

    def pieces():
        for n in range(3):
            inside.append(read_alias())
            yield n

    between = [read_alias() for _ in streamed_from_replica(pieces())]
    assert inside == [REPLICA] * 3
    assert between == [DEFAULT_DB_ALIAS] * 3


def test_a_stream_left_half_read_leaves_no_flag_behind_and_ends_its_reads():
    ended = []

    def pieces():
        try:
            yield from range(10)
        finally:
            ended.append(read_alias())

    stream = streamed_from_replica(pieces())
    assert next(stream) == 0
    assert read_alias() == DEFAULT_DB_ALIAS
    stream.close()  # the server does this when a client goes away
    assert len(ended) == 1
    assert read_alias() == DEFAULT_DB_ALIAS


# --- Settings ------------------------------------------------------------------------------


def database_settings(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    code = (
        "import json; from hitl_project import settings as s; "
        "routers = getattr(s, 'DATABASE_ROUTERS', None); "
        "print(json.dumps({'databases': s.DATABASES, 'routers': routers}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_DEBUG": "1", "DATABASE_URL": "postgres://app@primary:5432/hitl", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_replica_url_adds_a_mirrored_alias_and_the_router():
    configured = database_settings(
        DATABASE_REPLICA_URL="postgres://reader@standby:5432/hitl", DJANGO_CONN_MAX_AGE="30"
    )
    replica = configured["databases"]["replica"]
    assert (replica["HOST"], replica["USER"], replica["NAME"]) == ("standby", "reader", "hitl")
    assert replica["CONN_MAX_AGE"] == 30 and replica["CONN_HEALTH_CHECKS"] is True
    assert replica["TEST"] == {"MIRROR": "default"}
    assert configured["databases"]["default"]["HOST"] == "primary"
    assert configured["routers"] == [ROUTER]


def test_without_the_replica_url_there_is_one_database_and_no_router():
    for unset in ({}, {"DATABASE_REPLICA_URL": "  "}):
        configured = database_settings(**unset)
        assert list(configured["databases"]) == ["default"]
        assert configured["routers"] is None


# --- Which reads go where -------------------------------------------------------------------


@on_both
def test_metrics_and_audit_reads_go_to_the_replica_and_the_rest_stays_on_default(
    replica, story, client, compliance, exports_dir, eager
):
    client, api, events = signed_in(client, compliance)
    with recorded() as queries:
        answers = read_everything(client, api, compliance)
    assert_the_answers_are_right(answers, events, story, exports_dir)

    # The replica only ever read; it read the figures, the history and the export's rows.
    assert queries.replica and all(is_read(sql) for sql in queries.replica)
    assert queries.on_replica(DECISIONS)
    for table in history_tables():
        assert queries.on_replica(table), table
        assert not queries.read_on_default(table), table  # written there: the export's history
    # None of those reads touched the default database; who may read what did (sessions,
    # tokens, groups, queues), and the export's progress was written there.
    assert queries.on_default(DECISIONS) == []
    assert queries.on_default('"django_session"') and queries.on_default('"authtoken_token"')
    assert not queries.on_replica('"django_session"') and not queries.on_replica('"authtoken_token"')
    assert not queries.on_replica('"auth_user_groups"')
    export_writes = [sql.split()[0] for sql in queries.on_default(EXPORTS) if not is_read(sql)]
    assert "INSERT" in export_writes and "UPDATE" in export_writes
    # The export waited for the replica to show it running, then read its rows there.
    assert [sql.split()[0] for sql in queries.on_replica(EXPORTS)] == ["SELECT"]


@on_both
def test_the_dashboards_approval_runs_read_the_replica_too(replica, story, client, compliance):
    """Its raw SQL (window functions) runs on the connection the router picks, too."""
    client.force_login(compliance)
    with recorded() as queries:
        assert client.get(reverse("admin:metrics_dashboard")).status_code == 200
    assert [sql for sql in queries.replica if sql.startswith("SELECT q, r, MAX(n)")]
    assert not queries.on_default(DECISIONS)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_a_replica_the_same_reads_use_the_default_database(
    no_replica, story, client, compliance, exports_dir, eager
):
    assert REPLICA not in connections
    client, api, events = signed_in(client, compliance)
    with recorded() as queries:
        answers = read_everything(client, api, compliance)
    assert_the_answers_are_right(answers, events, story, exports_dir)
    assert queries.replica == []
    assert queries.on_default(DECISIONS)
    for table in history_tables():
        assert queries.on_default(table), table


@pytest.mark.postgres
@on_both
def test_an_export_reads_the_default_database_while_the_replica_lags(
    replica, story, compliance, exports_dir, eager, reviewer, monkeypatch
):
    """A replica that has not caught up with the export's start would leave out the
    latest decisions, for good: the next incremental export starts where this one ends."""
    monkeypatch.setattr(exports, "REPLICA_CATCH_UP_SECONDS", 0.3)
    monkeypatch.setattr(exports, "REPLICA_POLL_SECONDS", 0.05)
    second = story["second"]
    with transaction.atomic(using=REPLICA), connections[REPLICA].cursor() as cursor:
        # The replica's view stops here, as a lagging standby's would.
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute(f"SELECT count(*) FROM {DECISIONS}")
        decided = token_client(reviewer).post(
            f"/api/v1/items/{second}/decisions/", {"action": "approve", "justification": "Fine."}
        )
        assert decided.status_code == 201, decided.content
        with recorded() as queries:
            export = start_export(user=compliance, format="jsonl")
    export.refresh_from_db()
    assert export.status == FeedbackExport.Status.SUCCEEDED and export.rows == 2
    lines = (exports_dir / export.file.name).read_text().splitlines()
    assert {json.loads(line)["item_id"] for line in lines} == {story["first"], second}
    assert queries.on_default(DECISIONS) and not queries.on_replica(DECISIONS)
    assert len(queries.on_replica(EXPORTS)) >= 2  # it asked again until it gave up
