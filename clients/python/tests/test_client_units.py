"""The client's own logic without a server: how calls become parameters and back,
when requests are retried, how answers become errors. (httpx's MockTransport
stands in for the API where an answer is needed.)"""

from __future__ import annotations

import email.utils
import json
import time
import uuid

import hitl_client
import httpx
import pytest
from hitl_client import _core
from hitl_client.gate import gate_key

ITEM_ID = "5f0c2a8e-3b1d-4c3e-9a55-0e6f1d2b7c41"


def item(status: str = "approved", action=None, final_action=None, **fields) -> hitl_client.Item:
    action = action or {"type": "payment.refund", "params": {}}
    return hitl_client.Item.from_api(
        {
            "id": ITEM_ID,
            "status": status,
            "kind": "action",
            "action": action,
            "final_action": final_action,
            **fields,
        }
    )


class FakeApi:
    """Answers a submission as auto-approved and the item with the action submitted."""

    def __init__(self):
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST":
            self.action = json.loads(request.content)["action"]
            return httpx.Response(201, json={"id": ITEM_ID, "status": "auto_approved", "review_url": "/r/"})
        return httpx.Response(
            200,
            json={"id": ITEM_ID, "status": "auto_approved", "kind": "action", "action": self.action,
                  "final_action": self.action},
        )  # fmt: skip

    @property
    def submitted(self) -> dict:
        return json.loads(self.requests[0].content)


@pytest.fixture
def api():
    return FakeApi()


@pytest.fixture
def client(api):
    return hitl_client.Client("http://hitl.test", "hitl_key", transport=httpx.MockTransport(api))


# --- calls and parameters ---------------------------------------------------------------------------


def test_positional_only_var_positional_and_var_keyword_parameters_round_trip(client, api):
    @client.gate("tool.odd")
    def odd(a, /, b, *rest, c=3, **extra):
        return (a, b, rest, c, extra)

    result = odd(1, 2, 9, 8, c=4, flag=True)
    assert api.submitted["action"]["params"] == {"a": 1, "b": 2, "rest": [9, 8], "c": 4, "flag": True}
    assert result.value == (1, 2, (9, 8), 4, {"flag": True})


def test_defaults_are_sent_so_the_reviewer_sees_the_whole_call(client, api):
    @client.gate("payment.refund")
    def refund(order: str, currency: str = "EUR"):
        return currency

    refund("1182")
    assert api.submitted == {
        "kind": "action",
        "action": {"type": "payment.refund", "params": {"order": "1182", "currency": "EUR"}},
    }
    assert api.requests[0].headers["Idempotency-Key"].startswith("hitl-client-")


def test_arguments_that_are_not_json_are_refused_before_anything_is_sent(client, api):
    @client.gate("payment.refund")
    def refund(order: object):
        return order

    with pytest.raises(TypeError, match="exclude"):
        refund(object())
    assert api.requests == []


def test_options_may_be_values_or_callables_of_the_params(client, api):
    @client.gate(
        type="payment.refund",
        signals=lambda params: {"confidence": 0.5 if params["amount"] > 100 else 0.9},
        context=lambda: {"reasoning": "asked by the user"},
        input={"prompt": "Refund it"},
        output=lambda params: {"text": f"I will refund {params['amount']}."},
    )
    def refund(amount: float):
        return amount

    refund(420.0)
    body = api.submitted
    assert body["signals"] == {"confidence": 0.5} and body["context"] == {"reasoning": "asked by the user"}
    assert body["input"] == {"prompt": "Refund it"} and body["output"] == {"text": "I will refund 420.0."}


def test_run_and_call_ids_make_a_stable_key(client, api):
    @client.gate("payment.refund", run_id="run-1", call_id="call-1")
    def refund(amount: float):
        return amount

    refund(1.0)
    refund.using(call_id="call-2")(1.0)
    keys = [r.headers["Idempotency-Key"] for r in api.requests if r.method == "POST"]
    assert keys == [
        gate_key("payment.refund", "run-1", "call-1"),
        gate_key("payment.refund", "run-1", "call-2"),
    ]
    assert gate_key("payment.refund", "run-1", "call-1") != gate_key("payment.other", "run-1", "call-1")
    assert all(len(key) <= 255 and key.isprintable() for key in keys)


def test_the_gate_needs_one_action_type_and_a_known_mode(client):
    with pytest.raises(TypeError):
        client.gate()
    with pytest.raises(TypeError):
        client.gate("a.b", type="c.d")
    with pytest.raises(ValueError):
        client.gate("a.b", mode="later")
    with pytest.raises(TypeError, match="exclude"):
        client.gate("a.b", exclude=["nope"])(lambda amount: amount)

    async def tool(amount: float):
        return amount

    with pytest.raises(TypeError, match="AsyncClient"):
        client.gate("a.b")(tool)


def refund_tool(client):
    @client.gate("payment.refund")
    def refund(order: str, amount: float):
        return (order, amount)

    return refund


def test_an_edit_the_function_cannot_take_runs_nothing(client):
    refund = refund_tool(client)
    original = {"type": "payment.refund", "params": {"order": "1", "amount": 2.0}}
    unknown = {"type": "payment.refund", "params": {"order": "1", "amount": 2.0, "note": "x"}}
    with pytest.raises(hitl_client.InvalidEdit, match="note"):
        refund.resume(item("edited", original, unknown))
    missing = {"type": "payment.refund", "params": {"order": "1"}}
    with pytest.raises(hitl_client.InvalidEdit, match="amount"):
        refund.resume(item("edited", original, missing))
    other_type = {"type": "payment.payout", "params": {"order": "1", "amount": 2.0}}
    with pytest.raises(hitl_client.InvalidEdit, match="payout"):
        refund.resume(item("edited", original, other_type))
    with pytest.raises(hitl_client.InvalidEdit):
        refund.resume(
            item("approved", {"type": "email.send", "params": {}}, {"type": "email.send", "params": {}})
        )


def test_resume_raises_the_outcome_of_an_item_that_was_not_approved(client):
    refund = refund_tool(client)
    decisions = [
        {
            "action": "reject",
            "reviewer": "ana",
            "justification": "No.",
            "reason_codes": ["x"],
            "created_at": None,
        }
    ]
    with pytest.raises(hitl_client.Rejected) as rejected:
        refund.resume(item("rejected", decisions=decisions))
    assert (rejected.value.reviewer, rejected.value.justification, rejected.value.reason_codes) == (
        "ana",
        "No.",
        ("x",),
    )
    for status, error in [("expired", hitl_client.Expired), ("cancelled", hitl_client.Cancelled),
                          ("blocked", hitl_client.Blocked), ("pending", hitl_client.StillPending),
                          ("in_review", hitl_client.StillPending)]:  # fmt: skip
        with pytest.raises(error):
            refund.resume(item(status))


def test_items_ignore_keys_they_do_not_know():
    parsed = hitl_client.Item.from_api({"id": ITEM_ID, "status": "pending", "kind": "output", "new_field": 1})
    assert parsed.raw["new_field"] == 1 and parsed.decision is None and parsed.reason_codes == ()
    assert repr(parsed) == f"Item(id='{ITEM_ID}', status='pending', kind='output', queue=None)"


def test_item_ids_must_be_uuids():
    assert _core.item_id_of(uuid.UUID(ITEM_ID)) == ITEM_ID
    assert _core.item_id_of(item()) == ITEM_ID
    for bad in ("", "1/../../queues", "x", 12):
        with pytest.raises(ValueError):
            _core.item_id_of(bad)


# --- retries and errors -----------------------------------------------------------------------------


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_retry_after_in_seconds(value, seconds):
    assert _core.parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date():
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _core.parse_retry_after(later) <= 30


def test_what_is_retried():
    retry = _core.Retry(attempts=3, max_wait=10)
    submit = _core.Call("POST", "/api/v1/items/")
    incident = _core.Call("POST", "/api/v1/incidents/", replayable=False)
    lost = httpx.ReadError("reset")
    refused = httpx.ConnectError("refused")
    assert retry.after_error(submit, lost, 1) is not None
    assert retry.after_error(incident, lost, 1) is None  # it may have been recorded
    assert retry.after_error(incident, refused, 1) is not None  # it never left
    assert retry.after_error(submit, lost, 3) is None  # attempts spent
    assert retry.after_response(submit, response(503), 1) is not None
    assert retry.after_response(incident, response(503), 1) is None
    assert retry.after_response(incident, response(429, **{"Retry-After": "2"}), 1) == 2.0
    assert (
        retry.after_response(submit, response(429, **{"Retry-After": "60"}), 1) is None
    )  # longer than max_wait
    assert retry.after_response(submit, response(400), 1) is None


def test_delays_grow_with_jitter_and_stay_bounded():
    retry = _core.Retry(backoff=1, max_backoff=4)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (9, 4)]:
        delay = retry.delay(attempt)
        assert ceiling / 2 <= delay <= ceiling
    backoff = _core.Backoff(1, 8)
    delays = [backoff.next() for _ in range(6)]
    assert all(0.5 <= d <= 8 for d in delays) and delays[-1] >= 4


ERRORS = [
    (400, {"kind": ["This field is required."]}, hitl_client.InvalidRequest, "invalid"),
    (
        401,
        {"detail": "No key.", "code": "not_authenticated"},
        hitl_client.AuthenticationFailed,
        "not_authenticated",
    ),
    (403, {"detail": "No.", "code": "permission_denied"}, hitl_client.PermissionDenied, "permission_denied"),
    (404, {"detail": "Not found.", "code": "not_found"}, hitl_client.NotFound, "not_found"),
    (409, {"detail": "Decided.", "code": "already_decided"}, hitl_client.Conflict, "already_decided"),
    (413, {"detail": "Too big.", "code": "too_large"}, hitl_client.InvalidRequest, "too_large"),
    (
        422,
        {"detail": "Reused.", "code": "idempotency_key_reused"},
        hitl_client.IdempotencyConflict,
        "idempotency_key_reused",
    ),
    (429, {"detail": "Slow down.", "code": "throttled"}, hitl_client.RateLimited, "throttled"),
    (502, "<html>Bad gateway</html>", hitl_client.ServerError, "server_error"),
]


@pytest.mark.parametrize(("status", "body", "error", "code"), ERRORS)
def test_answers_become_typed_errors(status, body, error, code):
    content = body if isinstance(body, str) else json.dumps(body)
    exc = _core.error_for(httpx.Response(status, content=content, headers={"Retry-After": "7"}))
    assert type(exc) is error and exc.code == code and exc.status_code == status
    if status == 400:
        assert exc.errors == body and "kind" in exc.detail
    if status == 429:
        assert exc.retry_after == 7.0


def test_every_error_is_a_hitl_error():
    for name in hitl_client.__all__:
        value = getattr(hitl_client, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, hitl_client.HitlError), name
