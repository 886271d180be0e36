"""`Client`'s methods against a live server: results as dataclasses, errors typed
with the API's code, retries that never make a second item, 429 and Retry-After."""

from __future__ import annotations

import threading
import time

import hitl_client
import httpx
import pytest
from conftest import SerialTransport

from reviews.models import Incident, ReviewItem

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

OUTPUT = {"text": "We are open 9:00 to 17:00."}
REFUND = {"type": "payment.refund", "params": {"order": "1182", "amount": 420.0}}


class Recording(httpx.BaseTransport):
    """Forwards every request; keeps what was sent and answered, and when.

    `lose` names requests (method, path) whose answer is lost after the server
    handled it: the client sees a reset connection. `replace` answers such a
    request with another status after forwarding it.
    """

    def __init__(self, *, lose: int = 0, replace: int | None = None, times: int = 1):
        self.inner = SerialTransport()
        self.lose, self.replace, self.times = lose, replace, times
        self.sent: list[httpx.Request] = []
        self.answers: list[tuple[int, float, httpx.Headers]] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        with self.lock:
            self.sent.append(request)
            self.answers.append((response.status_code, time.monotonic(), response.headers))
            spoil = self.times > 0 and request.method == "POST" and (self.lose or self.replace)
            if spoil:
                self.times -= 1
        if spoil and self.lose:
            raise httpx.ReadError("Connection reset after the request was sent", request=request)
        if spoil and self.replace:
            return httpx.Response(self.replace, json={"detail": "Bad gateway.", "code": "bad_gateway"})
        return response


def test_submit_answers_a_submission_and_get_the_whole_item(hitl, refunds_reviewed):
    submission = hitl.submit(action=REFUND, input={"prompt": "Refund 1182"}, external_id="conv-1/turn-2")
    assert isinstance(submission, hitl_client.Submission)
    assert submission.status == "pending" and submission.queue == "general" and submission.is_open
    assert submission.due_at is not None and not submission.replayed
    assert submission.idempotency_key.startswith("hitl-client-")
    assert submission.review_url == f"{hitl.base_url}/admin/reviews/reviewitem/{submission.id}/review/"
    assert [rule.name for rule in submission.matched_rules] == ["Review refunds"]

    item = hitl.get(submission.id)
    assert isinstance(item, hitl_client.Item)
    assert item.kind == "action" and item.action == REFUND and item.final_action is None
    assert item.external_id == "conv-1/turn-2" and item.input == {"prompt": "Refund 1182"}
    assert item.review_url == submission.review_url and item.decisions == ()
    assert item.is_open and not item.is_final
    with pytest.raises(hitl_client.StillPending):
        item.raise_for_outcome()


def test_an_output_item_is_auto_approved_with_its_final_output(hitl):
    submission = hitl.submit(output=OUTPUT, signals={"confidence": 0.97})
    assert submission.status == "auto_approved" and submission.is_final
    item = hitl.wait(submission, timeout=5)
    assert item.final_output == OUTPUT and item.is_approved and item.raise_for_outcome() is item


def test_the_same_idempotency_key_answers_the_first_item(hitl):
    first = hitl.submit(output=OUTPUT, idempotency_key="conv-1-turn-1")
    again = hitl.submit(output=OUTPUT, idempotency_key="conv-1-turn-1")
    assert again.id == first.id and again.replayed and not first.replayed
    with pytest.raises(hitl_client.IdempotencyConflict) as conflict:
        hitl.submit(output={"text": "Something else."}, idempotency_key="conv-1-turn-1")
    assert conflict.value.status_code == 422 and conflict.value.code == "idempotency_key_reused"
    assert ReviewItem.objects.count() == 1


def test_a_reply_lost_after_the_request_was_sent_is_retried_without_a_second_item(make_client):
    transport = Recording(lose=1)
    client = make_client(transport=transport)
    submission = client.submit(output=OUTPUT)
    assert [r.url.path for r in transport.sent] == ["/api/v1/items/", "/api/v1/items/"]
    keys = {r.headers["Idempotency-Key"] for r in transport.sent}
    assert keys == {submission.idempotency_key}  # the retry reused the generated key
    assert [status for status, *_ in transport.answers] == [201, 200]
    assert submission.replayed
    assert list(ReviewItem.objects.values_list("pk", flat=True)) == [ReviewItem.objects.get().pk]
    assert str(ReviewItem.objects.get().pk) == submission.id


def test_a_5xx_after_the_item_was_made_is_retried_without_a_second_item(make_client):
    transport = Recording(replace=502)
    submission = make_client(transport=transport).submit(output=OUTPUT, idempotency_key="turn-9")
    assert len(transport.sent) == 2 and submission.replayed
    assert ReviewItem.objects.count() == 1


def test_network_errors_end_in_a_network_error_once_the_retries_are_spent(api_key):
    dead = hitl_client.Client(
        "http://127.0.0.1:9", api_key, retry=hitl_client.Retry(attempts=2, backoff=0.01)
    )
    with pytest.raises(hitl_client.NetworkError) as failed:
        dead.submit(output=OUTPUT)
    assert failed.value.code == "network_error" and isinstance(failed.value.__cause__, httpx.ConnectError)


def test_an_incident_is_not_sent_twice_after_a_lost_reply(make_client, hitl):
    item_id = hitl.submit(output=OUTPUT).id
    transport = Recording(lose=1)
    with pytest.raises(hitl_client.NetworkError):
        make_client(transport=transport).report_incident(item_id, "high", "Leaked a phone number.")
    assert len(transport.sent) == 1 and Incident.objects.count() == 1


def test_429_is_retried_after_retry_after(make_client, settings):
    settings.HITL_INTEGRATION_RATE = "2/second"
    transport = Recording()
    client = make_client(transport=transport)
    submissions = [client.submit(output=OUTPUT) for _ in range(3)]
    assert len({s.id for s in submissions}) == 3 and ReviewItem.objects.count() == 3
    statuses = [status for status, *_ in transport.answers]
    assert 429 in statuses and statuses[-1] == 201
    refused = statuses.index(429)
    _, refused_at, headers = transport.answers[refused]
    retry_after = float(headers["Retry-After"])
    assert retry_after >= 1
    _, retried_at, _ = transport.answers[refused + 1]
    assert retried_at - refused_at >= retry_after * 0.95  # it waited as asked, not less


def test_429_asking_for_longer_than_the_client_waits_raises_rate_limited(make_client, settings):
    settings.HITL_INTEGRATION_RATE = "1/minute"
    client = make_client(retry=hitl_client.Retry(max_wait=5))
    client.submit(output=OUTPUT)
    with pytest.raises(hitl_client.RateLimited) as limited:
        client.submit(output=OUTPUT)
    assert limited.value.status_code == 429 and limited.value.code == "throttled"
    assert limited.value.retry_after is not None and limited.value.retry_after > 5


def test_evaluate_dry_runs_the_gate_and_stores_nothing(hitl, refunds_reviewed, big_refunds_blocked):
    held = hitl.evaluate(action=REFUND)
    assert held.status == "pending" and held.queue == "general" and held.would_wait
    blocked = hitl.evaluate(action={"type": "payment.refund", "params": {"amount": 20_000}})
    assert blocked.status == "blocked" and not blocked.would_wait
    assert hitl.evaluate(output=OUTPUT).status == "auto_approved"
    assert not ReviewItem.objects.exists()


def test_cancel_withdraws_and_is_idempotent_but_not_after_a_decision(hitl, refunds_reviewed):
    item_id = hitl.submit(action=REFUND).id
    assert hitl.cancel(item_id).status == "cancelled"
    assert hitl.cancel(item_id).status == "cancelled"  # again: the same answer
    with pytest.raises(hitl_client.Cancelled):
        hitl.wait(item_id, timeout=5).raise_for_outcome()
    decided = hitl.submit(output=OUTPUT).id  # auto-approved
    with pytest.raises(hitl_client.Conflict) as conflict:
        hitl.cancel(decided)
    assert conflict.value.status_code == 409 and conflict.value.code == "already_decided"


def test_report_incident_answers_the_incident(hitl):
    item_id = hitl.submit(output=OUTPUT).id
    incident = hitl.report_incident(item_id, "high", "Leaked a phone number.")
    assert isinstance(incident, hitl_client.Incident)
    assert incident.item == item_id and incident.severity == "high" and incident.source
    assert Incident.objects.get().description == "Leaked a phone number."


def test_api_errors_are_typed_and_carry_the_code(hitl, make_client, server):
    with pytest.raises(hitl_client.NotFound) as missing:
        hitl.get("00000000-0000-0000-0000-000000000000")
    assert missing.value.code == "not_found" and missing.value.status_code == 404
    with pytest.raises(hitl_client.InvalidRequest) as invalid:
        hitl.submit(kind="output", output=None, action=REFUND)
    assert invalid.value.status_code == 400 and "output" in invalid.value.errors
    with pytest.raises(hitl_client.InvalidRequest) as bad_signal:
        hitl.submit(output=OUTPUT, signals={"confidence": "high"})
    assert bad_signal.value.errors == {"signals": {"confidence": ["A number from 0 to 1."]}}
    stranger = hitl_client.Client(server.url, "hitl_000000000000.nope", transport=SerialTransport())
    with pytest.raises(hitl_client.AuthenticationFailed) as refused:
        stranger.get("00000000-0000-0000-0000-000000000000")
    assert refused.value.status_code == 401 and refused.value.code in {
        "authentication_failed",
        "not_authenticated",
    }
    with pytest.raises(ValueError):
        hitl.get("../queues")  # ids are UUIDs, never a path


def test_defaults_come_from_the_environment(monkeypatch, server, api_key):
    monkeypatch.setenv("HITL_URL", f"{server.url}/api/v1/")
    monkeypatch.setenv("HITL_API_KEY", api_key)
    with hitl_client.Client(transport=SerialTransport()) as client:
        assert client.base_url == server.url
        assert client.submit(output=OUTPUT).status == "auto_approved"
    monkeypatch.delenv("HITL_API_KEY")
    with pytest.raises(ValueError, match="HITL_API_KEY"):
        hitl_client.Client()


def test_wait_returns_the_item_once_a_reviewer_decided(hitl, refunds_reviewed, desk):
    item_id = hitl.submit(action=REFUND).id
    decision = desk.meanwhile("approve", "Fine.")
    item = hitl.wait(item_id, timeout=15)
    decision.result()
    assert item.status == "approved" and item.final_action == REFUND
    assert [(d.action, d.reviewer) for d in item.decisions] == [("approve", "reviewer")]
    assert item.decided_at is not None
