"""The traffic of the scale-out benchmark (test_scale_out.py): integration clients
submitting and reviewer clients claiming and deciding through the REST API.

Every client is a thread with its own connections to one gunicorn on 127.0.0.1
and a random generator of its own (seeded, so a run is repeatable up to timing).
Clients run closed-loop, without pauses: each sends its next request as soon as
the last one answered, so a run measures what the machine can carry.

What every request answered goes into one `Ledger`: each call (operation, start,
duration, status), the item ids that got a 201, the decisions that got a 201, and
the first answers that were not the ones expected. A transport error is retried
(a submission with the same Idempotency-Key, as a client should) and a 429 waits
for its Retry-After, so the ledger stays the truth about what was created.
"""

from __future__ import annotations

import copy
import http.client
import json
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

SUBMIT, REPLAY, CLAIM, DECIDE = "submit", "submit replay", "claim-next", "decide"
OPERATIONS = (SUBMIT, REPLAY, CLAIM, DECIDE)
REPLAY_SHARE = 0.05  # of submissions repeat an earlier one: 200 with the first id expected
EMPTY_QUEUE_PAUSE = 0.2  # seconds a reviewer waits after a 204 before asking again
MAX_PROBLEMS = 20
REQUEST_TIMEOUT = 60


@dataclass(frozen=True)
class Call:
    op: str
    started: float  # time.time()
    seconds: float
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)


@dataclass
class Ledger:
    calls: list[Call] = field(default_factory=list)
    submitted: dict[str, str] = field(default_factory=dict)  # item id -> status in the 201
    decisions: dict[str, str] = field(default_factory=dict)  # item id -> approve, edit or reject
    problems: list[str] = field(default_factory=list)  # the first unexpected answers

    def __post_init__(self):
        self._lock = threading.Lock()

    def add(self, calls: list[Call], submitted: dict, decisions: dict, problems: list[str]) -> None:
        with self._lock:
            self.calls += calls
            self.submitted.update(submitted)
            self.decisions.update(decisions)
            self.problems += problems[: max(0, MAX_PROBLEMS - len(self.problems))]

    def statuses(self, op: str | None = None) -> Counter:
        return Counter(call.status for call in self.calls if op is None or call.op == op)

    def server_errors(self) -> int:
        return sum(1 for call in self.calls if call.status >= 500)

    def transport_errors(self) -> int:
        return sum(1 for call in self.calls if call.status == 0)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class Client:
    """One thread's view of the API: a request, retried on a transport error or a 429."""

    def __init__(self, port: int, authorization: str):
        self.port = port
        self.headers = {"Authorization": authorization, "Content-Type": "application/json"}
        self.calls: list[Call] = []
        self.problems: list[str] = []

    def request(self, op: str, method: str, path: str, body: bytes | None = None, headers=None):
        """(status, parsed JSON or None); up to five tries when nothing answered or 429."""
        status, data = 0, None
        for _ in range(5):
            status, raw, retry_after = self._once(op, method, path, body, {**self.headers, **(headers or {})})
            if status == 429:
                time.sleep(min(5.0, retry_after))
                continue
            if status == 0:
                time.sleep(0.5)
                continue
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = None
            if status >= 500:
                self.problem(f"{op} {path}: {status} {raw[:300]!r}")
            return status, data
        return status, data

    def _once(self, op, method, path, body, headers) -> tuple[int, bytes, float]:
        # Sync gunicorn workers close every connection after the answer: one connection a request.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        started, clock = time.time(), time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            status = response.status
            retry_after = float(response.getheader("Retry-After") or 1)
        except (OSError, http.client.HTTPException) as exc:
            status, raw, retry_after = 0, repr(exc).encode(), 0.0
        finally:
            connection.close()
        self.calls.append(Call(op, started, time.perf_counter() - clock, status))
        return status, raw, retry_after

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


# --- Integration clients ---------------------------------------------------------------

# What a submission is, and what the benchmark's policy (test_scale_out.POLICY) does with it.
REVIEWED_ACTION, AUTO_ACTION = "reviewed action", "auto action"
REVIEWED_OUTPUT, AUTO_OUTPUT = "reviewed output", "auto output"
MIX = ((REVIEWED_ACTION, 0.75), (AUTO_ACTION, 0.10), (REVIEWED_OUTPUT, 0.08), (AUTO_OUTPUT, 0.07))
EXPECTED_STATUS = {REVIEWED_ACTION: "pending", AUTO_ACTION: "auto_approved"}
EXPECTED_STATUS |= {REVIEWED_OUTPUT: "pending", AUTO_OUTPUT: "auto_approved"}


def submission(rng: random.Random, name: str) -> tuple[str, dict]:
    """A submission body of a kind drawn from MIX."""
    kind = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
    body = {
        "external_id": name,
        "input": {"prompt": f"Customer request {name}", "messages": [{"role": "user", "content": "Help."}]},
        "context": {"reasoning": "Asked for it.", "tool_outputs": [{"tool": "orders.get", "output": {}}]},
        "metadata": {"user_id": f"u-{rng.randrange(10_000)}"},
    }
    confident = kind in (AUTO_ACTION, AUTO_OUTPUT)
    body["signals"] = {"confidence": round(rng.uniform(0.9, 0.99) if confident else rng.uniform(0.3, 0.6), 2)}
    if kind == REVIEWED_ACTION:
        if rng.random() < 0.6:
            amount = round(rng.uniform(5, 900), 2)
            action = {
                "type": "payment.refund",
                "params": {"order": name, "amount": amount, "currency": "EUR"},
            }
            text = f"I will refund {amount:.2f} EUR for order {name}."
        else:
            action = {"type": "account.update", "params": {"account": name, "email": f"{name}@example.com"}}
            text = f"I will change the e-mail address of account {name}."
        body.update(kind="action", action=action, output={"text": text})
    elif kind == AUTO_ACTION:
        note = f"Called the customer about {name}."
        body.update(
            kind="action", action={"type": "crm.add_note", "params": {"customer": name, "note": note}}
        )
    else:
        body.update(kind="output", output={"text": f"Your order {name} ships tomorrow."})
    return kind, body


def submitter(port: int, api_key: str, number: int, stop: threading.Event, ledger: Ledger) -> None:
    """Submit until `stop`: new submissions with their own Idempotency-Key, and a few replays."""
    client = Client(port, f"Api-Key {api_key}")
    rng = random.Random(1000 + number)
    sent: list[tuple[str, bytes, str]] = []  # (key, body, id) of the 201s
    submitted: dict[str, str] = {}
    count = 0
    while not stop.is_set():
        if sent and rng.random() < REPLAY_SHARE:
            key, body, first_id = rng.choice(sent)
            status, data = client.request(REPLAY, "POST", "/api/v1/items/", body, {"Idempotency-Key": key})
            if status != 200 or not data or data.get("id") != first_id:
                client.problem(f"replay of {key}: {status} {data!r:.300} (first id {first_id})")
            continue
        count += 1
        name = f"s{number}-{count}"
        kind, payload = submission(rng, name)
        key, body = f"scale-{name}", json.dumps(payload).encode()
        status, data = client.request(SUBMIT, "POST", "/api/v1/items/", body, {"Idempotency-Key": key})
        if status == 200 and data and data.get("id"):
            status = 201  # a retry after a transport error found the first submission: it was created
        if status != 201 or not data or "id" not in data:
            client.problem(f"submit {key}: {status} {data!r:.300}")
            continue
        submitted[data["id"]] = data["status"]
        sent.append((key, body, data["id"]))
        if data["status"] != EXPECTED_STATUS[kind]:
            client.problem(f"submit {key} ({kind}): status {data['status']}, not {EXPECTED_STATUS[kind]}")
    ledger.add(client.calls, submitted, {}, client.problems)


# --- Reviewer clients ------------------------------------------------------------------

DECISION_MIX = (("approve", 0.8), ("reject", 0.1), ("edit", 0.1))
FINAL_STATUS = {"approve": "approved", "reject": "rejected", "edit": "edited"}


def decision_body(rng: random.Random, item: dict) -> tuple[str, dict]:
    action = rng.choices([a for a, _ in DECISION_MIX], weights=[w for _, w in DECISION_MIX])[0]
    if action == "approve":
        return action, {"action": "approve", "justification": "Checked against the customer's request."}
    if action == "reject":
        body = {"action": "reject", "justification": "Not what the customer asked for."}
        return action, body | {"reason_codes": ["policy_violation"]}
    body = {"action": "edit", "justification": "Corrected before it goes out.", "reason_codes": ["tone"]}
    if item["kind"] == "action":
        edited = copy.deepcopy(item["action"])
        edited.setdefault("params", {})["reviewed_by_a_person"] = True
        return action, body | {"edited_action": edited}
    return action, body | {"edited_output": {"text": item["output"]["text"] + " (Checked by our team.)"}}


def reviewer(port: int, token: str, queue: str, number: int, stop: threading.Event, ledger: Ledger) -> None:
    """Claim the next item and decide it, until `stop`; a claimed item is always decided."""
    client = Client(port, f"Token {token}")
    rng = random.Random(2000 + number)
    decisions: dict[str, str] = {}
    while not stop.is_set():
        status, item = client.request(CLAIM, "POST", f"/api/v1/queues/{queue}/claim-next/")
        if status == 204:
            time.sleep(EMPTY_QUEUE_PAUSE)
            continue
        if status != 200 or not item:
            client.problem(f"claim-next: {status} {item!r:.300}")
            time.sleep(0.5)
            continue
        action, body = decision_body(rng, item)
        path = f"/api/v1/items/{item['id']}/decisions/"
        status, result = client.request(DECIDE, "POST", path, json.dumps(body).encode())
        if status == 201 and result and result["item"]["status"] == FINAL_STATUS[action]:
            decisions[item["id"]] = action
        else:
            client.problem(f"decide {action} {item['id']}: {status} {result!r:.300}")
    ledger.add(client.calls, {}, decisions, client.problems)


def start_clients(port: int, api_key: str, tokens: list[str], queue: str, submitters: int, stop, ledger):
    """Start the submitter and reviewer threads; the caller sets `stop` and joins them."""
    threads = [
        threading.Thread(target=submitter, args=(port, api_key, n, stop, ledger), name=f"submitter-{n}")
        for n in range(submitters)
    ]
    threads += [
        threading.Thread(target=reviewer, args=(port, token, queue, n, stop, ledger), name=f"reviewer-{n}")
        for n, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    return threads


def per_operation(ledger: Ledger, seconds: float) -> dict[str, dict]:
    """Requests, requests/s, p50 and p95 in ms, and statuses, per operation."""
    by_op = defaultdict(list)
    for call in ledger.calls:
        by_op[call.op].append(call)
    figures = {}
    for op in OPERATIONS:
        calls = by_op.get(op, [])
        latencies = [call.seconds * 1000 for call in calls]
        figures[op] = {
            "requests": len(calls),
            "rate": len(calls) / seconds if seconds else 0.0,
            "p50": percentile(latencies, 0.50),
            "p95": percentile(latencies, 0.95),
            "statuses": dict(sorted(Counter(call.status for call in calls).items())),
        }
    return figures
