"""`AsyncClient` and its gate on the core paths, against the live server (each test
runs its own event loop; the reviewer decides from another thread meanwhile)."""

from __future__ import annotations

import asyncio

import hitl_client
import httpx
import pytest
from conftest import AsyncSerialTransport

from reviews.models import ReviewItem

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

OUTPUT = {"text": "We are open 9:00 to 17:00."}


def run(coroutine):
    return asyncio.run(coroutine)


def gated_refund(client: hitl_client.AsyncClient, ledger: list, **options):
    @client.gate("payment.refund", **options)
    async def refund(order: str, amount: float, currency: str = "EUR") -> str:
        await asyncio.sleep(0)
        ledger.append((order, amount, currency, hitl_client.current_approval()))
        return f"refunded {amount} {currency} on {order}"

    return refund


def test_an_auto_approved_async_call_runs_at_once(make_async_client):
    ledger: list = []

    async def main():
        async with make_async_client() as client:
            return await gated_refund(client, ledger)("1182", 42.0)

    result = run(main())
    assert result.value == "refunded 42.0 EUR on 1182" and result.auto_approved
    assert [entry[:3] for entry in ledger] == [("1182", 42.0, "EUR")]
    assert ReviewItem.objects.get().status == "auto_approved"


def test_an_async_call_waits_for_approval(make_async_client, refunds_reviewed, desk):
    ledger: list = []

    async def main():
        async with make_async_client() as client:
            return await gated_refund(client, ledger)("1182", 420.0)

    decision = desk.meanwhile("approve", "Fine.")
    result = run(main())
    decision.result()
    assert result.item.status == "approved" and not result.edited
    assert [entry[:3] for entry in ledger] == [("1182", 420.0, "EUR")]


def test_an_edited_async_call_runs_with_the_edit(make_async_client, refunds_reviewed, desk, codes):
    ledger: list = []

    async def main():
        async with make_async_client() as client:
            return await gated_refund(client, ledger)("1182", 420.0)

    decision = desk.meanwhile(
        "edit",
        "Only 300 was charged.",
        reason_codes=["wrong_amount"],
        edit=lambda action: {**action, "params": {**action["params"], "amount": 300.0}},
    )
    result = run(main())
    decision.result()
    assert result.edited and result.params["amount"] == 300.0 and result.original_params["amount"] == 420.0
    [(order, amount, currency, approval)] = ledger
    assert amount == 300.0 and approval is not None and approval.edited


def test_a_rejected_async_call_raises_rejected(make_async_client, refunds_reviewed, desk, codes):
    ledger: list = []

    async def main():
        async with make_async_client() as client:
            await gated_refund(client, ledger)("1182", 420.0)

    decision = desk.meanwhile("reject", "Never paid.", reason_codes=["policy_violation"])
    with pytest.raises(hitl_client.Rejected) as rejected:
        run(main())
    decision.result()
    assert rejected.value.justification == "Never paid." and rejected.value.reason_codes == (
        "policy_violation",
    )
    assert ledger == []


def test_a_blocked_async_call_raises_blocked(make_async_client, big_refunds_blocked):
    ledger: list = []

    async def main():
        async with make_async_client() as client:
            await gated_refund(client, ledger)("1182", 25_000.0)

    with pytest.raises(hitl_client.Blocked):
        run(main())
    assert ledger == []


def test_an_async_deferred_call_resumes_after_the_decision(make_async_client, refunds_reviewed, desk):
    ledger: list = []

    async def defer():
        async with make_async_client() as client:
            return await gated_refund(client, ledger, mode="defer")("1182", 420.0)

    pending = run(defer())
    assert isinstance(pending, hitl_client.AsyncPending) and pending.review_url
    desk.decide(desk.next_item()["id"], "approve", "Fine.")

    async def resume():
        async with make_async_client() as client:  # another process, after a restart
            return await gated_refund(client, ledger, mode="defer").resume(pending.item_id)

    assert run(resume()).value == "refunded 420.0 EUR on 1182"


def test_async_wait_times_out_and_cancel_withdraws(make_async_client, refunds_reviewed):
    async def main():
        async with make_async_client() as client:
            submission = await client.submit(action={"type": "payment.refund", "params": {"amount": 1}})
            with pytest.raises(hitl_client.TimedOut):
                await client.wait(submission.id, timeout=0.2)
            assert (await client.cancel(submission.id)).status == "cancelled"
            item = await client.wait(submission.id, timeout=5)
            with pytest.raises(hitl_client.Cancelled):
                item.raise_for_outcome()
            assert (await client.evaluate(output=OUTPUT)).status == "auto_approved"
            return await client.report_incident(submission.id, "low", "Test.")

    assert run(main()).severity == "low"


class Recording(httpx.AsyncBaseTransport):
    """Forwards every request and keeps what was sent and answered; with
    `lose_first`, the first answer is lost after the server handled the request."""

    def __init__(self, *, lose_first: bool = False):
        self.inner = AsyncSerialTransport()
        self.lose_first = lose_first
        self.sent: list[httpx.Request] = []
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.sent.append(request)
        self.statuses.append(response.status_code)
        if self.lose_first and len(self.sent) == 1:
            raise httpx.ReadError("Connection reset after the request was sent", request=request)
        return response


def test_an_async_retry_after_a_lost_reply_makes_no_second_item(make_async_client):
    transport = Recording(lose_first=True)

    async def main():
        async with make_async_client(transport=transport) as client:
            return await client.submit(output=OUTPUT)

    submission = run(main())
    assert len(transport.sent) == 2 and submission.replayed
    assert {r.headers["Idempotency-Key"] for r in transport.sent} == {submission.idempotency_key}
    assert ReviewItem.objects.count() == 1


def test_async_429_is_retried_after_retry_after(make_async_client, settings):
    settings.HITL_INTEGRATION_RATE = "2/second"
    transport = Recording()

    async def main():
        async with make_async_client(transport=transport) as client:
            return [await client.submit(output=OUTPUT) for _ in range(3)]

    assert len({s.id for s in run(main())}) == 3
    assert 429 in transport.statuses and transport.statuses[-1] == 201
    assert ReviewItem.objects.count() == 3
