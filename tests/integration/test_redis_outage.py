"""Redis stopped under the real topology: a gunicorn, a Celery worker and beat, all
with REDIS_URL on a private redis-server (cache, broker and result store), and a
real HTTP client in front. Submissions and decisions must keep answering while it
is down, /healthz must say so without failing, and once Redis is back every
approved action is executed exactly once and every callback arrives.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time

import pytest
from rest_framework.authtoken.models import Token

from reviews import services
from reviews.delivery import outbox
from reviews.models import ReviewItem
from tests.conftest import make_reviewer
from tests.factories import action_submission
from tests.integration.test_worker import all_executed, assert_exactly_once
from tests.processes import GunicornProcess, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


class Http:
    """JSON over one HTTP connection per request, with an Authorization header."""

    def __init__(self, base_url: str, authorization: str = ""):
        self.host, _, port = base_url.removeprefix("http://").partition(":")
        self.port = int(port)
        self.headers = {"Content-Type": "application/json"}
        if authorization:
            self.headers["Authorization"] = authorization
        self.latencies: list[float] = []

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        started = time.perf_counter()
        try:
            connection.request(method, path, json.dumps(body) if body is not None else None, self.headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        self.latencies.append(time.perf_counter() - started)
        try:
            return response.status, json.loads(raw) if raw else {}
        except ValueError:  # a server error's HTML page, say
            return response.status, {"body": raw[:500].decode(errors="replace")}


@pytest.fixture
def web(celery_env, tmp_path):
    process = GunicornProcess(celery_env, tmp_path / "gunicorn.log")
    process.start()
    yield process
    process.stop()


def health(web) -> tuple[int, dict]:
    return Http(web.url).request("GET", "/healthz")


def submit(api: Http, prefix: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        status, body = api.request("POST", "/api/v1/items/", action_submission(external_id=f"{prefix}-{n}"))
        assert status == 201, body
        ids.append(body["id"])
    return ids


def decide(staff: Http, ids: list[str], **decision) -> None:
    for item_id in ids:
        status, body = staff.request("POST", f"/api/v1/items/{item_id}/decisions/", decision)
        assert status == 201, body


def approve(staff: Http, ids: list[str]) -> None:
    decide(staff, ids, action="approve", justification="Verified.")


def callbacks_for(receiver) -> set[str]:
    return {r.json["data"]["id"] for r in receiver.requests if r.path == "/callback"}


def test_submissions_and_decisions_go_on_while_redis_is_down(
    wired, receiver, queue, redis_server, web, worker, beat
):
    reviewer = make_reviewer("reviewer", queue)
    api = Http(web.url, f"Api-Key {services.issue_api_key(integration=wired)}")
    staff = Http(web.url, f"Token {Token.objects.create(user=reviewer).key}")
    assert health(web) == (200, {"status": "ok", "database": "ok", "broker": "ok"})

    before = submit(api, "before", 4)
    approve(staff, before[:2])

    redis_server.stop()
    assert health(web) == (200, {"status": "degraded", "database": "ok", "broker": "degraded"})
    api.latencies.clear()
    staff.latencies.clear()
    during = submit(api, "during", 6)
    approve(staff, before[2:] + during[:4])
    decide(
        staff, during[4:], action="reject", justification="Wrong account.", reason_codes=["policy_violation"]
    )
    outage = {"submission": api.latencies[:], "decision": staff.latencies[:]}
    time.sleep(1)
    redis_server.start()  # the same port, and empty: whatever was queued in it is gone

    after = submit(api, "after", 1)
    approve(staff, after)
    approved = list(ReviewItem.objects.filter(pk__in=before + during[:4] + after))
    rejected = list(ReviewItem.objects.filter(pk__in=during[4:]))
    wait_until(lambda: all_executed(approved), 90, interval=0.5, what="every approved action executed")
    decided = {str(item.pk) for item in approved + rejected}
    wait_until(lambda: callbacks_for(receiver) == decided, 60, interval=0.5, what="every callback")
    received = assert_exactly_once(receiver, approved, rejected)
    assert health(web) == (200, {"status": "ok", "database": "ok", "broker": "ok"})
    assert worker.process.poll() is None and worker.starts == 1, "the worker went down with Redis"

    for name, latencies in outage.items():
        median, longest = statistics.median(latencies) * 1000, max(latencies) * 1000
        print(f"\n{len(latencies)} {name}s with Redis stopped: median {median:.0f} ms, max {longest:.0f} ms")
    redeliveries = sum(received.values()) - len(received)
    print(f"{len(approved)} actions applied once each, {redeliveries} redeliveries")


def test_a_busy_worker_reconnects_when_redis_comes_back(wired, receiver, queue, broker, worker):
    """A worker in the middle of a delivery when Redis goes away keeps running, reconnects
    once it is back, and the action is applied once."""
    outbox.broker_outage.reset()  # this process publishes: not skipping for an earlier test's outage
    receiver.delay = 3  # the worker is still waiting for the receiver when Redis goes
    reviewer = make_reviewer("reviewer", queue)
    item = services.submit_item(integration=wired, payload=action_submission()).item
    services.decide(item=item, user=reviewer, action="approve", justification="Verified.")
    wait_until(lambda: receiver.requests, 30, what="a delivery in flight")
    broker.stop()
    wait_until(lambda: "Connection to broker lost" in worker.log.read_text(), 30, what="the worker noticing")
    wait_until(lambda: "Cannot connect to redis" in worker.log.read_text(), 30, what="the worker retrying")
    assert worker.process.poll() is None, f"the worker exited:\n{worker.log.read_text()[-3000:]}"
    broker.start()
    wait_until(lambda: all_executed([item]), 60, interval=0.5, what="the action executed")
    assert worker.process.poll() is None and worker.starts == 1
    assert_exactly_once(receiver, [item], [])
