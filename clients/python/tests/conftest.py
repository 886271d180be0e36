"""The client's tests run against a live server of this project (pytest-django's
`live_server`), in the project's own suite: `make test` collects this folder
(`testpaths` in the project's pyproject.toml), with the client installed from
requirements.txt (`-e ./clients/python`) as a user would install it. pytest-django
finds the project (manage.py) above this folder and puts it on the path, so
`pytest clients/python/tests` works from anywhere in the repository.

The personas and factories are the project's (tests/conftest.py, tests/factories.py).
An integration here records approved actions instead of having them posted to an
action URL: with the decorator, the agent runs the tool itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import hitl_client
import httpx
import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.authtoken.models import Token

from reviews import services
from reviews.models import Integration
from tests import conftest as project
from tests.factories import GateConditionFactory, GateRuleFactory, ReasonCodeFactory

# The project's personas and service gates, for these tests too (the autouse ones included).
_fast_password_hashing = project._fast_password_hashing
_release_test_database = project._release_test_database
_rules_apply_at_once = project._rules_apply_at_once
_service_markers = project._service_markers
eager = project.eager
integration = project.integration
queue = project.queue
reviewer = project.reviewer
# Under pytest-xdist, each worker's own Redis database (when this folder runs on its own).
pytest_xdist_setupnodes = project.pytest_xdist_setupnodes

FAST = {"poll_interval": 0.02, "max_poll_interval": 0.2}
QUICK_RETRIES = hitl_client.Retry(attempts=4, backoff=0.01, max_backoff=0.05)


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """Started after (so stopped before) the test database, as in tests/browser."""
    return live_server


# --- SQLite: one request at a time ----------------------------------------------------------
#
# With SQLite the test database is in memory and the live server's request threads
# share its one connection, so two requests at once (the client polling while the
# reviewer decides) would interleave on it. There, every request this test process
# sends holds one lock; PostgreSQL needs none of it.

SERVER_LOCK = threading.Lock()


def _serial() -> bool:
    return connection.vendor == "sqlite"


class SerialTransport(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not _serial():
            return super().handle_request(request)
        with SERVER_LOCK:
            response = super().handle_request(request)
            response.read()
            return response


class AsyncSerialTransport(httpx.AsyncHTTPTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not _serial():
            return await super().handle_async_request(request)
        await asyncio.to_thread(SERVER_LOCK.acquire)
        try:
            response = await super().handle_async_request(request)
            await response.aread()
            return response
        finally:
            SERVER_LOCK.release()


# --- the agent's side ---------------------------------------------------------------------------


@pytest.fixture
def server(live_server, settings):
    """The live server with fresh rate-limit counters."""
    cache.clear()
    return live_server


@pytest.fixture
def agent(integration) -> Integration:
    integration.action_delivery = Integration.ActionDelivery.RECORD
    integration.save(update_fields=["action_delivery"])
    return integration


@pytest.fixture
def api_key(agent) -> str:
    return services.issue_api_key(integration=agent)


@pytest.fixture
def make_client(server, api_key) -> Iterator[Callable[..., hitl_client.Client]]:
    """Clients of the live server as the agent; keyword arguments go to `Client`."""
    made: list[hitl_client.Client] = []

    def make(**options: Any) -> hitl_client.Client:
        options.setdefault("transport", SerialTransport())
        options.setdefault("retry", QUICK_RETRIES)
        client = hitl_client.Client(server.url, api_key, **{**FAST, **options})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def hitl(make_client) -> hitl_client.Client:
    return make_client()


@pytest.fixture
def make_async_client(server, api_key) -> Callable[..., hitl_client.AsyncClient]:
    """AsyncClients of the live server; make them inside the event loop that uses them."""

    def make(**options: Any) -> hitl_client.AsyncClient:
        options.setdefault("transport", AsyncSerialTransport())
        options.setdefault("retry", QUICK_RETRIES)
        return hitl_client.AsyncClient(server.url, api_key, **{**FAST, **options})

    return make


# --- the gate and the reviewer's side ---------------------------------------------------------------


@pytest.fixture
def refunds_reviewed(queue):
    """Every refund waits for a reviewer in the `general` queue."""
    rule = GateRuleFactory(name="Review refunds", queue=queue)
    GateConditionFactory(rule=rule, field="action.type", op="eq", value="payment.refund")
    return rule


@pytest.fixture
def big_refunds_blocked(db):
    rule = GateRuleFactory(name="No refunds over 10000", outcome="block", queue=None)
    GateConditionFactory(rule=rule, field="action.params.amount", op="gt", value=10_000)
    return rule


@pytest.fixture
def codes(db):
    return [
        ReasonCodeFactory(code="wrong_amount", applies_to=["reject", "edit"]),
        ReasonCodeFactory(code="policy_violation", applies_to=["reject"]),
    ]


class Desk:
    """A reviewer working the `general` queue through the API with a DRF token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Token {token}"}, transport=SerialTransport()
        )
        self.pool = ThreadPoolExecutor(max_workers=1)

    def next_item(self, timeout: float = 15.0) -> dict:
        """Claim the next item, waiting for one to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.http.post("/api/v1/queues/general/claim-next/")
            if response.status_code == 200:
                return response.json()
            assert response.status_code == 204, response.text
            time.sleep(0.02)
        raise AssertionError("Nothing arrived in the queue.")

    def decide(self, item_id: str, action: str, justification: str, **body: Any) -> dict:
        response = self.http.post(
            f"/api/v1/items/{item_id}/decisions/",
            json={"action": action, "justification": justification, **body},
        )
        assert response.status_code == 201, response.text
        return response.json()

    def decide_next(
        self, action: str, justification: str, *, edit: Callable[[dict], dict] | None = None, **body
    ):
        """Claim the next item and decide it; `edit` turns the item's action into the edited one."""
        item = self.next_item()
        if edit is not None:
            body["edited_action"] = edit(item["action"])
        return self.decide(item["id"], action, justification, **body)

    def meanwhile(self, action: str, justification: str, **options: Any) -> Future:
        """Decide the next item from another thread, while this one waits on the client."""
        return self.pool.submit(self.decide_next, action, justification, **options)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.http.close()


@pytest.fixture
def desk(server, reviewer) -> Iterator[Desk]:
    token = Token.objects.get_or_create(user=reviewer)[0].key
    desk = Desk(server.url, token)
    yield desk
    desk.close()


@pytest.fixture
def quiet_server() -> Callable[[], contextlib.AbstractContextManager[None]]:
    """`with quiet_server():` runs ORM code in the test while no request is being
    served (with SQLite the server's threads share the test's connection)."""

    @contextlib.contextmanager
    def quiet() -> Iterator[None]:
        with SERVER_LOCK:
            yield

    return quiet
