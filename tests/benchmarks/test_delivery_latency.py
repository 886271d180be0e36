"""Decision-to-delivered-webhook latency with a real Celery worker.

    make bench   # or: .venv/bin/pytest tests/benchmarks/test_delivery_latency.py -s

A private redis-server and a `celery worker` (concurrency 4) run this project
against the PostgreSQL test database; a local receiver stands in for the
integration. Items are approved one after another at a steady pace (not a
burst, which would measure the backlog instead), and for each the time from
calling `decide` to the action request arriving at the receiver is recorded.
Prints p50, p95 and max. The goal on this machine: p95 under 100 ms at 20 decisions a
second for a minute. It asserts
only that every action arrived, never on timings.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest
from django.db import connection

from reviews import services
from tests.benchmarks.report import record
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, action_submission
from tests.integration.conftest import broker, celery_env, redis_server, worker  # noqa: F401 (fixtures)
from tests.processes import wait_until

ITEMS = int(os.environ.get("HITL_BENCH_LATENCY_ITEMS", "1200"))  # a minute at 20 per second
PACE_SECONDS = float(os.environ.get("HITL_BENCH_LATENCY_PACE", "0.05"))

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_decision_to_delivered_webhook_latency(integration, queue, receiver, worker):  # noqa: F811
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    integration.action_url = f"{receiver.url}/actions"
    integration.save()
    GateRuleFactory(name="Review everything", queue=queue)
    reviewer = make_reviewer("reviewer", queue)
    items = [
        services.submit_item(integration=integration, payload=action_submission(external_id=f"lat-{i}")).item
        for i in range(ITEMS)
    ]

    decided_at = {}
    for item in items:
        decided_at[str(item.pk)] = time.time()
        services.decide(item=item, user=reviewer, action="approve", justification="Benchmark.")
        time.sleep(PACE_SECONDS)

    def arrivals():
        first = {}
        for request in receiver.requests:
            key = request.headers.get("Idempotency-Key")
            if key and key not in first:
                first[key] = request.received_at.timestamp()
        return first if len(first) == len(items) else None

    first_arrival = wait_until(arrivals, 120, interval=0.5, what="every action delivered")
    latencies = sorted((first_arrival[key] - decided_at[key]) * 1000 for key in decided_at)
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    pace = f"one every {PACE_SECONDS * 1000:.0f} ms"
    print(
        f"\ndecision -> delivered action webhook, {len(latencies)} items, {pace}: "
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms (goal: p95 < 100 ms)"
    )
    rate = f"{1 / PACE_SECONDS:.0f}/s for {ITEMS * PACE_SECONDS:.0f} s"
    record(
        "Delivery",
        f"decision -> delivered webhook p95, {rate}",
        f"{p95:.0f} ms (p50 {p50:.0f} ms)",
        target="< 100 ms",
        met=p95 < 100,
    )
