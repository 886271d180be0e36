"""The audit export at 100k and 1M history rows: rows per second and peak memory.

    make bench   # or: DATABASE_URL=postgres://... .venv/bin/pytest tests/benchmarks/test_audit_export.py -s

For each size the benchmark bulk-creates that many item history rows (five
versions of each item, actors spread over a few people, integrations and tasks,
one row a millisecond apart) in the PostgreSQL test database, then streams
`GET /api/v1/audit/events/` as a compliance user through Django's test client
and reads every line. It prints rows, seconds, rows per second, the process's
resident memory before and at its highest during the export (sampled from
/proc after each piece of the response), the SQL plans of one page's queries on
the large table, and asserts only that every row came out: never a timing.

The sizes are `report.big() // 10` and `report.big()` (100k and 1M; 10k and 100k
under BENCH_SCALE=small). For each format it records rows/s at both sizes
(target: at least 20,000) and the peak memory at both (target: the peak at the
large size within 1.2x the peak at the small one).

Environment: HITL_BENCH_AUDIT_ROWS (comma-separated sizes instead),
HITL_BENCH_AUDIT_FORMATS (default "jsonl,csv"), HITL_BENCH_PROFILE=1 (also
cProfile one export of each size).
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
from tests.benchmarks.report import big, record
from tests.factories import GateRuleFactory, UserFactory, submission

SIZES = [int(n) for n in os.environ.get("HITL_BENCH_AUDIT_ROWS", f"{big() // 10},{big()}").split(",")]
FORMATS = os.environ.get("HITL_BENCH_AUDIT_FORMATS", "jsonl,csv").split(",")
PROFILE = os.environ.get("HITL_BENCH_PROFILE", "").strip() in {"1", "true", "yes"}
BATCH = 5_000
VERSIONS = 5  # rows per item: one creation, four changes
ACTORS = [("user", "alice"), ("user", "bob"), ("integration", "support-bot"), ("system", "sla-sweep")]
STATUSES = ["pending", "in_review", "approved", "rejected"]
AREA = "Audit export"
RATE_TARGET = 20_000
PEAK_RATIO_TARGET = 1.2
PLAN_LINE = 200  # characters of a plan line shown

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
    for piece in response.streaming_content:  # many lines each; no value spans two lines here
        lines += piece.count(b"\n")
        peak = max(peak, rss_kib())
    return lines, time.perf_counter() - started, max(peak, rss_kib())


def plans_of_a_deep_page(total: int, start) -> str:
    """EXPLAIN ANALYZE of the item table's queries for a page halfway down the log: its
    rows, and the versions before the changed ones."""
    middle = AuditPosition(start + timedelta(milliseconds=total // 2), "reviews.reviewitem", 1)
    captured = []

    def keep(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        audit_events(model="reviews.reviewitem", before=middle.encode(), limit=EXPORT_PAGE_SIZE)
    plans = []
    with connection.cursor() as cursor:
        for name, (sql, params) in zip(("rows", "versions before"), captured, strict=False):
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) {sql}", params)
            plans.append(f"  {name}:")
            plans.extend(f"    {row[0][:PLAN_LINE]}" for row in cursor.fetchall())  # not every id
    return "\n".join(plans)


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
    # Warm: the first request of a process pays for its imports, connection and plans.
    b"".join(client.get("/api/v1/audit/events/", {"model": "reviews.queue"}).streaming_content)

    print(f"\naudit export, Django test client, PostgreSQL {connection.pg_version // 10000}, "
          f"{EXPORT_PAGE_SIZE} events a page:")  # fmt: skip
    header = ("rows", "format", "seconds", "rows/s", "RSS before", "RSS peak", "growth")
    print("{:>10} {:>6} {:>8} {:>9} {:>11} {:>9} {:>8}".format(*header))
    done = 0
    start = timezone.now() - timedelta(days=60)
    first_peak: dict[str, int] = {}
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
            rate = expected / seconds
            figures = (f"{size:,}", fmt, f"{seconds:.1f}", f"{rate:,.0f}",
                       mib(before), mib(peak), mib(peak - before))  # fmt: skip
            print("{:>10} {:>6} {:>8} {:>9} {:>11} {:>9} {:>8}".format(*figures))
            at = f"{fmt} at {size:,} events"
            record(AREA, f"{at}: rows/s", f"{rate:,.0f}", target=f">= {RATE_TARGET:,} rows/s",
                   met=rate >= RATE_TARGET)  # fmt: skip
            ratio = peak / first_peak.setdefault(fmt, peak)
            if size == SIZES[0]:
                record(AREA, f"{at}: peak RSS", mib(peak))
            else:
                record(AREA, f"{at}: peak RSS", f"{mib(peak)} ({ratio:.2f}x at {SIZES[0]:,})",
                       target=f"<= {PEAK_RATIO_TARGET}x the peak at {SIZES[0]:,}",
                       met=ratio <= PEAK_RATIO_TARGET)  # fmt: skip
        print(f"{'':>10} (inserting the rows took {filled:.0f} s)")
        if PROFILE:
            profile(client, FORMATS[0])
        print(f"  plans of the item table's page queries halfway down {size:,} rows:")
        print(plans_of_a_deep_page(size, start))
    print(f"process high-water mark (ru_maxrss): {mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}")
