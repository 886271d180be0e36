"""The pages people open, at 10k items and at 1M: time and SQL queries, side by side.

    make bench                      # 10k, then 1M items
    make bench BENCH_SCALE=small    # 10k, then 100k

`generate_load_data` fills the PostgreSQL test database with 10k items (a year of
traffic: reviews, four-eyes, escalations, history, seals, deliveries, incidents),
then tops the same seed up to the large size, so every page is measured on the same
items at both sizes: the reviewer's workspace overview, the item changelist (without
a filter and with each filter), an open item's review page, a busy item's timeline,
the audit log (first page and filtered), the metrics answer and the metrics
dashboard. Each figure is the median of HITL_BENCH_PAGE_ROUNDS (default 5) through
Django's test client after a warm-up, with the queries it ran and, for a changelist,
the rows on its page (a filter that matches a few items at 10k shows a full page at
1M, and each row costs its rendering). The targets: the same number of queries at
both sizes, and the time at the large size within 1.5× of 10k; for the metrics
answer and dashboard, which aggregate every decision in their window, under 1 s at
the large size. It asserts only that each page answers 200, never a timing.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reviews.models import COMPLIANCE_GROUP, ItemStatus, Queue, ReviewItem
from tests.benchmarks.report import big, record

SMALL = 10_000
ROUNDS = int(os.environ.get("HITL_BENCH_PAGE_ROUNDS", "5"))

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def generate(items: int) -> float:
    started = time.perf_counter()
    call_command("generate_load_data", items=items, days=365, stdout=StringIO(), stderr=StringIO())
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # what autovacuum does to tables this size in production
    return time.perf_counter() - started


@dataclass(frozen=True)
class Reading:
    ms: float
    queries: int
    rows: int | None  # the rows on a changelist's page; None for other pages

    def describe(self, size: str) -> str:
        rows = "" if self.rows is None else f", {self.rows} rows"
        return f"{size} {self.ms:.0f} ms, {self.queries} q{rows}"


def measure(client: Client, url: str) -> Reading:
    response = client.get(url)  # warm-up
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    times, queries = [], 0
    for _ in range(ROUNDS):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, url
        queries = len(captured.captured_queries)
    changelist = response.context.get("cl") if response.context else None
    rows = len(changelist.result_list) if changelist is not None else None
    return Reading(statistics.median(times) * 1000, queries, rows)


# Pages that aggregate every decision in their window: held to the metrics target.
METRICS_ANSWER, METRICS_DASHBOARD = "metrics answer (compliance)", "metrics dashboard"
AGGREGATES = {METRICS_ANSWER, METRICS_DASHBOARD}


def people():
    User = get_user_model()
    superuser = User.objects.create_superuser("bench-admin", password=None)
    compliance = User.objects.create_user("bench-compliance", is_staff=True)
    compliance.groups.add(Group.objects.get(name=COMPLIANCE_GROUP))
    # The busiest generated reviewer of the largest queue.
    queue = Queue.objects.annotate(n=Count("items")).order_by("-n").first()
    reviewer = User.objects.filter(username__startswith=f"load-{queue.slug}-reviewer-").order_by("username")[
        0
    ]
    return superuser, compliance, reviewer, queue


def pages(superuser, compliance, reviewer, queue) -> list[tuple[str, object, str]]:
    """(name, who, url): chosen once, at the small size, and opened again at the large one."""
    changelist = reverse("admin:reviews_reviewitem_changelist")
    in_queue = ReviewItem.objects.filter(queue=queue)
    open_item = in_queue.filter(status=ItemStatus.PENDING).first() or in_queue.order_by("-created_at")[0]
    busy = ReviewItem.objects.annotate(n=Count("decisions")).order_by("-n", "pk")[0]
    return [
        ("workspace overview (reviewer)", reviewer, reverse("admin:reviews_workspace")),
        ("item changelist", superuser, changelist),
        ("changelist ?status=pending", superuser, f"{changelist}?status__exact=pending"),
        ("changelist ?queue", superuser, f"{changelist}?queue={queue.slug}"),
        ("changelist ?risk_level=high", superuser, f"{changelist}?risk_level__exact=high"),
        ("changelist ?sla=overdue", superuser, f"{changelist}?sla=overdue"),
        ("changelist ?reviewer", superuser, f"{changelist}?reviewer={reviewer.pk}"),
        ("changelist ?kind=action", superuser, f"{changelist}?kind__exact=action"),
        ("changelist ?execution_status", superuser, f"{changelist}?execution_status__exact=succeeded"),
        ("changelist (reviewer's queues)", reviewer, changelist),
        ("review page", reviewer, reverse("admin:reviews_review", args=[open_item.pk])),
        ("timeline", compliance, reverse("admin:reviews_reviewitem_timeline", args=[busy.pk])),
        ("audit log", compliance, reverse("admin:audit_log")),
        ("audit log ?actor", compliance, f"{reverse('admin:audit_log')}?actor={reviewer.username}"),
        (METRICS_ANSWER, compliance, "/api/v1/metrics/"),
        (METRICS_DASHBOARD, compliance, reverse("admin:metrics_dashboard")),
    ]


def test_pages_at_10k_and_at_scale():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    large = big()
    filled_small = generate(SMALL)
    who = people()
    chosen = pages(*who)
    clients = {}
    for _, user, _ in chosen:
        if user.pk not in clients:
            clients[user.pk] = Client()
            clients[user.pk].force_login(user)
    at_small = {name: measure(clients[user.pk], url) for name, user, url in chosen}

    filled_large = generate(large)
    items = ReviewItem.objects.count()
    at_large = {name: measure(clients[user.pk], url) for name, user, url in chosen}

    label = f"{large // 1000:,}k" if large < 1_000_000 else f"{large // 1_000_000}M"
    print(
        f"\npages at {SMALL:,} and {items:,} items (generated in {filled_small:.0f} s and "
        f"{filled_large:.0f} s more); median of {ROUNDS}:"
    )
    print(f"{'page':<36}{'10k ms':>9}{'q':>5}{'rows':>6}{label + ' ms':>10}{'q':>5}{'rows':>6}{'ratio':>8}")
    for name, _, _ in chosen:
        before, after = at_small[name], at_large[name]
        ratio = after.ms / before.ms
        shown = ["" if r.rows is None else r.rows for r in (before, after)]
        print(
            f"{name:<36}{before.ms:>9.0f}{before.queries:>5}{shown[0]:>6}"
            f"{after.ms:>10.0f}{after.queries:>5}{shown[1]:>6}{ratio:>8.2f}"
        )
        same_queries = before.queries == after.queries
        if name in AGGREGATES:
            target, met = "same queries, < 1 s", same_queries and after.ms < 1000
        else:
            target, met = "same queries, ≤ 1.5×", same_queries and ratio <= 1.5
        value = f"{before.describe('10k')}; {after.describe(label)} (×{ratio:.2f})"
        record("Pages", name, value, target=target, met=met)
    rate = (large - SMALL) / filled_large
    record(
        "Load data",
        f"generate_load_data to {label} items",
        f"{rate:,.0f} items/s (with ANALYZE)",
        target=">= 20,000/s",
        met=rate >= 20_000,
    )
