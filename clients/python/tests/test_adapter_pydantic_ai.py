"""`hitl_client.pydantic_ai`: a real Pydantic AI agent (a `FunctionModel`, no LLM) whose
tool requires approval; its `DeferredToolRequests` are decided by a reviewer through
the API while the agent waits, and the next run gets the `DeferredToolResults`."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import hitl_client
import pytest
from hitl_client.pydantic_ai import Gate
from pydantic_ai import Agent, DeferredToolRequests, RunContext, ToolApproved
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from reviews.models import ReviewItem

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REFUND = {"order": "1182", "amount": 420.0}


class Script:
    """The model: asks for the refunds, then repeats what came back; keeps what it was sent."""

    def __init__(self, *calls: dict):
        self.calls = calls
        self.seen: list[list[ModelMessage]] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.seen.append(list(messages))
        answers = [part for part in messages[-1].parts if isinstance(part, ToolReturnPart)]
        if answers:
            return ModelResponse(parts=[TextPart(" | ".join(str(part.content) for part in answers))])
        return ModelResponse(
            parts=[
                ToolCallPart("refund", args, tool_call_id=f"call-{n}") for n, args in enumerate(self.calls, 1)
            ]
        )

    def answers(self) -> list[ToolReturnPart]:
        """The tool answers the model was sent on its last turn."""
        return [part for part in self.seen[-1][-1].parts if isinstance(part, ToolReturnPart)]


class Ledger:
    def __init__(self):
        self.refunds: list[tuple[str, float]] = []
        self.metadata: list[dict] = []


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def refund_agent(script: Script, ledger: Ledger, **options) -> Agent:
    agent = Agent(FunctionModel(script), output_type=[str, DeferredToolRequests], **options)

    @agent.tool(requires_approval=True)
    def refund(ctx: RunContext[None], order: str, amount: float) -> str:
        """Refund an order, in euros."""
        ledger.refunds.append((order, amount))
        ledger.metadata.append(ctx.tool_call_metadata)
        return f"refunded {amount} on {order}"

    return agent


@pytest.fixture
def gate(hitl) -> Gate:
    return Gate(hitl, action_types={"refund": "payment.refund"}, metadata={"user_id": "u-77"}, timeout=30)


def resolved(agent: Agent, gate: Gate, prompt: str = "Refund order 1182, 420 EUR."):
    """The driver's loop: run, resolve the deferred calls through the service, run on."""
    result = agent.run_sync(prompt)
    while isinstance(result.output, DeferredToolRequests):
        result = agent.run_sync(
            message_history=result.all_messages(), deferred_tool_results=gate.resolve(result)
        )
    return result


def lower_amount(action: dict) -> dict:
    return {**action, "params": {**action["params"], "amount": 300.0}}


def test_an_approved_call_runs_in_the_next_run(gate, ledger, refunds_reviewed, desk):
    agent = refund_agent(Script(REFUND), ledger)
    decision = desk.meanwhile("approve", "Order checked.")
    result = resolved(agent, gate)
    decision.result()
    assert ledger.refunds == [("1182", 420.0)] and result.output == "refunded 420.0 on 1182"

    item = ReviewItem.objects.get()
    assert item.status == "approved" and item.action == {"type": "payment.refund", "params": REFUND}
    assert item.metadata == {"user_id": "u-77"}
    assert item.external_id == f"{result.conversation_id}/call-1"
    # The tool knows which item approved it (a key for its own side effect).
    assert (
        ledger.metadata[0]["hitl_item_id"] == str(item.pk) and ledger.metadata[0]["hitl_status"] == "approved"
    )


def test_an_edited_call_runs_with_the_reviewers_arguments(gate, ledger, refunds_reviewed, desk, codes):
    agent = refund_agent(Script(REFUND), ledger)
    first = agent.run_sync("Refund order 1182, 420 EUR.")
    assert isinstance(first.output, DeferredToolRequests) and ledger.refunds == []

    decision = desk.meanwhile(
        "edit", "Only 300 was charged.", reason_codes=["wrong_amount"], edit=lower_amount
    )
    results = gate.resolve(first)
    decision.result()
    assert results.approvals == {"call-1": ToolApproved(override_args={"order": "1182", "amount": 300.0})}
    assert results.answered_by == {"call-1": "reviewer"}

    result = agent.run_sync(message_history=first.all_messages(), deferred_tool_results=results)
    assert ledger.refunds == [("1182", 300.0)] and result.output == "refunded 300.0 on 1182"


def test_a_rejection_reaches_the_model_with_the_justification_and_codes(
    gate, ledger, refunds_reviewed, desk, codes
):
    script = Script(REFUND)
    agent = refund_agent(script, ledger)
    decision = desk.meanwhile("reject", "Never paid.", reason_codes=["wrong_amount", "policy_violation"])
    result = resolved(agent, gate)
    decision.result()
    assert ledger.refunds == []
    [answer] = script.answers()
    assert answer.tool_call_id == "call-1"
    assert answer.content == (
        "The call did not run. Rejected by reviewer (wrong_amount, policy_violation): Never paid."
    )
    assert result.output == answer.content


def test_resolving_again_finds_the_same_items(gate, hitl, ledger, refunds_reviewed, desk):
    agent = refund_agent(Script(REFUND, {"order": "1183", "amount": 80.0}), ledger)
    first = agent.run_sync("Refund two orders.")
    announced: list[hitl_client.Submission] = []
    patient = Gate(
        hitl,
        action_types={"refund": "payment.refund"},
        metadata={"user_id": "u-77"},
        on_pending=announced.append,
    )

    assert patient.resolve(first, wait=False).approvals == {}  # submitted; nobody decided yet
    assert patient.resolve(first, wait=False).approvals == {}  # again, after a restart
    assert ReviewItem.objects.count() == 2 and len(announced) == 2  # announced once each

    desk.decide_next("approve", "Fine.")
    partial = patient.resolve(first, wait=False)
    assert len(partial.approvals) == 1
    assert len(first.output.remaining(partial).approvals) == 1
    assert ReviewItem.objects.count() == 2


def test_a_blocked_call_is_denied_with_the_rule(gate, ledger, big_refunds_blocked):
    script = Script({"order": "1182", "amount": 25_000.0})
    resolved(refund_agent(script, ledger), gate)
    assert ledger.refunds == []
    [answer] = script.answers()
    assert answer.content == "The call did not run. Blocked by the gate (No refunds over 10000)."


def test_the_results_of_auto_approved_calls_say_so(gate, ledger):
    first = refund_agent(Script(REFUND), ledger).run_sync("Refund order 1182, 42 EUR.")
    results = gate.resolve(first)
    assert results.approvals == {"call-1": ToolApproved()}
    assert results.answered_by == {"call-1": "hitl-gate"}
    assert ReviewItem.objects.get().status == "auto_approved"


def test_the_capability_waits_inside_the_run(make_async_client, ledger, refunds_reviewed, desk, codes):
    async def main():
        async with make_async_client() as client:
            gate = Gate(client, action_types={"refund": "payment.refund"}, timeout=30)
            agent = refund_agent(Script(REFUND), ledger, capabilities=[gate.capability()])
            return await agent.run("Refund order 1182, 420 EUR.")

    decision = desk.meanwhile(
        "edit", "Only 300 was charged.", reason_codes=["wrong_amount"], edit=lower_amount
    )
    result = asyncio.run(main())
    decision.result()
    assert result.output == "refunded 300.0 on 1182" and ledger.refunds == [("1182", 300.0)]
    assert ReviewItem.objects.get().status == "edited"


def test_a_sync_client_resolves_awaited_too(gate, ledger):
    first = refund_agent(Script(REFUND), ledger).run_sync("Refund order 1182, 42 EUR.")
    results = asyncio.run(gate.aresolve(first.output, conversation_id=first.conversation_id))
    assert results.approvals == {"call-1": ToolApproved()}


# --- the example ------------------------------------------------------------------------


def test_the_example_runs_a_refund_as_a_script(server, api_key):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "DJANGO_", "DATABASE_"))}
    env.update(HITL_URL=server.url, HITL_API_KEY=api_key)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "pydantic_ai_refund.py"), "1182", "42"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Refunded 42.00 EUR on order 1182."


def test_the_example_hands_a_rejection_to_the_model(hitl, refunds_reviewed, desk, codes, capsys):
    spec = importlib.util.spec_from_file_location(
        "hitl_example_pydantic_ai_refund", EXAMPLES / "pydantic_ai_refund.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    decision = desk.meanwhile("reject", "Never paid.", reason_codes=["policy_violation"])
    answer = example.run(hitl, "1182", 420.0)
    decision.result()
    assert answer == "The call did not run. Rejected by reviewer (policy_violation): Never paid."
    assert "waiting for review: " in capsys.readouterr().out
