"""The Procfile topology on this machine under mixed traffic, with a worker killed once.

    .venv/bin/pytest tests/benchmarks/test_scale_out.py -s -p no:cacheprovider
    HITL_BENCH_SCALE_SECONDS=40 .venv/bin/pytest tests/benchmarks/test_scale_out.py -s   # a quick run

What runs, as the Procfile and the README's "Production layout" describe it: a
PostgreSQL database of its own (created, migrated and dropped by the benchmark),
a private redis-server, one gunicorn with HITL_BENCH_SCALE_WEB_WORKERS sync
workers (3) on one port of 127.0.0.1, TWO `celery -A hitl_project worker`
processes (concurrency 4 each, as in the Procfile) and ONE `celery -A
hitl_project beat`, all with the project's production settings (debug off,
delivery, lease and sweep timings at their defaults). A local HTTP receiver
(tests/receiver.py) stands in for the integration's action and callback URLs and
applies each action once per Idempotency-Key, as a payment provider would.

The data comes from the project's own commands: `import_policy` with a small
policy (one queue; money and account actions and low-confidence outputs go to
review, the rest is auto-approved), `create_integration` with --action-url and
--callback-url, reviewers made with `manage.py shell` (the Reviewers role and
the queue's group, as tests/conftest.py make_reviewer does) and given API tokens
with `drf_create_token`.

The load (scale_out_load.py) runs for HITL_BENCH_SCALE_SECONDS (300):
HITL_BENCH_SCALE_SUBMITTERS integration clients (4) submit with an
Idempotency-Key (5% replays), HITL_BENCH_SCALE_REVIEWERS reviewer clients (6)
claim the next item and approve (80%), reject (10%) or edit (10%) it. At a third
of the run one worker's whole process group is SIGKILLed; it is started again
HITL_BENCH_SCALE_RESTART_AFTER seconds (20) later. The rate limits are raised
for the run (one client thread stands for many people) but stay on the path.

Then it waits (at most HITL_BENCH_SCALE_DRAIN_SECONDS, 300) for the outbox to
drain and checks, as tests/integration/test_worker.py defines them, that nothing
was lost or executed twice: every 201 is an item in the database and nothing else
is; every approved, edited or auto-approved action reached the receiver under its
one message id and Idempotency-Key, was recorded as executed with the final
action, and was never sent after its acknowledgement; no other action was sent;
every final state's callback (rejections included) was delivered under one id;
no answer was a 5xx. It records throughput and p95 per operation, decision to
delivered p95, what the kill caught in flight and how long the catch-up took, and
the CPU each tier used (read from /proc, next to what the whole machine used, since
a shared machine's other work shows in every timing); it asserts only correctness.

HITL_BENCH_SCALE_RECEIVER_DELAY (0.3 s) is how long the receiver takes to answer, as a
payment API might; it also keeps deliveries in flight when the worker is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from tests.benchmarks import scale_out_load as load
from tests.benchmarks.report import machine, record
from tests.benchmarks.test_submit_throughput import ADMIN_URL, bench_database, manage, postgres_problem
from tests.processes import CeleryProcess, GunicornProcess, RedisServer, wait_until
from tests.receiver import Receiver

SECONDS = float(os.environ.get("HITL_BENCH_SCALE_SECONDS", "300"))
WEB_WORKERS = int(os.environ.get("HITL_BENCH_SCALE_WEB_WORKERS", "3"))
SUBMITTERS = int(os.environ.get("HITL_BENCH_SCALE_SUBMITTERS", "4"))
REVIEWERS = int(os.environ.get("HITL_BENCH_SCALE_REVIEWERS", "6"))
RESTART_AFTER = float(os.environ.get("HITL_BENCH_SCALE_RESTART_AFTER", "20"))
DRAIN_SECONDS = float(os.environ.get("HITL_BENCH_SCALE_DRAIN_SECONDS", "300"))
RECEIVER_DELAY = float(os.environ.get("HITL_BENCH_SCALE_RECEIVER_DELAY", "0.3"))
WORKER_CONCURRENCY = 4  # the Procfile's
AREA = "Scale-out (Procfile topology)"
QUEUE = "ops"

POLICY = {
    "queues": [
        {
            "slug": QUEUE, "name": "Operations", "sla_minutes": 480, "required_approvals": 1,
            "checklist": [], "reviewer_groups": ["ops-reviewers"], "escalation_queue": None,
            "timeout_outcome": "reject",
        }
    ],
    "reason_codes": [
        {"code": "policy_violation", "label": "Violates the policy", "applies_to": ["reject", "edit"]},
        {"code": "tone", "label": "Tone or wording", "applies_to": ["edit"]},
    ],
    "rules": [
        {
            "name": "Money and account actions", "enabled": True, "priority": 10, "match": "any",
            "outcome": "review", "queue": QUEUE, "risk_level": "high",
            "conditions": [
                {"field": "action.type", "op": "in", "value": ["payment.refund", "account.update"]}
            ],
        },
        {
            "name": "Low confidence", "enabled": True, "priority": 20, "match": "any",
            "outcome": "review", "queue": QUEUE, "risk_level": "medium",
            "conditions": [{"field": "signals.confidence", "op": "lt", "value": 0.7}],
        },
    ],
}  # fmt: skip

MAKE_REVIEWERS = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from reviews.models import REVIEWERS_GROUP
groups = [Group.objects.get(name=REVIEWERS_GROUP), Group.objects.get(name="ops-reviewers")]
for number in range({count}):
    user = get_user_model().objects.create_user("scale-reviewer-%d" % number, is_staff=True)
    user.groups.add(*groups)
"""

APPROVED = ("approved", "edited", "auto_approved")
OPEN = ("pending", "in_review")


# --- Topology --------------------------------------------------------------------------


def process_env(db_name: str, redis_url: str) -> dict[str, str]:
    """Production settings for every process, with this run's database and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    base, _, _ = ADMIN_URL.rpartition("/")
    env.update(
        DATABASE_URL=f"{base}/{db_name}",
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="hitl_project.settings",
        DJANGO_SECRET_KEY="benchmark-secret-key-not-for-production",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        # pytest's own environment sets 0 (see pyproject.toml); production reuses connections.
        DJANGO_CONN_MAX_AGE="60",
        HITL_WEBHOOK_ALLOW_PRIVATE="1",
        HITL_INTEGRATION_RATE="1000000/second",
        HITL_STAFF_RATE="1000000/second",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    return env


@dataclass(frozen=True)
class Setup:
    api_key: str
    tokens: list[str]


def prepare_data(env: dict[str, str], receiver: Receiver, policy_file: Path) -> Setup:
    """Migrate; policy, integration and reviewers through the project's own commands."""
    manage(env, "migrate", "--noinput")
    policy_file.write_text(json.dumps(POLICY, indent=2))
    manage(env, "import_policy", str(policy_file))
    created = manage(
        env,
        "create_integration",
        "Scale-out bench",
        "--action-url",
        f"{receiver.url}/actions",
        "--callback-url",
        f"{receiver.url}/callback",
    )
    api_key = re.search(r"^api_key: (\S+)$", created, re.MULTILINE)
    assert api_key, f"create_integration printed no api_key:\n{created}"
    manage(env, "shell", "-c", MAKE_REVIEWERS.format(count=REVIEWERS))
    tokens = []
    for number in range(REVIEWERS):
        printed = manage(env, "drf_create_token", f"scale-reviewer-{number}")
        token = re.search(r"Generated token (\w+) for user", printed)
        assert token, f"drf_create_token printed no token:\n{printed}"
        tokens.append(token.group(1))
    return Setup(api_key.group(1), tokens)


def worker_process(env: dict, log_dir: Path, number: int) -> CeleryProcess:
    # The Procfile's worker; a node name of its own, since two run on one host.
    options = ["--concurrency", str(WORKER_CONCURRENCY), "-n", f"scale{number}@%h"]
    return CeleryProcess("worker", env, log_dir / f"worker-{number}.log", options)


# --- Watching the run ------------------------------------------------------------------

MIN_IN_FLIGHT = 2  # deliveries the worker should be in the middle of when it is killed
KILL_WAIT = 15.0  # seconds to wait for them at most; then it is killed whatever it is doing
TASK_LINE = re.compile(
    r"Task (?P<name>[\w.]+)\[(?P<id>[0-9a-f-]+)\] (?P<event>received|succeeded|failed|raised|retry)"
)
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Topology:
    web: GunicornProcess
    workers: list[CeleryProcess]
    beat: CeleryProcess
    redis: RedisServer
    db_url: str

    def tiers(self, db) -> dict[str, tuple[set[int], set[int]]]:
        """Tier -> (process groups, single pids) as they are now (a restarted worker is a new group)."""
        backends = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return {
            "web (gunicorn)": ({self.web.process.pid}, set()),
            "celery workers": ({w.process.pid for w in self.workers if w.process.poll() is None}, set()),
            "celery beat": ({self.beat.process.pid}, set()),
            "PostgreSQL backends": (set(), {row[0] for row in backends}),
            "redis-server": (set(), {self.redis.process.pid}),
            "clients + receiver": (set(), {os.getpid()}),
        }


def cpu_by_pid() -> dict[int, tuple[int, float]]:
    """pid -> (process group, CPU seconds so far) for every process on the machine."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            found[int(entry.name)] = (int(fields[2]), (int(fields[11]) + int(fields[12])) / TICK)
    return found


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait), every core together."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


class CpuMeter:
    """CPU seconds each tier used during the load: per pid, its last reading minus its first
    (zero for a process started during the load); sampled every second, so a process that
    exits (the killed worker) loses at most its last second. `machine` is what the whole
    machine used meanwhile, other people's work included."""

    def __init__(self):
        self._lock = threading.Lock()
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.running = False
        self.machine = 0.0

    def sample(self, tiers: dict[str, tuple[set[int], set[int]]], *, start: bool = False) -> None:
        readings = cpu_by_pid()
        with self._lock:
            if not (self.running or start):
                return
            if start:
                self.machine = -machine_busy()
            self.running = True
            for pid, (group, seconds) in readings.items():
                tier = next(
                    (t for t, (groups, pids) in tiers.items() if group in groups or pid in pids), None
                )
                if tier is None:
                    continue
                if start:
                    self.first[pid] = seconds
                self.first.setdefault(pid, 0.0)
                self.last[pid] = (tier, seconds)

    def stop(self, tiers) -> None:
        self.sample(tiers)
        with self._lock:
            self.running = False
            self.machine += machine_busy()

    def seconds(self) -> dict[str, float]:
        used = defaultdict(float)
        for pid, (tier, seconds) in self.last.items():
            used[tier] += seconds - self.first[pid]
        return dict(used)


@dataclass
class Kill:
    at: float = 0.0  # time.time() of the SIGKILL
    tasks: int = 0  # deliveries the killed worker had received and not finished
    pending: int = 0  # outbox messages not yet delivered
    leased: int = 0  # of which an attempt was under way (a live lease, either worker)
    queued: int = 0  # tasks waiting in Redis
    reserved: int = 0  # tasks taken from Redis by a worker and not acknowledged yet
    restarted_in: float = 0.0  # seconds from starting the worker again to its "ready"
    back_at: float = 0.0  # time.time() when it was ready again
    pending_ids: list[int] = field(default_factory=list)
    caught_up_at: float | None = None  # every message pending at the kill delivered


@dataclass
class Backlog:
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time.time(), pending outbox)


def outbox_pending(db) -> int:
    return db.execute("SELECT count(*) FROM reviews_outboxmessage WHERE status = 'pending'").fetchone()[0]


def watch(topology: Topology, stop: threading.Event, kill: Kill, backlog: Backlog, meter: CpuMeter) -> None:
    """Every second: the outbox backlog, CPU per tier, and whether the kill's backlog was caught up."""
    import psycopg

    with psycopg.connect(topology.db_url, autocommit=True) as db:
        while not stop.wait(1.0):
            backlog.samples.append((time.time(), outbox_pending(db)))
            meter.sample(topology.tiers(db))
            if kill.pending_ids and kill.caught_up_at is None:
                left = db.execute(
                    "SELECT count(*) FROM reviews_outboxmessage WHERE id = ANY(%s) AND status = 'pending'",
                    (kill.pending_ids,),
                ).fetchone()[0]
                if left == 0:
                    kill.caught_up_at = time.time()


class TaskLog:
    """The deliveries a worker has received and not finished, read from its log as it grows."""

    def __init__(self, worker: CeleryProcess):
        self.path, self.marker = worker.log, f"--- start {worker.starts}\n"
        self.offset, self.open, self.started = 0, set(), False

    def in_flight(self) -> set[str]:
        with self.path.open(errors="replace") as log:
            log.seek(self.offset)
            text = log.read()
        cut = text.rfind("\n") + 1  # a line still being written is read next time
        self.offset += len(text[:cut].encode())
        text = text[:cut]
        if not self.started:
            if self.marker not in text:
                return set()
            text, self.started = text.split(self.marker, 1)[1], True
        for line in TASK_LINE.finditer(text):
            if line["name"] == "reviews.deliver_message":
                (self.open.add if line["event"] == "received" else self.open.discard)(line["id"])
        return self.open


def kill_worker(worker: CeleryProcess, tasks: TaskLog, db, redis_url: str, kill: Kill) -> None:
    """Wait (briefly) until the worker is in the middle of deliveries, note what is in
    flight, then SIGKILL its whole process group."""
    import redis

    deadline = time.monotonic() + KILL_WAIT
    while len(tasks.in_flight()) < MIN_IN_FLIGHT and time.monotonic() < deadline:
        time.sleep(0.02)
    broker = redis.Redis.from_url(redis_url)
    rows = db.execute(
        "SELECT id, lease_until > now() FROM reviews_outboxmessage WHERE status = 'pending'"
    ).fetchall()
    kill.tasks = len(tasks.in_flight())
    kill.pending_ids = [row[0] for row in rows]
    kill.pending = len(rows)
    kill.leased = sum(1 for row in rows if row[1])
    kill.queued = broker.llen("celery")
    kill.reserved = broker.hlen("unacked")
    kill.at = time.time()
    worker.kill()


# --- The run ---------------------------------------------------------------------------


@dataclass
class Run:
    ledger: load.Ledger
    seconds: float
    kill: Kill
    killed_after: float  # seconds into the load
    backlog: Backlog
    cpu: dict[str, float]
    machine_cpu: float  # CPU seconds the whole machine used during the load, others' work included
    stop_watch: threading.Event  # set once the drain is over


def run_load(setup: Setup, topology: Topology, db) -> Run:
    ledger, stop, stop_watch = load.Ledger(), threading.Event(), threading.Event()
    kill, backlog, meter = Kill(), Backlog(), CpuMeter()
    killed = topology.workers[0]
    tasks = TaskLog(killed)
    watcher = threading.Thread(target=watch, args=(topology, stop_watch, kill, backlog, meter), daemon=True)
    watcher.start()
    meter.sample(topology.tiers(db), start=True)
    started = time.monotonic()
    threads = load.start_clients(
        topology.web.port, setup.api_key, setup.tokens, QUEUE, SUBMITTERS, stop, ledger
    )
    try:
        time.sleep(SECONDS / 3)
        kill_worker(killed, tasks, db, topology.redis.url, kill)
        killed_after = time.monotonic() - started
        time.sleep(RESTART_AFTER)
        restarting = time.monotonic()
        killed.start()
        kill.restarted_in, kill.back_at = time.monotonic() - restarting, time.time()
        time.sleep(max(0.0, started + SECONDS - time.monotonic()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    seconds = time.monotonic() - started
    meter.stop(topology.tiers(db))
    # The watcher keeps going through the drain, so a slow catch-up after the kill is still seen.
    return Run(ledger, seconds, kill, killed_after, backlog, meter.seconds(), meter.machine, stop_watch)


# --- The checks ------------------------------------------------------------------------


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    executed_twice: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


def lowered(headers: dict) -> dict:
    return {name.lower(): value for name, value in headers.items()}


def check(run: Run, db, receiver: Receiver) -> Verdict:
    """Nothing lost, nothing executed twice (tests/integration/test_worker.py's definition)."""
    verdict = Verdict()
    items = {
        row[0]: row[1:]
        for row in db.execute(
            "SELECT id::text, kind, status, execution_status, final_action = executed_action, decided_at "
            "FROM reviews_reviewitem"
        )
    }
    messages = defaultdict(dict)  # item id -> kind -> (msg_id, status, delivered_at)
    for item_id, kind, msg_id, status, delivered_at in db.execute(
        "SELECT item_id::text, kind, msg_id, status, delivered_at FROM reviews_outboxmessage"
    ):
        messages[item_id][kind] = (msg_id, status, delivered_at)

    # Every 201 is an item, and nothing else is (no item created twice or behind a failed answer).
    submitted = run.ledger.submitted
    verdict.lost += [
        f"submission {i} answered 201 but is not in the database" for i in submitted if i not in items
    ]
    verdict.other += [
        f"item {i} exists but no submission got a 201 for it" for i in items if i not in submitted
    ]
    for item_id, action in run.ledger.decisions.items():
        status = items.get(item_id, (None, None))[1]
        if status != load.FINAL_STATUS[action]:
            verdict.other.append(f"{item_id} was decided {action} (201) but is {status}")

    requests = list(receiver.requests)
    actions, callbacks = defaultdict(list), defaultdict(list)
    for request in requests:
        headers = lowered(request.headers)
        if request.path == "/actions":
            actions[headers["idempotency-key"]].append((headers["webhook-id"], request.received_at))
        elif request.path == "/callback":
            callbacks[request.json["data"]["id"]].append(
                (headers["webhook-id"], request.received_at, request)
            )

    approved_actions = {
        i for i, (kind, status, *_) in items.items() if kind == "action" and status in APPROVED
    }
    for item_id in approved_actions:
        _, _, execution, same, _ = items[item_id]
        message = messages[item_id].get("execute")
        if message is None or message[1] != "delivered" or item_id not in actions:
            verdict.lost.append(f"approved action {item_id} not executed: {message} {execution}")
            continue
        if execution != "succeeded" or not same:
            verdict.lost.append(f"approved action {item_id}: execution {execution}, executed = final: {same}")
        msg_id, _, delivered_at = message
        ids = {webhook_id for webhook_id, _ in actions[item_id]}
        if ids != {msg_id}:
            verdict.executed_twice.append(f"action {item_id} arrived under message ids {sorted(ids)}")
        late = [at for _, at in actions[item_id] if at > delivered_at]
        if late:
            verdict.executed_twice.append(f"action {item_id} sent again after its acknowledgement: {late}")
    unapproved = set(actions) - approved_actions
    verdict.executed_twice += [f"action {i} sent but the item is {items.get(i)}" for i in unapproved]

    final = {i for i, (_, status, *_) in items.items() if status not in OPEN}
    for item_id in final:
        message = messages[item_id].get("callback")
        ids = {webhook_id for webhook_id, *_ in callbacks.get(item_id, [])}
        if message is None or message[1] != "delivered" or message[0] not in ids:
            verdict.lost.append(f"callback of {item_id} ({items[item_id][1]}) not delivered: {message}")
        elif ids != {message[0]}:
            verdict.other.append(f"callback of {item_id} arrived under message ids {sorted(ids)}")
        elif (
            items[item_id][1] == "rejected" and callbacks[item_id][0][2].json["data"]["status"] != "rejected"
        ):
            verdict.lost.append(f"rejection of {item_id} reported as something else")
    verdict.other += [f"callback for {i}, not final" for i in set(callbacks) - final]

    # What the kill cut short: attempts begun and never recorded, re-sent under the same id.
    cut = db.execute(
        "SELECT a.message_id, m.delivered_at FROM reviews_deliveryattempt a "
        "JOIN reviews_outboxmessage m ON m.id = a.message_id "
        "WHERE a.status_code IS NULL AND a.error = ''"
    ).fetchall()
    statuses = dict(
        db.execute("SELECT status, count(*) FROM reviews_outboxmessage GROUP BY status").fetchall()
    )
    redelivered = sum(len(v) - len({w for w, _ in v}) for v in actions.values())
    redelivered += sum(len(v) - len({w for w, *_ in v}) for v in callbacks.values())
    kill_at = datetime.fromtimestamp(run.kill.at).astimezone()
    verdict.figures.update(
        items=len(items),
        approved_actions=len(approved_actions),
        executed=len(set(actions) & approved_actions),
        final=len(final),
        rejected=sum(1 for _, status, *_ in items.values() if status == "rejected"),
        open=len(items) - len(final),
        outbox=statuses,
        receiver_requests=len(requests),
        redelivered=redelivered,
        cut_attempts=len(cut),
        cut_recovered_after=max(
            ((at - kill_at).total_seconds() for _, at in cut if at is not None), default=None
        ),
    )

    # Decision (the item's decided_at, committed) to the first request at the receiver.
    to_action, to_callback, outside_kill = [], [], []
    window = (run.kill.at, run.kill.caught_up_at or run.kill.back_at)
    for item_id in run.ledger.decisions:
        decided_at = items[item_id][4]
        if item_id in actions:
            seconds = (min(at for _, at in actions[item_id]) - decided_at).total_seconds()
            to_action.append(seconds * 1000)
            if not window[0] <= decided_at.timestamp() <= window[1]:
                outside_kill.append(seconds * 1000)
        if item_id in callbacks:
            to_callback.append(
                (min(at for _, at, _ in callbacks[item_id]) - decided_at).total_seconds() * 1000
            )
    verdict.figures.update(to_action=to_action, to_callback=to_callback, to_action_outside_kill=outside_kill)
    return verdict


def log_errors(paths: list[Path]) -> dict[str, int]:
    found = {}
    for path in paths:
        text = path.read_text(errors="replace") if path.exists() else ""
        found[path.name] = sum(1 for line in text.splitlines() if " ERROR " in line or "Traceback" in line)
    return found


# --- Report ----------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def report(run: Run, verdict: Verdict, drained: float | None, logs: dict, load_average: str) -> None:
    ops = load.per_operation(run.ledger, run.seconds)
    f = verdict.figures
    kill = run.kill
    caught_up = kill.caught_up_at - kill.at if kill.caught_up_at else None
    peak = max((pending for _, pending in run.backlog.samples), default=0)
    to_action = load.percentile(f["to_action"], 0.95)
    to_action_calm = load.percentile(f["to_action_outside_kill"], 0.95)
    to_callback = load.percentile(f["to_callback"], 0.95)

    print(
        f"\n\nscale-out: gunicorn {WEB_WORKERS} sync workers, 2 celery workers (concurrency "
        f"{WORKER_CONCURRENCY}), 1 beat, redis-server, PostgreSQL; {SUBMITTERS} submitters and "
        f"{REVIEWERS} reviewers for {run.seconds:.0f} s\nmachine: {machine()} (shared with other "
        f"work; load average at the end {load_average})"
    )
    print("operation       requests    req/s   p50 ms   p95 ms  statuses")
    for op, figures in ops.items():
        print(
            f"{op:<14}{figures['requests']:>10}{figures['rate']:>9.1f}{figures['p50']:>9.0f}"
            f"{figures['p95']:>9.0f}  {figures['statuses']}"
        )
    print(
        f"items {f['items']}: {f['final']} final ({f['rejected']} rejected), {f['open']} still open; "
        f"{f['approved_actions']} approved actions, {f['executed']} executed at the receiver"
    )
    print(
        f"decision -> action at the receiver: p50 {ms(load.percentile(f['to_action'], 0.5))}, "
        f"p95 {ms(to_action)} (outside the kill window {ms(to_action_calm)}), "
        f"max {ms(max(f['to_action'], default=None))}; -> callback p95 {ms(to_callback)}"
    )
    print(
        f"worker 1 SIGKILLed {run.killed_after:.0f} s into the load, in the middle of {kill.tasks} "
        f"deliveries; then {kill.pending} outbox messages were undelivered, {kill.leased} attempts under "
        f"way (both workers), {kill.queued} tasks queued in Redis and {kill.reserved} reserved by workers; "
        f"started again {RESTART_AFTER:.0f} s later, ready in {kill.restarted_in:.1f} s"
    )
    print(
        f"the kill cut {f['cut_attempts']} attempts short; re-sent under the same id "
        f"({f['redelivered']} duplicate deliveries in all), the last delivered "
        f"{f['cut_recovered_after'] or 0:.0f} s after the kill; everything pending at the kill delivered "
        f"{'never' if caught_up is None else f'after {caught_up:.0f} s'}"
    )
    drain = (
        f"NOT within {DRAIN_SECONDS:.0f} s" if drained is None else f"{drained:.0f} s after the load stopped"
    )
    print(
        f"outbox backlog peak {peak}; drained {drain}; "
        f"outbox {f['outbox']}; receiver {f['receiver_requests']} requests; errors in logs {logs}"
    )
    cores = len(os.sched_getaffinity(0))
    used = ", ".join(
        f"{tier} {cpu:.0f} s ({cpu / run.seconds / cores:.0%})"
        for tier, cpu in sorted(run.cpu.items(), key=lambda pair: -pair[1])
    )
    print(f"CPU during the load (share of {cores} cores): {used}")
    ours = sum(run.cpu.values())
    print(
        f"the whole machine was busy {run.machine_cpu / run.seconds / cores:.0%} of its {cores} cores, "
        f"this run's processes {ours / run.seconds / cores:.0%}: the rest was other people's work"
    )
    api_requests = sum(figures["requests"] for figures in ops.values())
    web_cpu = run.cpu.get("web (gunicorn)", 0.0) * 1000 / max(1, api_requests)
    db_cpu = run.cpu.get("PostgreSQL backends", 0.0) * 1000 / max(1, api_requests + f["receiver_requests"])
    worker_cpu = run.cpu.get("celery workers", 0.0) * 1000 / max(1, f["receiver_requests"])
    print(
        f"CPU per unit of work: {web_cpu:.0f} ms of gunicorn per API request, {worker_cpu:.0f} ms of "
        f"celery per delivery, {db_cpu:.0f} ms of PostgreSQL per request or delivery"
    )
    print(
        f"lost {len(verdict.lost)}, executed twice {len(verdict.executed_twice)}, "
        f"5xx {run.ledger.server_errors()}, no answer {run.ledger.transport_errors()}, "
        f"other problems {len(verdict.other) + len(run.ledger.problems)}"
    )

    for op, label in ((load.SUBMIT, "submit"), (load.CLAIM, "claim-next"), (load.DECIDE, "decide")):
        record(AREA, f"{label} throughput", f"{ops[op]['rate']:.1f} req/s")
        record(AREA, f"{label} p95", f"{ops[op]['p95']:.0f} ms")
    record(AREA, "CPU per API request (gunicorn)", f"{web_cpu:.0f} ms")
    record(AREA, "CPU per delivery (celery worker)", f"{worker_cpu:.0f} ms")
    record(AREA, "decision -> action delivered p95", ms(to_action))
    record(AREA, "decision -> action delivered p95, outside the kill window", ms(to_action_calm))
    record(AREA, "decision -> callback delivered p95", ms(to_callback))
    record(
        AREA,
        "in flight at the SIGKILL",
        f"{kill.tasks} deliveries in the killed worker; {kill.leased} leased, {kill.pending} undelivered",
    )
    record(AREA, "attempts cut short by the kill", str(f["cut_attempts"]))
    record(AREA, "kill's backlog delivered after", "n/a" if caught_up is None else f"{caught_up:.0f} s")
    record(AREA, "worker ready again after restart", f"{kill.restarted_in:.1f} s")
    record(AREA, "lost", str(len(verdict.lost)), target="0", met=not verdict.lost)
    record(
        AREA, "executed twice", str(len(verdict.executed_twice)), target="0", met=not verdict.executed_twice
    )
    record(
        AREA, "5xx answers", str(run.ledger.server_errors()), target="0", met=not run.ledger.server_errors()
    )


# --- The benchmark ---------------------------------------------------------------------


def timed(phases: dict, name: str, step):
    def run():
        started = time.monotonic()
        try:
            step()
        finally:
            phases[name] = time.monotonic() - started

    return run


def test_scale_out_loses_nothing_and_executes_nothing_twice_with_a_worker_killed(tmp_path):
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    import psycopg

    receiver = Receiver(delay=RECEIVER_DELAY)
    phases: dict[str, float] = {}  # seconds each step of setting up and tearing down took
    began = time.monotonic()
    try:
        with bench_database() as db_name, contextlib.ExitStack() as stack:
            redis_server = RedisServer(tmp_path)
            redis_server.start()
            stack.callback(timed(phases, "stop redis", redis_server.stop))
            env = process_env(db_name, redis_server.url)
            setup = prepare_data(env, receiver, tmp_path / "policy.json")

            web = GunicornProcess(env, tmp_path / "gunicorn.log", workers=WEB_WORKERS)
            web.start()
            stack.callback(timed(phases, "stop web", web.stop))
            workers = [worker_process(env, tmp_path, number) for number in (1, 2)]
            for worker in workers:
                worker.start()
                stack.callback(timed(phases, f"stop {worker.log.stem}", worker.stop))
            beat = CeleryProcess("beat", env, tmp_path / "beat.log", ["--schedule", str(tmp_path / "beat")])
            beat.start(wait=False)
            stack.callback(timed(phases, "stop beat", beat.stop))
            topology = Topology(web, workers, beat, redis_server, env["DATABASE_URL"])
            phases["set up"] = time.monotonic() - began

            db = stack.enter_context(psycopg.connect(env["DATABASE_URL"], autocommit=True))
            run = run_load(setup, topology, db)
            stopped = time.monotonic()
            try:
                wait_until(lambda: outbox_pending(db) == 0, DRAIN_SECONDS, interval=1, what="outbox drained")
                drained = time.monotonic() - stopped
            except AssertionError:
                drained = None
            time.sleep(1)  # the watcher's last look, and the receiver's last answers
            run.stop_watch.set()
            load_average = ", ".join(f"{value:.2f}" for value in os.getloadavg())
            verdict = check(run, db, receiver)
            logs = log_errors([tmp_path / "gunicorn.log", *[w.log for w in workers], beat.log])
            report(run, verdict, drained, logs, load_average)
            dropping = time.monotonic()
        phases["drop database"] = time.monotonic() - dropping
    finally:
        timed(phases, "stop receiver", receiver.stop)()
        print("set-up and tear-down: " + ", ".join(f"{name} {sec:.1f} s" for name, sec in phases.items()))

    assert workers[0].starts == 2, "the worker was not killed and started again"
    assert drained is not None, f"the outbox did not drain within {DRAIN_SECONDS:.0f} s"
    assert not verdict.lost, f"{len(verdict.lost)} lost: {verdict.lost[:10]}"
    assert not verdict.executed_twice, f"{len(verdict.executed_twice)} twice: {verdict.executed_twice[:10]}"
    assert not run.ledger.server_errors(), f"5xx answers: {run.ledger.problems}"
    assert not run.ledger.transport_errors(), f"requests without an answer: {run.ledger.problems}"
    assert not run.ledger.problems, f"unexpected answers: {run.ledger.problems}"
    assert not verdict.other, f"inconsistencies: {verdict.other[:10]}"
