"""How long the metrics answer and the Prometheus scrape take over 1M decisions.

    make bench   # or: DATABASE_URL=postgres://... .venv/bin/pytest tests/benchmarks/test_metrics_answer.py -s

The benchmark fills the PostgreSQL test database straight through COPY, a batch at
a time (not through the services: that would take hours), then runs VACUUM ANALYZE
as autovacuum would on tables this size: ten queues (two of them
four-eyes), forty reviewers, and items over the last eight weeks until there are
HITL_BENCH_METRICS_DECISIONS decisions (default 1,000,000). Of the items, 1% are
still open and 1% expired; the others are decided once (70% approved, 15% edited,
15% rejected), by two reviewers in a four-eyes queue (15%), or escalated and then
decided in another queue (10%). One decided item in 80 has an incident, one in 160
an outbox message (a quarter of them failed).

Then it times, through Django's test client, each of: `GET /api/v1/metrics/` as
compliance (every queue) for the default week and for the whole eight weeks (every
decision in the window), for one queue, as a reviewer of three queues, and
`GET /metrics`; each the median of HITL_BENCH_METRICS_ROUNDS (default 5) after a
warm-up. Target: under 1 s for the answer. It prints the plan of the per-queue query
over the whole window, and asserts only that the answers count every decision, never
a timing.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import JSONField
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics import selectors
from reviews.models import (
    COMPLIANCE_GROUP,
    REVIEWERS_GROUP,
    Decision,
    Incident,
    OutboxMessage,
    Queue,
    ReviewItem,
)
from tests.benchmarks.report import big, record
from tests.factories import IntegrationFactory, QueueFactory, UserFactory

DECISIONS = int(os.environ.get("HITL_BENCH_METRICS_DECISIONS", str(big())))
ROUNDS = int(os.environ.get("HITL_BENCH_METRICS_ROUNDS", "5"))
TOKEN = "bench-metrics-token"
SPAN = timedelta(weeks=8)
BATCH_ITEMS = 50_000
QUEUES, FOUR_EYES, REVIEWERS_PER_QUEUE = 10, 2, 4

# Committed, so that VACUUM can run after the fill (the test database is emptied after).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def column_defaults(model) -> dict[str, object]:
    """Each column's value when a row does not say, as COPY's text format reads it."""
    defaults = {}
    for field in model._meta.concrete_fields:
        if field.primary_key and not field.has_default():
            continue  # an identity column
        value = field.get_default()
        if isinstance(field, JSONField) and value is not None:
            value = json.dumps(value)
        defaults[field.column] = value
    return defaults


def copy_rows(model, rows: Iterable[dict]) -> int:
    """COPY rows (column -> value) into the model's table; the rest take their defaults."""
    defaults = column_defaults(model)
    columns = list(defaults)
    names = ", ".join(f'"{column}"' for column in columns)
    count = 0
    with (
        connection.cursor() as cursor,
        cursor.copy(f'COPY "{model._meta.db_table}" ({names}) FROM STDIN') as copy,
    ):
        for row in rows:
            copy.write_row([row.get(column, defaults[column]) for column in columns])
            count += 1
    return count


class History:
    """Generates the items, decisions, incidents and outbox messages, a batch at a time."""

    def __init__(self, *, now, queues, reviewers_of, integration_id, seed=12):
        self.random = random.Random(seed)
        self.now = now
        self.single = [q for q in queues if q.required_approvals == 1]
        self.four_eyes = [q for q in queues if q.required_approvals == 2]
        self.reviewers_of = reviewers_of
        self.integration_id = integration_id
        self.decisions = 0
        self.items = 0

    def minutes(self, mean: float) -> timedelta:
        return timedelta(minutes=min(self.random.expovariate(1 / mean), 24 * 60))

    def spent(self) -> int | None:
        return None if self.random.random() < 0.2 else self.random.randint(10, 900)

    def batch(self, size: int) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
        items, decisions, incidents, messages = [], [], [], []
        for _ in range(size):
            if self.decisions + len(decisions) >= DECISIONS:
                break
            item, made = self.one_item()
            items.append(item)
            decisions.extend(made)
            self.items += 1
            if made and self.items % 80 == 0:
                incidents.append(self.incident(item, made[-1]))
            if made and self.items % 160 == 0:
                failed = self.items % 640 == 0
                messages.append(self.message(item, "failed" if failed else "pending"))
        self.decisions += len(decisions)
        return items, decisions, incidents, messages

    def one_item(self) -> tuple[dict, list[dict]]:
        rnd = self.random
        created = self.now - SPAN + timedelta(seconds=rnd.uniform(0, SPAN.total_seconds() - 3600))
        kind = rnd.random()
        queue = rnd.choice(self.four_eyes if 0.02 <= kind < 0.17 else self.single)
        item = {
            "id": uuid.uuid4(),
            "kind": "output",
            "input": '{"prompt": "bench"}',
            "output": '{"text": "bench"}',
            "integration_id": self.integration_id,
            "queue_id": queue.pk,
            "status": "pending",
            "required_approvals": queue.required_approvals,
            "created_at": created,
            "updated_at": created,
            "entered_queue_at": created,
            "at_risk_at": created + queue.sla / 2,
            "due_at": created + queue.sla,
        }
        if kind < 0.01:  # still open
            return item, []
        if kind < 0.02:
            item.update(status="expired", decided_at=item["due_at"], updated_at=item["due_at"])
            return item, []
        made = []
        at = created
        if kind < 0.17:  # four-eyes: two approvals, or an approval and a rejection
            first, second = rnd.sample(self.reviewers_of[queue.pk], 2)
            at += self.minutes(30)
            made.append(self.decision(item, queue, first, "approve", at, 1, 1, final=False))
            at += self.minutes(30)
            action = "reject" if rnd.random() < 0.15 else "approve"
            made.append(self.decision(item, queue, second, action, at, 1, 2, final=True))
            status = "rejected" if action == "reject" else "approved"
        else:
            round_ = 1
            if kind < 0.27:  # escalated to another queue, decided there
                at += self.minutes(20)
                reviewer = rnd.choice(self.reviewers_of[queue.pk])
                made.append(self.decision(item, queue, reviewer, "escalate", at, 1, 1, final=False))
                queue = rnd.choice([q for q in self.single if q.pk != queue.pk])
                round_ = 2
                item.update(queue_id=queue.pk, review_round=2, entered_queue_at=at, due_at=at + queue.sla)
                item["at_risk_at"] = at + queue.sla / 2
            at += self.minutes(40)
            draw = rnd.random()
            action = "approve" if draw < 0.7 else "edit" if draw < 0.85 else "reject"
            reviewer = rnd.choice(self.reviewers_of[queue.pk])
            made.append(self.decision(item, queue, reviewer, action, at, round_, 1, final=True))
            status = {"approve": "approved", "edit": "edited", "reject": "rejected"}[action]
        if at >= self.now:  # would be decided in the future: still open instead
            item["queue_id"] = queue.pk
            return item, [d for d in made if d["created_at"] < self.now and not d["is_final"]]
        item.update(status=status, decided_at=at, updated_at=at)
        if status != "rejected":
            item["final_output"] = item["output"]
        return item, made

    def decision(self, item, queue, reviewer, action, at, round_, step, *, final) -> dict:
        return {
            "item_id": item["id"],
            "queue_id": queue.pk,
            "reviewer_id": reviewer,
            "action": action,
            "justification": "bench",
            "edited_output": '{"text": "edited"}' if action == "edit" else None,
            "round": round_,
            "step": step,
            "is_final": final,
            "seconds_spent": self.spent(),
            "created_at": at,
        }

    def incident(self, item, decision) -> dict:
        return {
            "item_id": item["id"],
            "severity": self.random.choice(Incident.Severity.values),
            "description": "bench",
            "source": "integration",
            "created_at": min(decision["created_at"] + timedelta(hours=2), self.now),
        }

    def message(self, item, status) -> dict:
        return {
            "item_id": item["id"],
            "kind": "callback",
            "msg_id": f"msg_{uuid.uuid4().hex}",
            "payload": "{}",
            "status": status,
            "next_attempt_at": item["updated_at"],
            "created_at": item["updated_at"],
        }


def fill(history: History) -> Iterator[str]:
    while history.decisions < DECISIONS:
        items, decisions, incidents, messages = history.batch(BATCH_ITEMS)
        copy_rows(ReviewItem, items)
        copy_rows(Decision, decisions)
        copy_rows(Incident, incidents)
        copy_rows(OutboxMessage, messages)
        yield f"{history.items:,} items, {history.decisions:,} decisions"


def timed(client: Client, path: str, params: dict, headers: dict | None = None):
    times, response = [], None
    client.get(path, params, headers=headers)  # warm-up
    for _ in range(ROUNDS):
        started = time.perf_counter()
        response = client.get(path, params, headers=headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:500]
    return statistics.median(times), min(times), response


def plan_of_the_queue_query(queues, since, until) -> str:
    captured = []

    def keep(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        selectors.queue_stats(queues=queues, since=since, until=until)
    sql, params = captured[0]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) {sql}", params)
        return "\n".join(f"    {row[0]}" for row in cursor.fetchall())


def test_metrics_answer_over_a_million_decisions(settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    settings.HITL_METRICS_TOKEN = TOKEN
    now = timezone.now()
    integration = IntegrationFactory(slug="bench-bot")
    reviewers_role = Group.objects.get(name=REVIEWERS_GROUP)
    queues, reviewers_of = [], {}
    for n in range(QUEUES):
        queue = QueueFactory(slug=f"bench-{n}", required_approvals=2 if n < FOUR_EYES else 1, sla_minutes=60)
        group = Group.objects.create(name=f"bench-{n}-reviewers")
        queue.reviewer_groups.add(group)
        queues.append(queue)
        reviewers_of[queue.pk] = []
        for r in range(REVIEWERS_PER_QUEUE):
            user = UserFactory(username=f"bench-reviewer-{n}-{r}")
            user.groups.add(reviewers_role, group)
            reviewers_of[queue.pk].append(user.pk)
    reviewer = UserFactory(username="bench-reviewer-of-three")
    reviewer.groups.add(
        reviewers_role, *Group.objects.filter(name__in=[f"bench-{n}-reviewers" for n in (1, 4, 7)])
    )
    compliance = UserFactory(username="bench-compliance", is_staff=True)
    compliance.groups.add(Group.objects.get(name=COMPLIANCE_GROUP))

    started = time.perf_counter()
    history = History(now=now, queues=queues, reviewers_of=reviewers_of, integration_id=integration.pk)
    for progress in fill(history):
        print(f"  filled {progress} ({time.perf_counter() - started:.0f} s)", flush=True)
    filled = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # what autovacuum does to tables this size in production
    vacuumed = time.perf_counter() - started - filled
    total = Decision.objects.count()
    finals = Decision.objects.filter(is_final=True).count()

    as_compliance, as_reviewer = Client(), Client()
    as_compliance.force_login(compliance)
    as_reviewer.force_login(reviewer)
    week = {}
    everything = {"since": (now - SPAN - timedelta(days=1)).isoformat(), "until": now.isoformat()}
    one_queue = {**everything, "queue": "bench-4"}
    cases = [
        ("compliance, 10 queues, default week", as_compliance, "/api/v1/metrics/", week),
        ("compliance, 10 queues, all 8 weeks", as_compliance, "/api/v1/metrics/", everything),
        ("compliance, one queue, all 8 weeks", as_compliance, "/api/v1/metrics/", one_queue),
        ("reviewer of 3 queues, all 8 weeks", as_reviewer, "/api/v1/metrics/", everything),
        ("GET /metrics (Prometheus)", Client(), "/metrics", {}),
    ]  # fmt: skip
    print(
        f"\nmetrics over {total:,} decisions ({finals:,} final) of {history.items:,} items, "
        f"PostgreSQL {connection.pg_version // 10000}, inserted in {filled:.0f} s "
        f"(VACUUM ANALYZE {vacuumed:.0f} s); "
        f"median and best of {ROUNDS}:"
    )
    print("{:<40} {:>10} {:>10} {:>14}".format("case", "median ms", "best ms", "final in window"))
    for name, client, path, params in cases:
        headers = {"Authorization": f"Bearer {TOKEN}"} if path == "/metrics" else None
        median, best, response = timed(client, path, params, headers)
        counted = sum(q["decisions"] for q in response.json()["queues"]) if path != "/metrics" else "-"
        print(f"{name:<40} {median * 1000:>10.0f} {best * 1000:>10.0f} {counted!s:>14}")
        record(
            "Metrics",
            f"{name}, {total:,} decisions",
            f"{median * 1000:.0f} ms",
            target="< 1 s",
            met=median < 1,
        )
        if params is everything and name.startswith("compliance, 10"):
            assert counted == finals
    print("  plan of the per-queue query over all 8 weeks:")
    print(plan_of_the_queue_query(list(Queue.objects.order_by("slug")), now - SPAN - timedelta(days=1), now))
    print("  the whole-window answer's statements, slowest first (ms):")
    with CaptureQueriesContext(connection) as answer:
        as_compliance.get("/api/v1/metrics/", everything)
    for query in sorted(answer.captured_queries, key=lambda q: -float(q["time"]))[:8]:
        print(f"    {float(query['time']) * 1000:8.0f}  {query['sql'][:150]}")
