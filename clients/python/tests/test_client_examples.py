"""The examples work as a user runs them: `refund_agent.py` as a script against the
live server, `receiver.py` resuming deferred calls from the service's real, signed
`item.decided` callbacks (delivered by the outbox, in-process as under `make run`)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import hitl_client
import pytest

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"hitl_client_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_agent(server, api_key, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "DJANGO_", "DATABASE_"))}
    env.update(HITL_URL=server.url, HITL_API_KEY=api_key)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "refund_agent.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_refund_agent_runs_an_auto_approved_refund(server, api_key):
    done = run_agent(server, api_key, "1182", "42")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Refunded 42.00 EUR on order 1182."


def test_the_refund_agent_reports_a_blocked_refund(server, api_key, big_refunds_blocked):
    done = run_agent(server, api_key, "1182", "25000")
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == "Not refunded: the request was blocked."


@pytest.fixture
def receiving(agent, hitl, settings, eager):
    """The example receiver, listening for the agent's callbacks, and its deferred refund tool."""
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    receiver = load("receiver")
    runs: list[tuple] = []

    def refund(order: str, amount: float, currency: str = "EUR") -> str:
        runs.append((order, amount, currency))
        return receiver.refund(order, amount, currency)

    tool = hitl.gate("payment.refund", mode="defer")(refund)
    resumer = receiver.Resumer(tool, agent.webhook_secret)
    http = receiver.serve(resumer, port=0)
    agent.callback_url = f"http://127.0.0.1:{http.server_address[1]}/hitl"
    agent.save(update_fields=["callback_url"])
    yield tool, resumer, runs
    http.shutdown()
    http.server_close()


def test_the_receiver_resumes_an_edited_call_from_the_callback(receiving, refunds_reviewed, desk, codes):
    tool, resumer, runs = receiving
    pending = tool("1182", 420.0)
    assert isinstance(pending, hitl_client.Pending) and runs == []

    item = desk.next_item()
    edited = {**item["action"], "params": {**item["action"]["params"], "amount": 300.0}}
    desk.decide(
        item["id"], "edit", "Only 300 was charged.", reason_codes=["wrong_amount"], edited_action=edited
    )

    outcome = resumer.wait_for(pending.item_id, timeout=15)
    assert isinstance(outcome, hitl_client.GateResult)
    assert outcome.value == "Refunded 300.00 EUR on order 1182." and outcome.edited
    assert runs == [("1182", 300.0, "EUR")]
    assert len(resumer.seen) == 1


def test_the_receiver_records_a_rejection_and_runs_nothing(receiving, refunds_reviewed, desk, codes):
    tool, resumer, runs = receiving
    pending = tool("1182", 420.0)
    desk.decide(desk.next_item()["id"], "reject", "Never paid.", reason_codes=["policy_violation"])
    outcome = resumer.wait_for(pending.item_id, timeout=15)
    assert isinstance(outcome, hitl_client.Rejected) and outcome.justification == "Never paid."
    assert runs == []


def test_the_receiver_leaves_calls_the_gate_answered_at_once(receiving):
    tool, resumer, runs = receiving
    result = tool("1182", 42.0)  # auto-approved: ran now; its callback comes all the same
    assert isinstance(result, hitl_client.GateResult) and runs == [("1182", 42.0, "EUR")]
    assert len(resumer.seen) == 1 and resumer.outcomes == {}


def test_the_receiver_refuses_an_unsigned_request(receiving):
    _, resumer, _ = receiving
    assert (
        resumer.handle({"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}, b"{}")
        == 400
    )
