"""`@client.gate`: a tool call becomes an action item and runs only as approved,
against a live server, with a reviewer deciding through the API."""

from __future__ import annotations

from datetime import timedelta

import hitl_client
import pytest
from django.utils import timezone

from reviews.models import ReviewItem
from reviews.services.deadlines import apply_sla_timeouts

# A live server: committed data, flushed after each test (the roles restored).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


class Ledger:
    """A stand-in payment provider: what the tool was run with."""

    def __init__(self):
        self.refunds: list[tuple[str, float, str]] = []
        self.approvals: list[hitl_client.Approval | None] = []


@pytest.fixture
def ledger():
    return Ledger()


@pytest.fixture
def refund(hitl, ledger):
    @hitl.gate("payment.refund", signals=lambda params: {"category": "finance"}, metadata={"user_id": "u-77"})
    def refund(order: str, amount: float, currency: str = "EUR") -> str:
        ledger.refunds.append((order, amount, currency))
        ledger.approvals.append(hitl_client.current_approval())
        return f"refunded {amount} {currency} on {order}"

    return refund


def test_an_auto_approved_call_runs_at_once(refund, ledger):
    result = refund("1182", 42.0)
    assert result.value == "refunded 42.0 EUR on 1182"
    assert result.auto_approved and not result.edited
    assert ledger.refunds == [("1182", 42.0, "EUR")]
    item = ReviewItem.objects.get()
    assert item.kind == "action" and item.status == "auto_approved"
    assert item.action == {
        "type": "payment.refund",
        "params": {"order": "1182", "amount": 42.0, "currency": "EUR"},
    }
    assert item.signals == {"category": "finance"} and item.metadata == {"user_id": "u-77"}
    assert result.item.id == str(item.pk)
    assert result.review_url == f"{refund.client.base_url}/admin/reviews/reviewitem/{item.pk}/review/"


def test_a_held_call_waits_for_the_reviewer_and_runs_once_approved(refund, ledger, refunds_reviewed, desk):
    decision = desk.meanwhile("approve", "Order checked, amount right.")
    result = refund("1182", 420.0)
    decision.result()
    assert ledger.refunds == [("1182", 420.0, "EUR")]
    assert result.value == "refunded 420.0 EUR on 1182"
    assert not result.edited and not result.auto_approved
    assert result.item.status == "approved" and result.item.queue == "general"
    assert result.item.reviewer == "reviewer"
    assert result.item.justification == "Order checked, amount right."


def test_an_edited_call_runs_with_the_reviewers_parameters_and_knows_it(
    refund, ledger, refunds_reviewed, desk, codes
):
    def lower_amount(action):
        return {**action, "params": {**action["params"], "amount": 300.0}}

    decision = desk.meanwhile(
        "edit", "Only 300 was charged.", reason_codes=["wrong_amount"], edit=lower_amount
    )
    result = refund("1182", 420.0)
    decision.result()
    assert ledger.refunds == [("1182", 300.0, "EUR")]
    assert result.edited and result.params == {"order": "1182", "amount": 300.0, "currency": "EUR"}
    assert result.original_params["amount"] == 420.0
    assert result.item.status == "edited"
    [approval] = ledger.approvals  # the tool itself sees it, while it runs
    assert approval is not None and approval.edited and approval.params["amount"] == 300.0


def test_a_rejected_call_raises_with_the_justification_and_codes(
    refund, ledger, refunds_reviewed, desk, codes
):
    decision = desk.meanwhile(
        "reject", "The order was never paid.", reason_codes=["wrong_amount", "policy_violation"]
    )
    with pytest.raises(hitl_client.Rejected) as rejected:
        refund("1182", 420.0)
    decision.result()
    assert ledger.refunds == []
    error = rejected.value
    assert error.justification == "The order was never paid."
    assert error.reason_codes == ("wrong_amount", "policy_violation")
    assert error.reviewer == "reviewer" and error.code == "rejected"
    assert error.item.status == "rejected" and error.review_url.endswith(f"/{error.item_id}/review/")
    assert isinstance(error, hitl_client.NotApproved) and isinstance(error, hitl_client.ApiError)


def test_a_blocked_call_raises_blocked_and_never_runs(refund, ledger, big_refunds_blocked):
    with pytest.raises(hitl_client.Blocked) as blocked:
        refund("1182", 25_000.0)
    assert ledger.refunds == []
    assert blocked.value.code == "blocked"
    assert [rule.name for rule in blocked.value.matched_rules] == ["No refunds over 10000"]


def test_a_call_nobody_decides_in_time_expires(refund, ledger, refunds_reviewed, hitl, quiet_server):
    deferred = hitl.gate("payment.refund", mode="defer")(refund.__wrapped__)
    pending = deferred("1182", 420.0)
    assert isinstance(pending, hitl_client.Pending) and pending.status == "pending"
    with quiet_server():
        assert apply_sla_timeouts(now=timezone.now() + timedelta(days=1)) == 1  # the SLA sweep
    with pytest.raises(hitl_client.Expired) as expired:
        pending.result(timeout=10)
    assert expired.value.item.status == "expired" and ledger.refunds == []


def test_waiting_longer_than_the_timeout_raises_timed_out(hitl, ledger, refunds_reviewed):
    @hitl.gate("payment.refund", timeout=0.2)
    def refund(order: str, amount: float) -> None:
        ledger.refunds.append((order, amount, "EUR"))

    with pytest.raises(hitl_client.TimedOut) as timed_out:
        refund("1182", 420.0)
    assert timed_out.value.item.status == "pending" and ledger.refunds == []
    assert timed_out.value.code == "timed_out"


def test_a_cancelled_call_raises_cancelled(hitl, refund, ledger, refunds_reviewed):
    deferred = hitl.gate("payment.refund", mode="defer")(refund.__wrapped__)
    pending = deferred("1182", 420.0)
    assert hitl.cancel(pending.item_id).status == "cancelled"
    with pytest.raises(hitl_client.Cancelled):
        pending.result(timeout=10)
    assert ledger.refunds == []


def test_deferred_calls_return_a_handle_and_resume_with_the_final_item(hitl, ledger, refunds_reviewed, desk):
    @hitl.gate("payment.refund", mode="defer")
    def refund(order: str, amount: float) -> float:
        ledger.refunds.append((order, amount, "EUR"))
        return amount

    pending = refund("1182", 420.0)
    assert isinstance(pending, hitl_client.Pending)
    assert pending.review_url.endswith(f"/admin/reviews/reviewitem/{pending.item_id}/review/")
    with pytest.raises(hitl_client.StillPending):
        pending.resume()
    assert ledger.refunds == []

    desk.decide(desk.next_item()["id"], "approve", "Fine.")
    result = pending.resume()  # fetches the decided item once
    assert result.value == 420.0 and ledger.refunds == [("1182", 420.0, "EUR")]

    # After a restart the handle is gone; the item id is enough.
    assert refund.resume(pending.item_id).value == 420.0


def test_a_rerun_of_the_same_step_creates_no_second_item(hitl, ledger):
    @hitl.gate("payment.refund", run_id=lambda: "thread-7", call_id=lambda params: f"call-{params['order']}")
    def refund(order: str, amount: float) -> str:
        return order

    first = refund("1182", 42.0)
    again = refund("1182", 42.0)  # the framework re-ran the step
    assert first.item.id == again.item.id
    assert ReviewItem.objects.count() == 1
    assert ReviewItem.objects.get().external_id == "thread-7/call-1182"
    refund.using(run_id="thread-8")("1182", 42.0)  # another run: another item
    assert ReviewItem.objects.count() == 2


def test_a_held_call_is_announced_with_its_review_url(hitl, refunds_reviewed, desk):
    announced: list[hitl_client.Pending] = []

    @hitl.gate("payment.refund", on_pending=announced.append)
    def refund(order: str, amount: float) -> str:
        return order

    decision = desk.meanwhile("approve", "Fine.")
    refund("1182", 420.0)
    decision.result()
    [pending] = announced
    assert pending.review_url.startswith(hitl.base_url) and pending.status == "pending"


def test_excluded_parameters_reach_the_function_but_not_the_reviewer(hitl):
    connection = object()

    @hitl.gate("payment.refund", exclude=["db"])
    def refund(db, order: str, amount: float) -> bool:
        return db is connection

    assert refund(connection, "1182", 42.0).value is True
    assert ReviewItem.objects.get().action["params"] == {"order": "1182", "amount": 42.0}


def test_methods_can_be_gated(hitl):
    class Agent:
        def __init__(self):
            self.done = []

        @hitl.gate("payment.refund")
        def refund(self, order: str, amount: float) -> int:
            self.done.append(order)
            return len(self.done)

    agent = Agent()
    assert agent.refund("1182", 42.0).value == 1 and agent.done == ["1182"]
    assert ReviewItem.objects.get().action["params"] == {"order": "1182", "amount": 42.0}
