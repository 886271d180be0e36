"""In-process figures for the API benchmarks: SQL statements per request and, on demand, a profile.

Run by test_submit_throughput.py and test_decision_path.py in a subprocess against
the benchmark's database (DATABASE_URL, DJANGO_SETTINGS_MODULE=tests.benchmarks.bench_settings):

    python -m tests.benchmarks.inprocess --api-key KEY [--requests 200] [--profile [PATH]]
    python -m tests.benchmarks.inprocess --api-key KEY --reviewer-token TOKEN \
        --paths full,decide,list-reviewer,list-integration,read-integration,read-reviewer

The paths: `bare` (the bare insert), `full` (a submission), `decide` (a reviewer's
approval, POST /api/v1/items/{id}/decisions/, of items submitted beforehand),
`list-reviewer` and `list-integration` (GET /api/v1/items/, a page of 50), and
`read-reviewer` and `read-integration` (GET /api/v1/items/{id}/). It goes through
Django's whole handler (middleware, DRF, services) with the test client, but not
through gunicorn or a socket.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import django

ITEMS_DIR = Path(__file__).resolve().parents[2] / "demo" / "items"
FULL_URL = "/api/v1/items/"
BARE_URL = "/bench/bare-insert/"
LIST_PAGE = 50
SUBMIT_PATHS = ("bare", "full")
REVIEW_PATHS = ("decide", "list-reviewer", "list-integration", "read-integration", "read-reviewer")


def load_bodies() -> list[bytes]:
    return [path.read_bytes() for path in sorted(ITEMS_DIR.glob("*.json"))]


def decision_body(index: int) -> bytes:
    """A submission the demo policy holds in the `general` queue (one approval, no checklist)."""
    return json.dumps(
        {
            "external_id": f"decide-{index}",
            "kind": "output",
            "input": {"prompt": "Where is my parcel?"},
            "output": {"text": "It left the depot this morning and arrives tomorrow."},
            "signals": {"confidence": 0.41, "rubric_score": 2, "category": "general"},
            "metadata": {"channel": "chat"},
        }
    ).encode()


APPROVAL = json.dumps({"action": "approve", "justification": "Matches the tracking page."}).encode()


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
    parser.add_argument("--reviewer-token", default="", help="a DRF token of a reviewer of `general`")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--paths", default=",".join(SUBMIT_PATHS), help="comma-separated, see the docstring")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="full",
        default="",
        help="cProfile one path (default: full), print the top entries",
    )
    parser.add_argument("--profile-dump", default="", help="also write the profile's raw stats to this file")
    args = parser.parse_args(argv)
    paths = [name.strip() for name in args.paths.split(",") if name.strip()]
    unknown = sorted(set(paths) - {*SUBMIT_PATHS, *REVIEW_PATHS})
    if unknown:
        parser.error(f"unknown paths: {', '.join(unknown)}")
    if any(name in REVIEW_PATHS for name in [*paths, args.profile]) and not args.reviewer_token:
        parser.error("--reviewer-token is needed for the decision, list and read paths")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.benchmarks.bench_settings")
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    bodies = load_bodies()
    as_integration = {"HTTP_AUTHORIZATION": f"Api-Key {args.api_key}"}
    as_reviewer = {"HTTP_AUTHORIZATION": f"Token {args.reviewer_token}"}

    def submit(body: bytes):
        return client.post(
            FULL_URL,
            body,
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=f"inprocess-{uuid.uuid4().hex}",
            **as_integration,
        )

    # Items to decide: every decide round (warm-up, measured, one printed, profiled) takes fresh ones.
    pending: list[str] = []
    decide_rounds = (2 + (args.profile == "decide")) * args.requests + 2
    if "decide" in paths or args.profile == "decide" or any(name.startswith("read") for name in paths):
        for i in range(max(decide_rounds, LIST_PAGE + 1) if "decide" in paths else LIST_PAGE + 1):
            response = submit(decision_body(i))
            if response.status_code != 201 or response.json()["queue"] != "general":
                print(f"preparing items: {response.status_code} {response.content[:300]!r}")
                return 1
            pending.append(response.json()["id"])
    read_id = pending[-1] if pending else ""
    next_item = iter(pending[:-1])

    sends: dict[str, tuple[Callable[[int], object], int]] = {
        "bare": (
            lambda i: client.post(BARE_URL, bodies[i % len(bodies)], content_type="application/json"),
            201,
        ),
        "full": (lambda i: submit(bodies[i % len(bodies)]), 201),
        "decide": (
            lambda i: client.post(
                f"{FULL_URL}{next(next_item)}/decisions/",
                APPROVAL,
                content_type="application/json",
                **as_reviewer,
            ),
            201,
        ),
        "list-reviewer": (lambda i: client.get(FULL_URL, {"page_size": LIST_PAGE}, **as_reviewer), 200),
        "list-integration": (lambda i: client.get(FULL_URL, {"page_size": LIST_PAGE}, **as_integration), 200),
        "read-integration": (lambda i: client.get(f"{FULL_URL}{read_id}/", **as_integration), 200),
        "read-reviewer": (lambda i: client.get(f"{FULL_URL}{read_id}/", **as_reviewer), 200),
    }

    # Warm caches (compiled rules, URL resolvers, the connection), one request per body at least.
    for name in paths:
        send, expected = sends[name]
        for i in range(min(args.requests, max(len(bodies), 20))):
            response = send(i)
            if response.status_code != expected:
                print(f"warm-up {name}: {response.status_code} {response.content[:300]!r}")
                return 1

    print(f"\nin-process (Django test client, no gunicorn), {args.requests} requests per path:")
    # CPU time is this process's alone (Django, DRF, the services): the database's work and
    # other load on the machine show in the wall time only.
    print(f"{'path':<18}{'queries/req':>12}{'SQL ms/req':>12}{'wall ms/req':>13}{'CPU ms/req':>12}")
    kinds: dict[str, Counter] = {}
    for name in paths:
        send, expected = sends[name]
        with CaptureQueriesContext(connection) as captured:
            started, cpu_started = time.perf_counter(), time.process_time()
            for i in range(args.requests):
                response = send(i)
                assert response.status_code == expected, response.content[:300]
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        sql_seconds = sum(float(q["time"]) for q in captured.captured_queries)
        count = len(captured.captured_queries)
        print(
            f"{name:<18}{count / args.requests:>12.2f}"
            f"{1000 * sql_seconds / args.requests:>12.2f}{1000 * wall / args.requests:>13.2f}"
            f"{1000 * cpu / args.requests:>12.2f}"
        )
        kinds[name] = Counter(statement_kind(q["sql"]) for q in captured.captured_queries)

    for name, counter in kinds.items():
        print(f"\nstatements per request, {name} (mean of {args.requests}):")
        for kind, n in counter.most_common():
            print(f"  {n / args.requests:6.2f}  {kind}")

    for name in paths:
        if name == "bare":
            continue
        with CaptureQueriesContext(connection) as one:
            sends[name][0](0)
        print(f"\nSQL of one request, {name} ({len(one.captured_queries)} statements):")
        for query in one.captured_queries:
            print(f"  {query['time']}s  {query['sql'][:160]}")

    if args.profile:
        send, _ = sends[args.profile]
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(args.requests):
            send(i)
        profiler.disable()
        if args.profile_dump:
            profiler.dump_stats(args.profile_dump)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        print(f"\ncProfile of {args.requests} requests, {args.profile}:")
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
