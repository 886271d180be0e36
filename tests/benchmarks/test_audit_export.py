"""The audit export at 100k and 1M history rows: rows per second and peak memory.

    make bench   # or: DATABASE_URL=postgres://... .venv/bin/pytest tests/benchmarks/test_audit_export.py -s

For each size the benchmark bulk-creates that many item history rows (five
versions of each item, actors spread over a few people, integrations and tasks,
one row a millisecond apart) in the PostgreSQL test database, then streams
`GET /api/v1/audit/events/` as a compliance user through Django's test client
and reads every line. It prints rows, seconds, rows per second, the process's
resident memory before and at its highest during the export (sampled from
/proc every 10,000 lines), the SQL plan of one page's query on the large table,
and asserts only that every row came out: never a timing.

Environment: HITL_BENCH_AUDIT_ROWS (comma-separated sizes, default
"100000,1000000"), HITL_BENCH_AUDIT_FORMATS (default "jsonl,csv"),
HITL_BENCH_PROFILE=1 (also cProfile one export of each size).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import resource
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.utils import timezone

from reviews import services
from reviews.audit import EXPORT_PAGE_SIZE, AuditPosition, audit_events, history_sources
from reviews.models import COMPLIANCE_GROUP
from tests.factories import GateRuleFactory, UserFactory, submission

SIZES = [int(n) for n in os.environ.get("HITL_BENCH_AUDIT_ROWS", "100000,1000000").split(",")]
FORMATS = os.environ.get("HITL_BENCH_AUDIT_FORMATS", "jsonl,csv").split(",")
PROFILE = os.environ.get("HITL_BENCH_PROFILE", "").strip() in {"1", "true", "yes"}
BATCH = 5_000
VERSIONS = 5  # rows per item: one creation, four changes
ACTORS = [("user", "alice"), ("user", "bob"), ("integration", "support-bot"), ("system", "sla-sweep")]
STATUSES = ["pending", "in_review", "approved", "rejected"]

pytestmark = pytest.mark.django_db


def rss_kib() -> int:
    """Resident memory now (Linux), else the high-water mark."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def add_history(count: int, template, start) -> None:
    """`count` item history rows, built and inserted a batch at a time (memory stays flat)."""
    history = type(template)
    data = {f.attname: getattr(template, f.attname) for f in history._meta.concrete_fields}
    del data["history_id"]
    made = 0
    while made < count:
        rows = []
        for i in range(made, min(made + BATCH, count)):
            version = i % VERSIONS
            if version == 0:
                item_id = uuid.uuid4()
            kind, name = ACTORS[i % len(ACTORS)]
            rows.append(
                history(
                    **{
                        **data,
                        "id": item_id,
                        "external_id": f"bench-{i // VERSIONS}",
                        "status": STATUSES[version % len(STATUSES)],
                        "review_round": version,
                        "history_date": start + timedelta(milliseconds=i),
                        "history_type": "+" if version == 0 else "~",
                        "history_actor_kind": kind,
                        "history_actor": name,
                        "history_change_reason": f"bench step {version}",
                    }
                )
            )
        history._default_manager.bulk_create(rows, batch_size=BATCH)
        made += len(rows)


def stream(client: Client, fmt: str) -> tuple[int, float, int]:
    """Lines read, seconds taken, and the highest resident memory seen (KiB)."""
    started = time.perf_counter()
    response = client.get("/api/v1/audit/events/", {"format": fmt})
    assert response.status_code == 200 and response.streaming
    lines, peak = 0, rss_kib()
    for _line in response.streaming_content:  # one event (or the CSV header) each
        lines += 1
        if lines % 10_000 == 0:
            peak = max(peak, rss_kib())
    return lines, time.perf_counter() - started, max(peak, rss_kib())


def plan_of_a_deep_page(total: int, start) -> str:
    """EXPLAIN ANALYZE of the item table's query for a page halfway down the log."""
    middle = AuditPosition(start + timedelta(milliseconds=total // 2), "reviews.reviewitem", 1)
    captured = {}

    def keep(execute, sql, params, many, context):
        captured.setdefault("sql", (sql, params))  # the first: the page query
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        audit_events(model="reviews.reviewitem", before=middle.encode(), limit=EXPORT_PAGE_SIZE)
    sql, params = captured["sql"]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) {sql}", params)
        return "\n".join(f"    {row[0]}" for row in cursor.fetchall())


def profile(client: Client, fmt: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    stream(client, fmt)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(25)
    print(out.getvalue())


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def test_audit_export_throughput_and_memory(integration, queue):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    GateRuleFactory(name="Review everything", queue=queue)
    item = services.submit_item(integration=integration, payload=submission()).item
    template = item.history.first()
    compliance = UserFactory(username="bench-compliance", is_staff=True)
    compliance.groups.add(Group.objects.get(name=COMPLIANCE_GROUP))
    client = Client()
    client.force_login(compliance)

    print(f"\naudit export, Django test client, PostgreSQL {connection.pg_version // 10000}, "
          f"{EXPORT_PAGE_SIZE} events a page:")  # fmt: skip
    header = ("rows", "format", "seconds", "rows/s", "RSS before", "RSS peak", "growth")
    print("{:>10} {:>6} {:>8} {:>9} {:>11} {:>9} {:>8}".format(*header))
    done = 0
    start = timezone.now() - timedelta(days=60)
    for size in SIZES:
        filled = time.perf_counter()
        add_history(size - done, template, start + timedelta(milliseconds=done))
        done = size
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        filled = time.perf_counter() - filled
        expected = sum(source.history._default_manager.count() for source in history_sources())
        for fmt in FORMATS:
            before = rss_kib()
            lines, seconds, peak = stream(client, fmt)
            assert lines == expected + (1 if fmt == "csv" else 0)
            figures = (f"{size:,}", fmt, f"{seconds:.1f}", f"{expected / seconds:,.0f}",
                       mib(before), mib(peak), mib(peak - before))  # fmt: skip
            print("{:>10} {:>6} {:>8} {:>9} {:>11} {:>9} {:>8}".format(*figures))
        print(f"{'':>10} (inserting the rows took {filled:.0f} s)")
        if PROFILE:
            profile(client, FORMATS[0])
        print(f"  plan of the item table's page query halfway down {size:,} rows:")
        print(plan_of_a_deep_page(size, start))
    print(f"process high-water mark (ru_maxrss): {mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}")
