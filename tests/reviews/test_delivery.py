"""Outbox and delivery, one attempt at a time, against a real HTTP receiver."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import services
from reviews.delivery import executors, outbox
from reviews.delivery import worker as delivery
from reviews.models import DeliveryAttempt, ExecutionStatus, ItemStatus, OutboxMessage, ReviewItem
from reviews.webhooks.signing import InvalidSignature, verify
from tests.factories import GateRuleFactory, ReasonCodeFactory, action_submission, submission


@pytest.fixture
def wired(integration, receiver):
    integration.callback_url = f"{receiver.url}/callback"
    integration.action_url = f"{receiver.url}/actions"
    integration.save()
    return integration


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(name="Review everything", queue=queue)


@pytest.fixture
def codes(db):
    return ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"])


def submit_action(integration, **overrides):
    return services.submit_item(integration=integration, payload=action_submission(**overrides)).item


def message(item, kind) -> OutboxMessage:
    return OutboxMessage.objects.get(item=item, kind=kind)


def approve(item, user):
    return services.decide(item=item, user=user, action="approve", justification="Checked.")


def make_due(msg: OutboxMessage) -> None:
    OutboxMessage.objects.filter(pk=msg.pk).update(next_attempt_at=timezone.now())


# --- What the outbox holds ---------------------------------------------------------------


def test_approving_an_action_writes_an_execution_and_a_callback(wired, review_all, reviewer):
    item = submit_action(wired)
    assert not OutboxMessage.objects.exists()
    approve(item, reviewer)
    kinds = set(OutboxMessage.objects.filter(item=item).values_list("kind", flat=True))
    assert kinds == {"execute", "callback"}


@pytest.mark.parametrize("outcome", ["block", "auto_approve"])
def test_gate_decisions_at_submission_are_reported_too(wired, outcome):
    GateRuleFactory(name="Gate", outcome=outcome, queue=None)
    item = services.submit_item(integration=wired, payload=submission()).item
    assert message(item, "callback").payload["data"]["status"] == item.status


def test_auto_approved_action_is_executed(wired):
    item = submit_action(wired)
    assert item.status == ItemStatus.AUTO_APPROVED
    assert message(item, "execute").payload["data"] == {"item": str(item.pk), "action": item.action}


def test_first_of_two_approvals_has_no_consequence(wired, review_all, queue, reviewer):
    queue.required_approvals = 2
    queue.save()
    item = submit_action(wired)
    approve(item, reviewer)
    assert not OutboxMessage.objects.exists()


def test_rejected_blocked_cancelled_and_expired_items_never_execute(wired, review_all, reviewer, codes):
    rejected = submit_action(wired)
    services.decide(
        item=rejected, user=reviewer, action="reject", justification="No.", reason_codes=["factual_error"]
    )
    cancelled = submit_action(wired)
    services.cancel(item=cancelled, integration=wired)
    expired = submit_action(wired)
    services.apply_timeout(item=expired, now=expired.due_at + timedelta(seconds=1))
    for item in (rejected, cancelled, expired):
        assert not OutboxMessage.objects.filter(item=item, kind="execute").exists()
        assert message(item, "callback").payload["data"]["final_action"] is None


def test_spot_checks_never_execute(wired, queue, reviewer):
    GateRuleFactory(name="Sample", outcome="spot_check", queue=queue)
    original = submit_action(wired)
    copy = original.spot_checks.get()
    approve(copy, reviewer)
    assert not OutboxMessage.objects.filter(item=copy).exists()


def test_nothing_is_dispatched_before_commit(wired, review_all, reviewer, django_capture_on_commit_callbacks):
    item = submit_action(wired)
    with django_capture_on_commit_callbacks() as callbacks:
        approve(item, reviewer)
    assert len(callbacks) == 1  # the dispatch waits for the commit


# --- Delivering ---------------------------------------------------------------------------------


def test_an_approved_action_is_sent_signed_with_its_idempotency_key(wired, review_all, reviewer, receiver):
    item = submit_action(wired)
    approve(item, reviewer)
    msg = message(item, "execute")
    assert delivery.deliver(msg.pk) == "delivered"

    [request] = receiver.requests
    assert request.path == "/actions"
    assert request.headers["Idempotency-Key"] == str(item.pk)
    assert request.headers["webhook-id"] == msg.msg_id
    verify(secret=wired.webhook_secret, headers=request.headers, body=request.body)
    assert request.json["type"] == "action.execute"
    assert request.json["data"] == {"item": str(item.pk), "action": item.action}

    item.refresh_from_db()
    assert item.execution_status == ExecutionStatus.SUCCEEDED
    assert item.executed_action == item.action and item.executed_at
    attempt = DeliveryAttempt.objects.get(message=msg)
    assert attempt.status_code == 200 and attempt.duration_ms is not None


def test_an_edited_action_sends_the_edit_and_keeps_the_proposal(wired, review_all, reviewer, receiver, codes):
    item = submit_action(wired)
    edited = {"type": "payment.refund", "params": {"order": "1182", "amount": 42.0, "currency": "EUR"}}
    services.decide(
        item=item,
        user=reviewer,
        action="edit",
        justification="Partial refund.",
        reason_codes=["factual_error"],
        edited_action=edited,
    )
    delivery.deliver(message(item, "execute").pk)
    item.refresh_from_db()
    assert receiver.requests[0].json["data"]["action"] == edited
    assert item.executed_action == edited == item.final_action
    assert item.action["params"]["amount"] == 420.0


def test_a_rejection_notifies_the_callback_with_the_justification(
    wired, review_all, reviewer, receiver, codes
):
    item = services.submit_item(integration=wired, payload=submission()).item
    services.decide(
        item=item,
        user=reviewer,
        action="reject",
        justification="Quotes the wrong hours.",
        reason_codes=["factual_error"],
    )
    delivery.deliver(message(item, "callback").pk)
    [request] = receiver.requests
    verify(secret=wired.webhook_secret, headers=request.headers, body=request.body)
    body = request.json
    assert body["type"] == "item.decided"
    assert body["data"]["status"] == "rejected"
    assert body["data"]["decisions"][0]["justification"] == "Quotes the wrong hours."
    assert body["data"]["decisions"][0]["reason_codes"] == ["factual_error"]


def test_a_tampered_callback_fails_verification(wired, review_all, reviewer, receiver):
    item = services.submit_item(integration=wired, payload=submission()).item
    approve(item, reviewer)
    delivery.deliver(message(item, "callback").pk)
    request = receiver.requests[0]
    with pytest.raises(InvalidSignature):
        verify(secret=wired.webhook_secret, headers=request.headers, body=request.body + b" ")


def test_both_secrets_sign_during_a_rotation(wired, review_all, reviewer, receiver):
    old = wired.webhook_secret
    wired.previous_webhook_secret = old
    wired.webhook_secret = "whsec_" + "QUJD" * 8
    wired.save()
    item = services.submit_item(integration=wired, payload=submission()).item
    approve(item, reviewer)
    delivery.deliver(message(item, "callback").pk)
    request = receiver.requests[0]
    assert len(request.headers["webhook-signature"].split()) == 2
    verify(secret=old, headers=request.headers, body=request.body)
    verify(secret=wired.webhook_secret, headers=request.headers, body=request.body)


def test_failures_are_retried_with_backoff_and_the_same_webhook_id(
    wired, review_all, reviewer, receiver, settings
):
    settings.HITL_DELIVERY_BACKOFF_SECONDS = 60
    receiver.fail_first = 2
    item = services.submit_item(integration=wired, payload=submission()).item
    approve(item, reviewer)
    msg = message(item, "callback")

    assert delivery.deliver(msg.pk) == "retrying"
    msg.refresh_from_db()
    assert timedelta(seconds=29) < msg.next_attempt_at - timezone.now() <= timedelta(seconds=60)
    assert delivery.deliver(msg.pk) == "not due"
    make_due(msg)
    assert delivery.deliver(msg.pk) == "retrying"
    msg.refresh_from_db()
    assert msg.next_attempt_at - timezone.now() > timedelta(seconds=59)  # doubled
    make_due(msg)
    assert delivery.deliver(msg.pk) == "delivered"

    assert [r.headers["webhook-id"] for r in receiver.requests] == [msg.msg_id] * 3
    attempts = list(msg.delivery_attempts.values_list("number", "status_code"))
    assert attempts == [(1, 500), (2, 500), (3, 200)]
    assert delivery.deliver(msg.pk) == "not due"
    assert len(receiver.requests) == 3


def test_after_the_last_attempt_execution_fails_and_can_be_retried(
    wired, review_all, reviewer, receiver, settings
):
    settings.HITL_DELIVERY_MAX_ATTEMPTS = 2
    receiver.fail_first = 2
    item = submit_action(wired)
    approve(item, reviewer)
    msg = message(item, "execute")
    delivery.deliver(msg.pk)
    make_due(msg)
    assert delivery.deliver(msg.pk) == "failed"
    item.refresh_from_db()
    assert item.execution_status == ExecutionStatus.FAILED and item.executed_action is None

    delivery.retry(message=msg)
    item.refresh_from_db()
    assert item.execution_status == ExecutionStatus.PENDING
    assert delivery.deliver(msg.pk) == "delivered"
    item.refresh_from_db()
    assert item.execution_status == ExecutionStatus.SUCCEEDED
    assert list(msg.delivery_attempts.values_list("number", flat=True)) == [1, 2, 3]


def test_a_missing_action_url_is_a_failed_attempt(integration, review_all, reviewer):
    item = submit_action(integration)
    approve(item, reviewer)
    assert delivery.deliver(message(item, "execute").pk) == "retrying"
    assert "no action_url" in DeliveryAttempt.objects.get().error


def test_delivery_rechecks_the_url_against_ssrf(wired, review_all, reviewer, receiver, settings):
    item = services.submit_item(integration=wired, payload=submission()).item
    approve(item, reviewer)
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = False  # e.g. the name now resolves to a private address
    assert delivery.deliver(message(item, "callback").pk) == "retrying"
    assert receiver.requests == []
    assert DeliveryAttempt.objects.get().error.startswith("refused:")


def test_an_action_its_executor_finds_invalid_is_never_sent(wired, review_all, reviewer, receiver):
    class Strict(executors.WebhookExecutor):
        def validate(self, action):
            super().validate(action)
            if action["params"].get("amount", 0) > 100:
                raise executors.InvalidAction("refunds above 100 need the finance tool")

    executors.register("payment.refund", Strict())
    try:
        item = submit_action(wired)
        approve(item, reviewer)
        assert delivery.deliver(message(item, "execute").pk) == "cancelled"
    finally:
        executors._registry.pop("payment.refund")
    assert receiver.requests == []
    item.refresh_from_db()
    assert item.execution_status == ExecutionStatus.FAILED
    assert "finance tool" in message(item, "execute").last_error


def test_a_second_worker_never_sends_while_the_first_holds_the_lease(wired, review_all, reviewer, receiver):
    item = submit_action(wired)
    approve(item, reviewer)
    msg = message(item, "execute")
    OutboxMessage.objects.filter(pk=msg.pk).update(lease_until=timezone.now() + timedelta(seconds=60))
    assert delivery.deliver(msg.pk) == "not due"
    assert receiver.requests == []
    OutboxMessage.objects.filter(pk=msg.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert delivery.deliver(msg.pk) == "delivered"


# --- Dispatch and sweep ------------------------------------------------------------------------------


def test_the_sweep_sends_what_was_never_dispatched(wired, review_all, reviewer, receiver, eager, settings):
    settings.HITL_OUTBOX_REDISPATCH_SECONDS = 30
    item = submit_action(wired)
    approve(item, reviewer)  # inside the test transaction: the on-commit dispatch never runs
    assert outbox.sweep() == 0  # dispatched moments ago: not stale yet
    assert outbox.sweep(now=timezone.now() + timedelta(seconds=31)) == 2
    assert {r.path for r in receiver.requests} == {"/actions", "/callback"}
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"delivered"}
    assert outbox.sweep(now=timezone.now() + timedelta(hours=1)) == 0


def test_a_dead_broker_at_dispatch_loses_nothing(wired, review_all, reviewer, monkeypatch, eager):
    from reviews import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.deliver_message, "delay", broker_down)
    item = submit_action(wired)
    approve(item, reviewer)
    outbox.dispatch([message(item, "execute").pk])  # logged, not raised
    assert message(item, "execute").status == OutboxMessage.Status.PENDING


# --- SLA staging ----------------------------------------------------------------------------------------


def test_an_item_is_flagged_at_risk_once_at_half_its_sla(integration, review_all, queue):
    item = services.submit_item(integration=integration, payload=submission()).item
    assert services.flag_at_risk(now=item.at_risk_at - timedelta(seconds=1)) == 0
    assert services.flag_at_risk(now=item.at_risk_at) == 1
    assert services.flag_at_risk(now=item.at_risk_at + timedelta(minutes=1)) == 0
    item.refresh_from_db()
    assert item.at_risk_flagged_at == item.at_risk_at
    assert ReviewItem.history.filter(id=item.pk, history_change_reason__startswith="at risk").exists()


# --- Admin ------------------------------------------------------------------------------------------------


def test_attempts_show_on_the_item_and_failures_are_retried_from_the_admin(
    client, wired, review_all, reviewer, receiver, settings, policy_admin, compliance
):
    settings.HITL_DELIVERY_MAX_ATTEMPTS = 1
    receiver.fail_first = 1
    item = submit_action(wired)
    approve(item, reviewer)
    msg = message(item, "execute")
    assert delivery.deliver(msg.pk) == "failed"

    client.force_login(compliance)
    page = client.get(f"/admin/reviews/reviewitem/{item.pk}/change/").content.decode()
    assert "Execute action" in page and "HTTP 500" in page
    changelist = "/admin/reviews/outboxmessage/"
    refused = client.post(
        changelist, {"action": "retry", "index": 0, "select_across": 0, "_selected_action": [msg.pk]}
    )
    assert refused.status_code == 200  # the action is not offered to compliance
    assert message(item, "execute").status == OutboxMessage.Status.FAILED

    client.force_login(policy_admin)
    response = client.post(
        changelist, {"action": "retry", "index": 0, "select_across": 0, "_selected_action": [msg.pk]}
    )
    assert response.status_code == 302
    msg.refresh_from_db()
    item.refresh_from_db()
    assert msg.status == OutboxMessage.Status.PENDING and msg.max_attempts == 2
    assert item.execution_status == ExecutionStatus.PENDING


def test_an_attempt_that_outlived_its_lease_never_overwrites_the_next_ones_outcome(
    wired, review_all, reviewer, receiver, monkeypatch
):
    """A slow attempt's lease runs out, a second worker delivers; the slow one then fails."""
    item = submit_action(wired)
    approve(item, reviewer)
    msg = message(item, "execute")
    real_send = delivery._send

    def slow_then_failing(message_):
        # While the first attempt is "in flight", its lease lapses and another worker delivers.
        OutboxMessage.objects.filter(pk=message_.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
        monkeypatch.setattr(delivery, "_send", real_send)
        assert delivery.deliver(message_.pk) == "delivered"
        return executors.ExecutionResult(False, None, 60_000, "ReadTimeoutError")

    monkeypatch.setattr(delivery, "_send", slow_then_failing)
    assert delivery.deliver(msg.pk) == "superseded"
    msg.refresh_from_db()
    item.refresh_from_db()
    assert msg.status == OutboxMessage.Status.DELIVERED
    assert item.execution_status == ExecutionStatus.SUCCEEDED
    assert len(receiver.requests) == 1
    assert list(msg.delivery_attempts.values_list("number", "error")) == [(1, "ReadTimeoutError"), (2, "")]
