"""A backtest over 1M stored items: items per second, queries and peak memory.

    make bench   # or: DATABASE_URL=postgres://... .venv/bin/pytest tests/benchmarks/test_backtest.py -s

The benchmark imports the demo policy (demo/policy.json: six rules over four queues)
and bulk-creates HITL_BENCH_BACKTEST_ITEMS items (default 1,000,000) straight into
reviews_reviewitem, in batches, spread over the last 30 days: 80% model outputs
and 20% agent actions (refunds, transfers, emails, system changes), with realistic
signals (confidence, category, filter flags, rubric score, evaluator disagreement)
and a short input and output text. Then it backtests over the whole window:

- a draft of "Low confidence" with its threshold moved from 0.7 to 0.8 (the rules
  read signals and action only);
- a new draft rule searching output.text with a regular expression (the output
  column is read too).

It prints items per second, queries, the process's resident memory before and at
its highest (sampled from /proc after every batch), the transitions found and the
plan of one batch's query; it asserts only that every item was read, never a timing.
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from policies.backtest import backtest
from policies.io import import_policy
from reviews.models import ItemStatus, ReviewItem
from tests.benchmarks.report import big, record
from tests.factories import IntegrationFactory

ITEMS = int(os.environ.get("HITL_BENCH_BACKTEST_ITEMS", str(big())))
BATCH = 10_000  # rows per bulk_create
SPAN = timedelta(days=30)
POLICY = Path(__file__).resolve().parents[2] / "demo" / "policy.json"

CATEGORIES = ["general"] * 12 + ["billing", "shipping", "healthcare", "finance", "hr", "legal"]
FLAGS = [[]] * 40 + [["pii"], ["jailbreak"], ["self_harm"], ["pii", "profanity"], ["csam"]]
ACTIONS = ["payment.refund", "payment.transfer", "email.send", "crm.update", "system.restart", "legal.notice"]
OUTPUTS = [
    "We are open 9:00 to 17:00, Monday to Friday. Is there anything else I can help with?",
    "Your order has shipped and should arrive within three working days.",
    "I have issued a refund of the amount below; it will show on your statement within a week.",
    "Please do not share your password with anyone, including our staff.",
    "The account number you asked about is on file; I cannot read it out here.",
]

pytestmark = pytest.mark.django_db


def rss_kib() -> int:
    """Resident memory now (Linux), else the high-water mark."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def make_item(rng: random.Random, integration_id: int, at) -> ReviewItem:
    signals = {
        "confidence": round(rng.betavariate(8, 2), 3),
        "category": rng.choice(CATEGORIES),
        "filter_flags": rng.choice(FLAGS),
        "rubric_score": rng.randint(1, 5),
        "evaluator_disagreement": round(rng.random() * 0.4, 3),
    }
    common = {
        "id": uuid.uuid4(),
        "integration_id": integration_id,
        "external_id": f"conv-{rng.randrange(10**9)}/turn-{rng.randint(1, 20)}",
        "input": {"prompt": "Customer asks about their order and account.", "locale": "en-GB"},
        "output": {"text": rng.choice(OUTPUTS)},
        "context": {"conversation_turns": rng.randint(1, 20)},
        "signals": signals,
        "metadata": {"model": "assistant-v3", "region": rng.choice(["eu", "us", "uk"])},
        "status": ItemStatus.AUTO_APPROVED,
        "decided_at": at,
        "created_at": at,
    }
    if rng.random() < 0.2:
        kind = rng.choice(ACTIONS)
        action = {
            "type": kind,
            "params": {"order": str(rng.randrange(10**6)), "amount": round(rng.expovariate(1 / 150), 2)}
            if kind.startswith("payment.")
            else {"target": f"cust-{rng.randrange(10**6)}"},
        }
        if kind.startswith("payment."):
            action["params"]["currency"] = rng.choice(["EUR", "GBP", "USD"])
        return ReviewItem(kind="action", action=action, **common)
    return ReviewItem(kind="output", **common)


def fill(now, integration_id: int) -> float:
    rng = random.Random(12)
    start = now - SPAN
    step = SPAN / ITEMS
    started = time.perf_counter()
    made = 0
    while made < ITEMS:
        size = min(BATCH, ITEMS - made)
        ReviewItem.objects.bulk_create(
            [make_item(rng, integration_id, start + step * (made + i)) for i in range(size)], batch_size=BATCH
        )
        made += size
        if made % 200_000 == 0 or made == ITEMS:
            print(f"  inserted {made:,} items ({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def timed_backtest(name: str, since, until, **kwargs) -> list[str]:
    """Run and print one backtest; the SQL it sent."""
    before = rss_kib()
    peak = [before]

    def progress(read: int, total: int) -> None:
        peak[0] = max(peak[0], rss_kib())

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        report = backtest(since=since, until=until, progress=progress, **kwargs)
        seconds = time.perf_counter() - started
    assert report.read == ITEMS
    print(
        f"\n{name}: {report.read:,} items in {seconds:.1f} s = {report.read / seconds:,.0f} items/s, "
        f"{len(captured)} queries, RSS {mib(before)} -> peak {mib(peak[0])} (+{mib(peak[0] - before)})"
    )
    print(
        f"  matched {report.matched:,}, replaced rule matched {report.replaced_matched}, "
        f"changed {report.changed:,}"
    )
    for transition in report.transitions:
        print(f"  {transition.before.label:>24} -> {transition.after.label:<24} {transition.count:>9,}")
    record("Backtest", f"{name}, {report.read:,} items", f"{report.read / seconds:,.0f} items/s")
    return [query["sql"] for query in captured.captured_queries]


def test_backtest_over_a_million_items(settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    settings.DEBUG = False
    import_policy(json.loads(POLICY.read_text(encoding="utf-8")))
    integration = IntegrationFactory(slug="bench-bot")
    now = timezone.now()
    filled = fill(now, integration.pk)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviews_reviewitem")  # VACUUM cannot run in the test transaction
    print(
        f"\nbacktest over {ITEMS:,} items, PostgreSQL {connection.pg_version // 10000}, "
        f"inserted in {filled:.0f} s ({ITEMS / filled:,.0f} rows/s)"
    )

    since, until = now - SPAN - timedelta(minutes=1), now + timedelta(minutes=1)
    threshold = {
        "name": "Low confidence",
        "conditions": [
            {"field": "signals.confidence", "op": "lt", "value": 0.8},
            {"field": "signals.rubric_score", "op": "lt", "value": 3},
        ],
    }
    sent = timed_backtest("draft: Low confidence 0.7 -> 0.8", since, until, draft=threshold)
    pattern = {
        "name": "Account numbers in output",
        "priority": 5,
        "match": "all",
        "outcome": "block",
        "risk_level": "high",
        "conditions": [{"field": "output.text", "op": "matches", "value": "(?i)account number|refund of"}],
    }
    timed_backtest("draft: new block rule, output.text matches", since, until, draft=pattern)

    batches = [sql for sql in sent if "ORDER BY" in sql and "reviews_reviewitem" in sql]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) {batches[len(batches) // 2]}")
        plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())
    print(f"  plan of a batch query halfway through the window:\n{plan}")
    print(f"process high-water mark (ru_maxrss): {mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}")
