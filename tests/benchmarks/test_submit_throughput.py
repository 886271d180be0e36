"""Submissions per second through the real stack, next to a bare insert, in one run.

    make bench        # or: .venv/bin/pytest tests/benchmarks -s -p no:cacheprovider

The benchmark starts its own gunicorn (sync workers, 127.0.0.1 on a free port)
against a PostgreSQL database it creates and drops, with the project's settings
plus one bare view (bench_settings.py, bench_urls.py). The data is real: an
integration made by `create_integration`, the rules of demo/policy.json, and the
bodies in demo/items/ (each submission with its own Idempotency-Key).

Both targets run against the same server in alternating rounds (bare then full,
then full then bare, ...), so table growth, warm caches and other load on the
machine affect both alike. It prints requests, seconds, requests per second and
p50/p95 latency per target, the ratio full/bare (the goal: at least 0.75), and
then SQL statements per request measured in-process (inprocess.py); the rates and
the ratio are recorded for the table `make bench` prints (report.py). It fails only
when a response is not 201, a correctness check; it never asserts on timings.

Environment: HITL_BENCH_PG (admin connection, default
postgres://postgres@127.0.0.1:5432/postgres), HITL_BENCH_REQUESTS (measured
requests per target, 2000), HITL_BENCH_ROUNDS (4), HITL_BENCH_THREADS (client
threads, 8), HITL_BENCH_WORKERS (gunicorn workers, 2), HITL_BENCH_SECONDS (time
cap per phase, 60), HITL_BENCH_PROFILE=1 (also cProfile the full path in-process),
HITL_BENCH_EAGER_TASKS=1 (run Celery tasks inside the request, see bench_settings.py).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.benchmarks.report import record

REPO = Path(__file__).resolve().parents[2]
ITEMS_DIR = REPO / "demo" / "items"
POLICY = REPO / "demo" / "policy.json"

ADMIN_URL = os.environ.get("HITL_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REQUESTS = int(os.environ.get("HITL_BENCH_REQUESTS", "2000"))
ROUNDS = max(1, int(os.environ.get("HITL_BENCH_ROUNDS", "4")))
THREADS = int(os.environ.get("HITL_BENCH_THREADS", "8"))
WORKERS = int(os.environ.get("HITL_BENCH_WORKERS", "2"))
PHASE_SECONDS = float(os.environ.get("HITL_BENCH_SECONDS", "60"))
PROFILE = os.environ.get("HITL_BENCH_PROFILE", "").strip() in {"1", "true", "yes"}
WARMUP = 200
TARGET_RATIO = 0.75  # the full path's throughput against the bare insert's

FULL_PATH = "/api/v1/items/"
BARE_PATH = "/bench/bare-insert/"


# --- Database and server --------------------------------------------------------------


def admin_connection():
    import psycopg

    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)


def postgres_problem() -> str | None:
    try:
        with admin_connection() as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL is not reachable at {ADMIN_URL} (set HITL_BENCH_PG): {exc}"
    return None


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """A fresh database for this run, dropped afterwards whatever happens."""
    name = f"hitl_bench_{os.getpid()}"
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(db_name: str) -> dict[str, str]:
    # No REDIS_URL: the cache (throttle counters) is per-process memory and no broker is needed.
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_DEBUG")}
    base, _, _ = ADMIN_URL.rpartition("/")
    env.update(
        DATABASE_URL=f"{base}/{db_name}",
        DJANGO_SETTINGS_MODULE="tests.benchmarks.bench_settings",
        DJANGO_SECRET_KEY="benchmark-secret-key-not-for-production",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        # As in production: connections are kept (the test settings close them per request).
        DJANGO_CONN_MAX_AGE="60",
        # Throttling stays on the path (it is part of the cost) but never limits the run.
        HITL_INTEGRATION_RATE="1000000/second",
        PYTHONPATH=str(REPO),
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare_data(env: dict[str, str]) -> str:
    """Migrate, import the demo policy, create the integration; return its API key."""
    manage(env, "migrate", "--noinput")
    manage(env, "import_policy", str(POLICY))
    created = manage(env, "create_integration", "Bench")
    match = re.search(r"^api_key: (\S+)$", created, re.MULTILINE)
    assert match, f"create_integration printed no api_key:\n{created}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[int]:
    """A gunicorn serving the project on 127.0.0.1; yields its port, stops it afterwards."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "hitl_project.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(WORKERS),
        "--worker-class", "sync",
        "--chdir", str(REPO),
        "--timeout", "60",
        "--log-level", "warning",
    ]  # fmt: skip
    with log.open("w") as log_file:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(process, port, log)
        yield port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def wait_until_serving(process: subprocess.Popen, port: int, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz within {timeout}s:\n{log.read_text()[-3000:]}")


# --- Load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    headers: dict[str, str]
    idempotency_keys: bool


@dataclass
class Phase:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, other: Phase) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.latencies += other.latencies
        self.statuses += other.statuses
        self.failures += other.failures[: max(0, 5 - len(self.failures))]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def unexpected(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 201)

    def row(self, name: str) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000 if ordered else 0.0
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000 if ordered else 0.0
        figures = f"{self.requests:>9}{self.seconds:>9.2f}{self.rate:>9.1f}{p50:>9.1f}{p95:>9.1f}"
        return f"{name:<6}{figures}{self.unexpected:>9}"


def run_phase(port: int, target: Target, bodies: list[bytes], count: int) -> Phase:
    """`count` POSTs from THREADS threads, each with its own connection; cut short after PHASE_SECONDS."""
    phase = Phase()
    lock = threading.Lock()
    indexes = iter(range(count))
    deadline = time.monotonic() + PHASE_SECONDS

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, statuses, failures = [], Counter(), []
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(indexes, None)
                if i is None:
                    break
                headers = {**target.headers, "Content-Type": "application/json"}
                if target.idempotency_keys:
                    headers["Idempotency-Key"] = f"bench-{uuid.uuid4().hex}"
                started = time.perf_counter()
                try:
                    # Sync workers close after each response; http.client reconnects on the next request.
                    conn.request("POST", target.path, body=bodies[i % len(bodies)], headers=headers)
                    response = conn.getresponse()
                    status, body = response.status, response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    status, body = 0, repr(exc).encode()
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                if status != 201 and len(failures) < 5:
                    failures.append(f"{status}: {body[:300]!r}")
        finally:
            conn.close()
            with lock:
                phase.latencies += latencies
                phase.statuses += statuses
                phase.failures += failures

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    phase.requests = sum(phase.statuses.values())
    return phase


def inprocess_figures(env: dict[str, str], api_key: str) -> str:
    command = [sys.executable, "-m", "tests.benchmarks.inprocess", "--api-key", api_key]
    if PROFILE:
        command.append("--profile")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        return f"{result.stdout}\nin-process figures failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result.stdout


# --- The benchmark ---------------------------------------------------------------------------


def test_submit_throughput_against_bare_insert(tmp_path):
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    bodies = [path.read_bytes() for path in sorted(ITEMS_DIR.glob("*.json"))]

    with bench_database() as db_name:
        env = server_env(db_name)
        api_key = prepare_data(env)
        targets = [
            Target("bare", BARE_PATH, {}, idempotency_keys=False),
            Target("full", FULL_PATH, {"Authorization": f"Api-Key {api_key}"}, idempotency_keys=True),
        ]
        results = {target.name: Phase() for target in targets}
        per_round = max(1, REQUESTS // ROUNDS)
        with gunicorn(env, tmp_path / "gunicorn.log") as port:
            warmup = {target.name: run_phase(port, target, bodies, WARMUP) for target in targets}
            for round_number in range(ROUNDS):
                for target in targets if round_number % 2 == 0 else reversed(targets):
                    results[target.name].add(run_phase(port, target, bodies, per_round))
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())

        bare, full = results["bare"], results["full"]
        print(
            f"\n\nsubmit throughput: gunicorn {WORKERS} sync workers, {THREADS} client threads in this "
            f"process, {os.cpu_count()} cores (load average {load} at the end),\nPostgreSQL database "
            f"{db_name}, {len(bodies)} demo bodies, {WARMUP} warm-up, then {ROUNDS} alternating rounds "
            f"of {per_round} per target"
        )
        print("target  requests  seconds    req/s   p50 ms   p95 ms  non-201")
        print(bare.row("bare"))
        print(full.row("full"))
        ratio = full.rate / bare.rate if bare.rate else 0.0
        print(f"ratio full/bare: {ratio:.2f} (goal: at least {TARGET_RATIO:.2f})")
        record("Submissions", f"full path, {THREADS} clients", f"{full.rate:.1f} req/s")
        record("Submissions", f"bare insert, {THREADS} clients", f"{bare.rate:.1f} req/s")
        record(
            "Submissions",
            "full path / bare insert",
            f"{ratio:.2f}",
            target=f">= {TARGET_RATIO:.2f}",
            met=ratio >= TARGET_RATIO,
        )
        print(inprocess_figures(env, api_key))

    phases = {**{f"warm-up {name}": phase for name, phase in warmup.items()}, **results}
    problems = {name: (dict(p.statuses), p.failures) for name, p in phases.items() if p.unexpected}
    assert not problems, f"responses other than 201: {problems}"
