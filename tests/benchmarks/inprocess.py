"""In-process figures for the submit benchmark: SQL queries per request and, on demand, a profile.

Run by test_submit_throughput.py in a subprocess against the benchmark's database
(DATABASE_URL, DJANGO_SETTINGS_MODULE=tests.benchmarks.bench_settings):

    python -m tests.benchmarks.inprocess --api-key KEY [--requests 200] [--profile]

It goes through Django's whole handler (middleware, DRF, services) with the
test client, but not through gunicorn or a socket.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import django

ITEMS_DIR = Path(__file__).resolve().parents[2] / "demo" / "items"
FULL_URL = "/api/v1/items/"
BARE_URL = "/bench/bare-insert/"


def load_bodies() -> list[bytes]:
    return [path.read_bytes() for path in sorted(ITEMS_DIR.glob("*.json"))]


def statement_kind(sql: str) -> str:
    words = sql.split()
    head = words[0].upper() if words else "?"
    if head in ("INSERT", "UPDATE", "DELETE"):
        target = words[2] if head != "UPDATE" else words[1]
        return f"{head} {target.strip(chr(34))}"
    if head == "SELECT":
        upper = sql.upper()
        start = upper.find(" FROM ")
        table = sql[start + 6 :].split()[0].strip('"') if start >= 0 else "(no table)"
        return f"SELECT {table}"
    return head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the full path, print the top entries"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.benchmarks.bench_settings")
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    bodies = load_bodies()
    auth = {"HTTP_AUTHORIZATION": f"Api-Key {args.api_key}"}

    def full(i: int):
        return client.post(
            FULL_URL,
            bodies[i % len(bodies)],
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=f"inprocess-{uuid.uuid4().hex}",
            **auth,
        )

    def bare(i: int):
        return client.post(BARE_URL, bodies[i % len(bodies)], content_type="application/json")

    for i in range(len(bodies)):  # warm caches: compiled rules, URL resolvers, the connection
        for send, expected in ((full, 201), (bare, 201)):
            response = send(i)
            if response.status_code != expected:
                print(f"warm-up {send.__name__}: {response.status_code} {response.content[:300]!r}")
                return 1

    print(f"\nin-process (Django test client, no gunicorn), {args.requests} requests per path:")
    print(f"{'path':<6}{'queries/req':>12}{'SQL ms/req':>12}{'wall ms/req':>13}")
    kinds: dict[str, Counter] = {}
    for send in (bare, full):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            for i in range(args.requests):
                response = send(i)
                assert response.status_code == 201, response.content[:300]
            wall = time.perf_counter() - started
        sql_seconds = sum(float(q["time"]) for q in captured.captured_queries)
        count = len(captured.captured_queries)
        print(
            f"{send.__name__:<6}{count / args.requests:>12.2f}"
            f"{1000 * sql_seconds / args.requests:>12.2f}{1000 * wall / args.requests:>13.2f}"
        )
        kinds[send.__name__] = Counter(statement_kind(q["sql"]) for q in captured.captured_queries)

    for name, counter in kinds.items():
        print(f"\nstatements per request, {name} path (mean of {args.requests}, cycling the demo bodies):")
        for kind, n in counter.most_common():
            print(f"  {n / args.requests:6.2f}  {kind}")

    with CaptureQueriesContext(connection) as one:
        full(0)
    print(f"\nSQL of one full-path submission ({len(one.captured_queries)} statements):")
    for query in one.captured_queries:
        print(f"  {query['time']}s  {query['sql'][:160]}")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(args.requests):
            full(i)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        print(f"\ncProfile of {args.requests} full-path submissions:")
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
