"""A feedback export at 100k and 1M final decisions: rows per second and peak memory.

    make bench
    DATABASE_URL=postgres://... .venv/bin/pytest tests/benchmarks/test_feedback_export.py -s

The benchmark fills the PostgreSQL test database through COPY, a batch at a time, with
decided items and their decisions (70% approved, 15% edited, 15% rejected; one in
ten in a four-eyes queue, with a first approval or edit before the final decision),
each with a realistic input, output and matched-rule snapshot, up to each size
(`report.big() // 10` and `report.big()`: 100k and 1M items, or 10k and 100k under
BENCH_SCALE=small; HITL_BENCH_EXPORT_SIZES, comma-separated, instead), then runs
VACUUM ANALYZE.

At each size it runs `metrics.exports.write_export` for each of
HITL_BENCH_EXPORT_FORMATS (default "jsonl,csv,preference_pairs") over every decision,
in a fresh Python process (as a worker would: Django set up, one export, nothing
else), and prints the rows, seconds, rows per second, the size of the file and the
process's peak resident memory (VmHWM) with that of a process that only sets Django
up. It records rows/s (target: at least 20,000) and the peak (target: at the large
size within 1.2x the peak at the small one) of each format at both sizes. It asserts
only that every row was written, never a timing.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from metrics import exports
from metrics.models import FeedbackExport
from reviews.models import Decision, ReviewItem
from tests.benchmarks.report import big, record
from tests.benchmarks.test_metrics_answer import copy_rows
from tests.factories import IntegrationFactory, QueueFactory, UserFactory
from tests.processes import ROOT, database_url

SIZES = [int(size) for size in os.environ.get("HITL_BENCH_EXPORT_SIZES", f"{big() // 10},{big()}").split(",")]
FORMATS = os.environ.get("HITL_BENCH_EXPORT_FORMATS", "jsonl,csv,preference_pairs").split(",")
AREA = "Feedback export"
RATE_TARGET = 20_000
PEAK_RATIO_TARGET = 1.2
BATCH_ITEMS = 50_000
SPAN = timedelta(weeks=8)

# Committed, so that the export's own process reads what was filled.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# One export in a process of its own; prints what it measured as JSON. Its peak memory
# is VmHWM (Linux): ru_maxrss would carry over the parent's from before the exec.
EXPORT_SCRIPT = """
import json, sys, time
from pathlib import Path
import django
django.setup()
from metrics.exports import write_export
from metrics.models import FeedbackExport
from reviews.history import acting_as_system
def peak_kib():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
if sys.argv[1] == "-":
    print(json.dumps({"peak_kib": peak_kib()}))
    sys.exit()
started = time.perf_counter()
with acting_as_system("feedback-export"):
    status = write_export(sys.argv[1])
seconds = time.perf_counter() - started
export = FeedbackExport.objects.get(pk=sys.argv[1])
print(json.dumps({"status": status, "error": export.error, "rows": export.rows, "seconds": seconds,
                  "path": export.file.path if export.file else None, "peak_kib": peak_kib()}))
"""


class Decisions:
    """Generates decided items and their decisions, a batch at a time."""

    def __init__(self, *, now, single, four_eyes, reviewers, integration_id, seed=7):
        self.random = random.Random(seed)
        self.now = now
        self.single, self.four_eyes, self.reviewers = single, four_eyes, reviewers
        self.integration_id = integration_id
        self.items = 0
        self.snapshots = {
            queue.pk: json.dumps(
                [
                    {
                        "id": n,
                        "name": f"Rule {n} for {queue.slug}",
                        "version": 3,
                        "outcome": "review",
                        "queue": queue.slug,
                        "risk_level": "medium",
                        "description": "",
                        "fired": [
                            {
                                "field": "signals.confidence",
                                "op": "lt",
                                "value": 0.7,
                                "actual": 0.42,
                                "present": True,
                            }
                        ],
                    }
                    for n in (1, 2)
                ]
            )  # fmt: skip
            for queue in [*single, *four_eyes]
        }

    def batch(self, size: int) -> tuple[list[dict], list[dict]]:
        items, decisions = [], []
        for _ in range(size):
            item, made = self.one()
            items.append(item)
            decisions.extend(made)
        return items, decisions

    def one(self) -> tuple[dict, list[dict]]:
        rnd = self.random
        self.items += 1
        n = self.items
        created = self.now - SPAN + timedelta(seconds=rnd.uniform(0, SPAN.total_seconds() - 7200))
        four_eyes = n % 10 == 0
        queue = rnd.choice(self.four_eyes if four_eyes else self.single)
        draw = rnd.random()
        outcome = "approved" if draw < 0.7 else "edited" if draw < 0.85 else "rejected"
        output = {"text": f"Thank you for your message about order {n}. " * 4}
        item = {
            "id": uuid.uuid4(),
            "external_id": f"conv-{n}/turn-{n % 7}",
            "kind": "output",
            "input": json.dumps({"prompt": f"Where is my order {n}? It has been a week.", "messages": []}),
            "output": json.dumps(output),
            "signals": json.dumps({"confidence": 0.42, "category": "orders"}),
            "matched_rules": self.snapshots[queue.pk],
            "integration_id": self.integration_id,
            "queue_id": queue.pk,
            "status": outcome,
            "required_approvals": queue.required_approvals,
            "created_at": created,
            "entered_queue_at": created,
            "due_at": created + queue.sla,
        }
        edited = json.dumps({"text": f"Your order {n} ships tomorrow; we are sorry for the wait."})
        first, second = rnd.sample(self.reviewers, 2)
        at = created + timedelta(seconds=rnd.randint(30, 3000))
        made = []
        if four_eyes:
            edit_first = outcome == "edited"
            made.append(self.decision(item, queue, first, "edit" if edit_first else "approve", at, 1, False,
                                      edited if edit_first else None))  # fmt: skip
            at += timedelta(seconds=rnd.randint(30, 3000))
            made.append(self.decision(item, queue, second, "reject" if outcome == "rejected" else "approve",
                                      at, 2, True, None))  # fmt: skip
        else:
            action = {"approved": "approve", "edited": "edit", "rejected": "reject"}[outcome]
            made.append(self.decision(item, queue, first, action, at, 1, True,
                                      edited if action == "edit" else None))  # fmt: skip
        item.update(decided_at=at, updated_at=at)
        if outcome == "approved":
            item["final_output"] = item["output"]
        elif outcome == "edited":
            item["final_output"] = edited
        return item, made

    def decision(self, item, queue, reviewer, action, at, step, final, edited) -> dict:
        codes = ["factual_error"] if action in ("edit", "reject") else []
        return {
            "item_id": item["id"],
            "queue_id": queue.pk,
            "reviewer_id": reviewer,
            "action": action,
            "justification": "Checked against the order system.",
            "cited_codes": json.dumps(codes),
            "edited_output": edited,
            "round": 1,
            "step": step,
            "is_final": final,
            "seconds_spent": self.random.randint(10, 900),
            "created_at": at,
        }


def fill(generator: Decisions, up_to: int) -> Iterator[str]:
    while generator.items < up_to:
        items, decisions = generator.batch(min(BATCH_ITEMS, up_to - generator.items))
        copy_rows(ReviewItem, items)
        copy_rows(Decision, decisions)
        yield f"{generator.items:,} items"


def in_a_process(env: dict, export_id: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_SCRIPT, export_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def plan(fmt: str, until) -> str:
    """The plan of the export's query over every decision, as its server-side cursor
    runs it (PostgreSQL plans a cursor for its first rows, not as a plain query)."""
    rows = exports.final_decisions(since=None, until=until, edits_only=fmt == "preference_pairs")
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN DECLARE export NO SCROLL CURSOR WITH HOLD FOR {sql}", params)
        return "\n".join(f"    {row[0]}" for row in cursor.fetchall())


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def test_feedback_export_throughput_and_memory(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    now = timezone.now()
    integration = IntegrationFactory(slug="bench-bot")
    single = [QueueFactory(slug=f"bench-{n}", sla_minutes=60) for n in range(4)]
    four_eyes = [QueueFactory(slug="bench-four-eyes", required_approvals=2, sla_minutes=60)]
    reviewers = [UserFactory(username=f"bench-reviewer-{n}").pk for n in range(20)]
    requester = UserFactory(username="bench-compliance")
    generator = Decisions(now=now, single=single, four_eyes=four_eyes, reviewers=reviewers,
                          integration_id=integration.pk)  # fmt: skip
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "HITL_EXPORTS_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "hitl_project.settings",
        "DJANGO_SECRET_KEY": "bench",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    bare = in_a_process(env, "-")["peak_kib"]

    version = connection.pg_version // 10000
    print(f"\nfeedback export, write_export in a process of its own, PostgreSQL {version} "
          f"(a process that only sets Django up peaks at {mib(bare)}):")  # fmt: skip
    header = ("rows", "format", "seconds", "rows/s", "file", "peak RSS", "vs first")
    print("{:>10} {:>17} {:>8} {:>9} {:>10} {:>9} {:>9}".format(*header))
    first_peak: dict[str, int] = {}
    for size in SIZES:
        started = time.perf_counter()
        for _progress in fill(generator, size):
            pass
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        filled = time.perf_counter() - started
        finals = Decision.objects.filter(is_final=True).count()
        for fmt in FORMATS:
            export = FeedbackExport.objects.create(format=fmt, until=now, requested_by=requester)
            measured = in_a_process(env, str(export.pk))
            assert measured["status"] == "succeeded", measured["error"]
            edits = ReviewItem.objects.filter(status="edited").count()
            assert measured["rows"] == (edits if fmt == "preference_pairs" else finals)
            path = measured["path"]
            size_mib = os.path.getsize(path) / 2**20
            os.remove(path)
            peak = measured["peak_kib"]
            ratio = peak / first_peak.setdefault(fmt, peak)
            rate = measured["rows"] / measured["seconds"]
            figures = (f"{measured['rows']:,}", fmt, f"{measured['seconds']:.1f}", f"{rate:,.0f}",
                       f"{size_mib:,.0f} MiB", mib(peak), f"{ratio:.2f}x")  # fmt: skip
            print("{:>10} {:>17} {:>8} {:>9} {:>10} {:>9} {:>9}".format(*figures), flush=True)
            at = f"{fmt} at {size:,} items"
            record(AREA, f"{at}: rows/s", f"{rate:,.0f}", target=f">= {RATE_TARGET:,} rows/s",
                   met=rate >= RATE_TARGET)  # fmt: skip
            if size == SIZES[0]:
                record(AREA, f"{at}: peak RSS", mib(peak))
            else:
                record(AREA, f"{at}: peak RSS", f"{mib(peak)} ({ratio:.2f}x at {SIZES[0]:,})",
                       target=f"<= {PEAK_RATIO_TARGET}x the peak at {SIZES[0]:,}",
                       met=ratio <= PEAK_RATIO_TARGET)  # fmt: skip
        print(f"{'':>10} (filling up to {size:,} items took {filled:.0f} s)", flush=True)
    print(f"  plan of the {FORMATS[0]} export's query over {SIZES[-1]:,} items:")
    print(plan(FORMATS[0], now))
