"""The API keeps the promises of its own OpenAPI document (SPEC section 4).

Schemathesis loads `/api/v1/schema/` from the WSGI application and sends
requests in-process, authenticated as an integration. Every answer is checked:

* never a 5xx (`not_a_server_error`),
* only status codes the operation documents (`status_code_conformance`),
* a documented content type (`content_type_conformance`),
* a body that matches the documented schema (`response_schema_conformance`).

`test_every_operation_keeps_the_schema` fuzzes every operation in the schema
with valid and invalid requests. The database holds a gate that queues
low-confidence outputs and every action, and one item in each state an
integration can bring about; generated cases sometimes use those items' ids
so the detail, cancel and incident operations answer with real items and not
only 404s. Each request runs in a savepoint that is rolled back, so every case
sees the same database and a failure replays and shrinks deterministically.

Fuzzing seldom produces a submission the API accepts (an `output` item needs
an `output`, unknown keys are refused), so the remaining tests send chosen
requests through the same operations and checks: each answer the API gives
in normal use is validated against the schema too.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hitl_project.wsgi import application
from reviews import services
from tests.factories import GateConditionFactory, GateRuleFactory, QueueFactory, action_submission, submission

EXAMPLES_PER_OPERATION = 30

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

ITEMS = "/api/v1/items/"
ITEM = "/api/v1/items/{id}/"
CANCEL = "/api/v1/items/{id}/cancel/"


@dataclass(frozen=True)
class Contract:
    headers: dict[str, str]
    items: dict[str, str]  # state -> item id


@pytest.fixture
def wsgi_requests_share_the_test_transaction():
    """The WSGI handler closes "old" connections when a request starts and ends,
    which inside the test transaction would drop it; Django's test client
    disconnects the same receiver."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def contract(db, wsgi_requests_share_the_test_transaction) -> Contract:
    """An integration, a gate that queues low-confidence outputs and every action,
    and one item in each of the states an integration can bring about."""
    cache.clear()  # rate-limit counters
    queue = QueueFactory(slug="general")
    GateConditionFactory(rule=GateRuleFactory(name="Review low confidence", queue=queue))
    GateConditionFactory(
        rule=GateRuleFactory(name="Review agent actions", queue=queue), field="kind", op="eq", value="action"
    )
    integration, key = services.create_integration(name="Contract bot")

    def submit(body: dict):
        return services.submit_item(integration=integration, payload=body).item

    items = {
        "pending": submit(submission(signals={"confidence": 0.4})),
        "auto_approved": submit(submission(signals={"confidence": 0.99})),
        "pending_action": submit(action_submission()),
        "cancelled": services.cancel(
            item=submit(submission(signals={"confidence": 0.1})), integration=integration
        ),
    }
    return Contract(
        headers={"Authorization": f"Api-Key {key}"},
        items={state: str(item.pk) for state, item in items.items()},
    )


def use_stored_items(case, data, item_ids: list[str]) -> None:
    """Now and then point a generated case at an item that exists."""
    known_id = st.sampled_from(item_ids)
    if "id" in (case.path_parameters or {}) and data.draw(st.booleans(), label="stored item in path"):
        case.path_parameters["id"] = data.draw(known_id, label="item id")
    if isinstance(case.body, dict) and "item" in case.body and data.draw(st.booleans(), label="stored item"):
        case.body["item"] = data.draw(known_id, label="item id")


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_operation_keeps_the_schema(case, data, contract):
    use_stored_items(case, data, list(contract.items.values()))
    with transaction.atomic():
        case.call_and_validate(headers=contract.headers, checks=CHECKS)
        transaction.set_rollback(True)


# --- Chosen requests -----------------------------------------------------------------------


def send(contract: Contract, path: str, method: str, expected_status: int, **request):
    """Send one request through the schema's operation, run the checks, return the JSON answer."""
    case = schema[path][method].Case(**request)
    response = case.call_and_validate(headers=contract.headers, checks=CHECKS)
    assert response.status_code == expected_status, response.text
    return response.json()


def test_submission_replay_and_key_conflict_match_the_schema(contract):
    body = submission(signals={"confidence": 0.3})
    first = send(contract, ITEMS, "POST", 201, body=body, headers={"Idempotency-Key": "turn-1"})
    assert first["queue"] == "general"
    replay = send(contract, ITEMS, "POST", 200, body=body, headers={"Idempotency-Key": "turn-1"})
    assert replay["id"] == first["id"]
    send(
        contract,
        ITEMS,
        "POST",
        422,
        body=submission(external_id="other"),
        headers={"Idempotency-Key": "turn-1"},
    )
    auto = send(contract, ITEMS, "POST", 201, body=submission(signals={"confidence": 0.99}))
    assert auto["queue"] is None


def test_evaluate_matches_the_schema(contract):
    queued = send(contract, "/api/v1/evaluate/", "POST", 200, body=action_submission())
    assert queued["queue"] == "general"
    passed = send(contract, "/api/v1/evaluate/", "POST", 200, body=submission(signals={"confidence": 0.99}))
    assert passed["queue"] is None


@pytest.mark.parametrize("state", ["pending", "auto_approved", "pending_action", "cancelled"])
def test_item_detail_matches_the_schema(contract, state):
    item = send(contract, ITEM, "GET", 200, path_parameters={"id": contract.items[state]})
    assert item["id"] == contract.items[state]


def test_unknown_item_is_a_documented_404(contract):
    send(contract, ITEM, "GET", 404, path_parameters={"id": str(uuid.uuid4())})


def test_item_list_matches_the_schema(contract):
    page = send(contract, ITEMS, "GET", 200)
    assert {item["id"] for item in page["results"]} == set(contract.items.values())


@pytest.mark.parametrize(
    ("query", "expected_status"),
    [({"status": "nonsense"}, 400), ({"created_after": "yesterday"}, 400), ({"cursor": "not-a-cursor"}, 404)],
)
def test_invalid_list_queries_get_documented_errors(contract, query, expected_status):
    send(contract, ITEMS, "GET", expected_status, query=query)


def cursor_of(querystring: str) -> str:
    return base64.b64encode(querystring.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of("p=x"),
        cursor_of("r=1&p=not-a-date"),
        cursor_of("p=2024-06-01 12:00:00"),  # no time zone
        cursor_of("p=0001-01-01 00:00:00+01:00"),  # before the first representable instant
        cursor_of("o=99999999999999999999999&p=2024-06-01 12:00:00+00:00"),
        cursor_of("r=2&p=2024-06-01 12:00:00+00:00"),
        "%%%not-base64",
    ],
)
def test_a_malformed_cursor_is_a_documented_404(contract, cursor):
    send(contract, ITEMS, "GET", 404, query={"cursor": cursor})


@given(position=st.text(max_size=40), reverse=st.sampled_from(["0", "1", "x", ""]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_cursor_position_is_a_page_or_a_404(contract, position, reverse):
    cursor = cursor_of(urlencode({"p": position, "r": reverse}))
    case = schema[ITEMS]["GET"].Case(query={"cursor": cursor})
    response = case.call_and_validate(headers=contract.headers, checks=CHECKS)
    assert response.status_code in (200, 404)


def test_a_cursor_with_an_offset_postgresql_refuses_is_read_in_utc(contract):
    send(contract, ITEMS, "GET", 200, query={"cursor": cursor_of("p=2024-06-01 12:00:00-19:03")})


def test_a_real_cursor_still_pages(contract):
    first = send(contract, ITEMS, "GET", 200, query={"page_size": 2})
    cursor = parse_qs(urlparse(first["next"]).query)["cursor"][0]
    second = send(contract, ITEMS, "GET", 200, query={"page_size": 2, "cursor": cursor})
    assert {i["id"] for i in first["results"]}.isdisjoint({i["id"] for i in second["results"]})
    assert len(second["results"]) == 2


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+01:00",  # an hour before the first representable instant
        "9999-12-31T23:59:59-01:00",  # an hour after the last one
        "2024-06-01T12:00:00-19:03",  # a UTC offset Python accepts and PostgreSQL does not
    ],
)
@pytest.mark.parametrize("field", ["created_after", "created_before"])
def test_date_filters_at_the_edges_are_not_server_errors(contract, field, moment):
    case = schema[ITEMS]["GET"].Case(query={field: moment})
    case.call_and_validate(headers=contract.headers, checks=[not_a_server_error])


def test_cancel_answers_match_the_schema(contract):
    pending = contract.items["pending"]
    cancelled = send(contract, CANCEL, "POST", 200, path_parameters={"id": pending})
    assert cancelled["status"] == "cancelled"
    send(contract, CANCEL, "POST", 409, path_parameters={"id": pending})
    send(contract, CANCEL, "POST", 404, path_parameters={"id": str(uuid.uuid4())})


def test_incident_matches_the_schema(contract):
    body = {
        "item": contract.items["auto_approved"],
        "severity": "high",
        "description": "Leaked a phone number.",
    }
    incident = send(contract, "/api/v1/incidents/", "POST", 201, body=body)
    assert incident["item"] == contract.items["auto_approved"]
    send(contract, "/api/v1/incidents/", "POST", 404, body={**body, "item": str(uuid.uuid4())})
