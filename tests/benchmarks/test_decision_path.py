"""A decision through the API next to a submission, and a page of the item list next to
a single read, through gunicorn in one run.

    make bench        # or: .venv/bin/pytest tests/benchmarks/test_decision_path.py -s -p no:cacheprovider

The server, the database and the data are those of test_submit_throughput.py (its
helpers, imported): gunicorn with sync workers against a fresh PostgreSQL database,
the rules of demo/policy.json, an integration made by `create_integration` (here
with a callback URL, so a final decision writes its webhook to the outbox, as in
production; nobody consumes the in-memory broker), and one reviewer of the
`general` queue with a DRF token.

Each round, in turn:

1. submissions from 4 client threads (bodies the demo policy holds in `general`);
2. the items that round submitted approved one after another, by the reviewer;
3. single reads (GET /api/v1/items/{id}/) and list pages (GET /api/v1/items/, 50
   items deep) as the integration and as the reviewer, alternating.

It prints and records (tests/benchmarks/report.py) the serial decision's median and
p95, decisions per second, the submission's median, the list page's and the single
read's medians and the ratios held to targets: a decision within 1.5× a submission,
a list page within 1.5× a single read. Then the same paths in-process (inprocess.py):
SQL statements per request. It asserts only that every response was the expected
one, never on timings.

Environment: HITL_BENCH_PG, HITL_BENCH_WORKERS as for test_submit_throughput.py;
HITL_BENCH_DECISIONS (decisions measured, 400), HITL_BENCH_READS (requests per read
target, 200), HITL_BENCH_ROUNDS (4), HITL_BENCH_PROFILE=<path> (also cProfile that
path in-process: decide, list-reviewer, ... see inprocess.py).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.benchmarks.inprocess import APPROVAL, LIST_PAGE, REVIEW_PATHS, decision_body
from tests.benchmarks.report import record
from tests.benchmarks.test_submit_throughput import (
    REPO,
    WORKERS,
    bench_database,
    gunicorn,
    manage,
    postgres_problem,
    prepare_data,
    server_env,
)

DECISIONS = int(os.environ.get("HITL_BENCH_DECISIONS", "400"))
READS = int(os.environ.get("HITL_BENCH_READS", "200"))
ROUNDS = max(1, int(os.environ.get("HITL_BENCH_ROUNDS", "4")))
PROFILE = os.environ.get("HITL_BENCH_PROFILE", "").strip()
SUBMIT_CLIENTS = 4
WARMUP = 60
TARGET = 1.5

ITEMS = "/api/v1/items/"
CALLBACK_URL = "http://127.0.0.1:9/hitl"  # never called: nobody consumes the broker

REVIEWER_SETUP = """
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from reviews.models import REVIEWERS_GROUP, Integration, Queue

integration = Integration.objects.get(slug="bench")
integration.callback_url = {callback!r}
integration.save()
user = User.objects.create_user("bench-reviewer", is_staff=True)
general = Queue.objects.get(slug="general")
user.groups.add(Group.objects.get(name=REVIEWERS_GROUP), *general.reviewer_groups.all())
print("token:", Token.objects.create(user=user).key)
"""


def analyze(env: dict[str, str]) -> None:
    """Fresh statistics after the warm-up filled the tables, as autovacuum would have them
    in production (otherwise it may run mid-measurement, or plans stay those of empty tables)."""
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True, connect_timeout=3) as conn:
        conn.execute("ANALYZE")


def prepare_reviewer(env: dict[str, str]) -> str:
    """A reviewer of `general` with a DRF token (returned); the integration gets a callback URL."""
    printed = manage(env, "shell", "-c", REVIEWER_SETUP.format(callback=CALLBACK_URL))
    return printed.split("token:", 1)[1].split()[0]


# --- Load -------------------------------------------------------------------------------


@dataclass
class Timings:
    expected: int
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, status: int, body: bytes, seconds: float) -> None:
        self.latencies.append(seconds)
        self.statuses[status] += 1
        if status != self.expected and len(self.failures) < 5:
            self.failures.append(f"{status}: {body[:300]!r}")

    def refuse(self, body: bytes) -> None:
        """An answer with the expected status that is still wrong (counted as unexpected)."""
        self.statuses[-1] += 1
        if len(self.failures) < 5:
            self.failures.append(f"wrong answer: {body[:300]!r}")

    def merge(self, other: Timings) -> None:
        self.latencies += other.latencies
        self.statuses += other.statuses
        self.failures += other.failures[: max(0, 5 - len(self.failures))]
        self.seconds += other.seconds

    @property
    def unexpected(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != self.expected)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000 if ordered else 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def row(self, name: str) -> str:
        return (
            f"{name:<28}{len(self.latencies):>9}{self.rate:>9.1f}{self.median_ms:>9.1f}"
            f"{self.p95_ms:>9.1f}{self.unexpected:>12}"
        )


class Caller:
    """One client connection (sync workers close it after each answer; it reconnects)."""

    def __init__(self, port: int, authorization: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": authorization}

    def send(self, timings: Timings, method: str, path: str, body: bytes | None = None, **headers) -> bytes:
        headers = {**self.headers, **headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            status, answer = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            status, answer = 0, repr(exc).encode()
        timings.add(status, answer, time.perf_counter() - started)
        return answer if status == timings.expected else b""

    def close(self) -> None:
        self.conn.close()


def submit(port: int, api_key: str, count: int, first: int) -> tuple[Timings, list[str]]:
    """`count` submissions from SUBMIT_CLIENTS threads; returns the timings and the items' ids."""
    timings, ids, lock = Timings(expected=201), [], threading.Lock()
    indexes = iter(range(first, first + count))

    def client() -> None:
        caller, mine, own_ids = Caller(port, f"Api-Key {api_key}"), Timings(expected=201), []
        try:
            while True:
                with lock:
                    i = next(indexes, None)
                if i is None:
                    break
                key = f"decide-{uuid.uuid4().hex}"
                answer = caller.send(mine, "POST", ITEMS, decision_body(i), **{"Idempotency-Key": key})
                if answer:
                    body = json.loads(answer)
                    if body["queue"] == "general":
                        own_ids.append(body["id"])
                    else:
                        mine.refuse(answer)  # held elsewhere: not the reviewer's to decide
        finally:
            caller.close()
            with lock:
                timings.merge(mine)
                ids.extend(own_ids)

    threads = [threading.Thread(target=client) for _ in range(SUBMIT_CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timings.seconds = time.perf_counter() - started
    return timings, ids


def decide(port: int, token: str, ids: list[str]) -> Timings:
    """Approve each item in turn, one request at a time."""
    timings, caller = Timings(expected=201), Caller(port, f"Token {token}")
    started = time.perf_counter()
    try:
        for item_id in ids:
            caller.send(timings, "POST", f"{ITEMS}{item_id}/decisions/", APPROVAL)
    finally:
        caller.close()
    timings.seconds = time.perf_counter() - started
    return timings


def reads(callers: dict[str, Caller], item_id: str, count: int, results: dict[str, Timings]) -> None:
    """Single reads and list pages as each caller, alternating, one request at a time."""
    targets = [
        (f"{kind} {who}", caller, path)
        for kind, path in (("read", f"{ITEMS}{item_id}/"), ("list", f"{ITEMS}?page_size={LIST_PAGE}"))
        for who, caller in callers.items()
    ]
    for _ in range(count):
        for name, caller, path in targets:
            timings = results.setdefault(name, Timings(expected=200))
            started = time.perf_counter()
            answer = caller.send(timings, "GET", path)
            timings.seconds += time.perf_counter() - started
            if answer and name.startswith("list") and len(json.loads(answer)["results"]) != LIST_PAGE:
                timings.refuse(answer)  # the page is not 50 deep


def inprocess_figures(env: dict[str, str], api_key: str, token: str) -> str:
    command = [
        sys.executable, "-m", "tests.benchmarks.inprocess",
        "--api-key", api_key,
        "--reviewer-token", token,
        "--paths", ",".join(["full", *REVIEW_PATHS]),
        "--requests", "100",
    ]  # fmt: skip
    if PROFILE:
        command += ["--profile", PROFILE]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        return f"{result.stdout}\nin-process figures failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result.stdout


# --- The benchmark ---------------------------------------------------------------------------


def test_decision_and_list_against_submission_and_single_read(tmp_path):
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)

    with bench_database() as db_name:
        env = {**server_env(db_name), "HITL_WEBHOOK_ALLOW_PRIVATE": "1"}
        api_key = prepare_data(env)
        token = prepare_reviewer(env)
        submissions, decisions, read_results = Timings(201), Timings(201), {}
        per_round = max(1, DECISIONS // ROUNDS)
        with gunicorn(env, tmp_path / "gunicorn.log") as port:
            warm_submissions, warm_ids = submit(port, api_key, WARMUP + LIST_PAGE, first=0)
            warm_decisions = decide(port, token, warm_ids[:WARMUP])
            callers = {
                "integration": Caller(port, f"Api-Key {api_key}"),
                "reviewer": Caller(port, f"Token {token}"),
            }
            read_id = warm_ids[0]  # decided, with its decision to show
            warm_reads: dict[str, Timings] = {}
            reads(callers, read_id, 10, warm_reads)
            analyze(env)
            for round_number in range(ROUNDS):
                submitted, ids = submit(port, api_key, per_round, first=(round_number + 1) * 100_000)
                submissions.merge(submitted)
                decisions.merge(decide(port, token, ids))
                reads(callers, read_id, max(1, READS // ROUNDS), read_results)
            for caller in callers.values():
                caller.close()
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())

        print(
            f"\n\ndecision path: gunicorn {WORKERS} sync workers, {os.cpu_count()} cores (load average "
            f"{load} at the end), PostgreSQL database {db_name}; {ROUNDS} rounds of {per_round} "
            f"submissions ({SUBMIT_CLIENTS} clients) then as many serial decisions, then "
            f"{max(1, READS // ROUNDS)} of each read"
        )
        print(f"{'target':<28}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'unexpected':>12}")
        print(submissions.row(f"submit ({SUBMIT_CLIENTS} clients)"))
        print(decisions.row("decide (serial)"))
        for name, timings in read_results.items():
            print(timings.row(f"{name} (serial)"))

        decision_ratio = decisions.median_ms / submissions.median_ms if submissions.median_ms else 0.0
        print(f"decision / submission (median): {decision_ratio:.2f} (goal: at most {TARGET})")
        record(
            "Decisions",
            "serial decision median / p95",
            f"{decisions.median_ms:.1f} / {decisions.p95_ms:.1f} ms",
        )
        record("Decisions", "serial decisions/s", f"{decisions.rate:.1f}/s")
        record("Decisions", f"submission median, {SUBMIT_CLIENTS} clients", f"{submissions.median_ms:.1f} ms")
        record(
            "Decisions",
            "decision / submission (median)",
            f"{decision_ratio:.2f}",
            target=f"<= {TARGET}× submission",
            met=decision_ratio <= TARGET,
        )
        for who in callers:
            read, listed = read_results[f"read {who}"], read_results[f"list {who}"]
            ratio = listed.median_ms / read.median_ms if read.median_ms else 0.0
            print(
                f"list page ({LIST_PAGE}) / single read, {who} (median): {ratio:.2f} (goal: at most {TARGET})"
            )
            record("Item reads", f"single read median, {who}", f"{read.median_ms:.1f} ms")
            record("Item reads", f"list page ({LIST_PAGE} deep) median, {who}", f"{listed.median_ms:.1f} ms")
            record(
                "Item reads",
                f"list page / single read, {who} (median)",
                f"{ratio:.2f}",
                target=f"<= {TARGET}× single read",
                met=ratio <= TARGET,
            )
        print(inprocess_figures(env, api_key, token))

    phases = {
        "warm-up submit": warm_submissions,
        "warm-up decide": warm_decisions,
        **{f"warm-up {name}": timings for name, timings in warm_reads.items()},
        "submit": submissions,
        "decide": decisions,
        **read_results,
    }
    problems = {name: (dict(t.statuses), t.failures) for name, t in phases.items() if t.unexpected}
    assert not problems, f"unexpected responses: {problems}"
    assert len(decisions.latencies) == per_round * ROUNDS, "every submitted item was decided"
