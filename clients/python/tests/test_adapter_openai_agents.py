"""`hitl_client.openai_agents`: the real OpenAI Agents SDK, with a scripted `Model` (no
LLM, no network), against a live server, with a reviewer deciding through the API
while the agent waits."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hitl_client
import pytest

agents = pytest.importorskip("agents")

from agents import Agent, Model, ModelResponse, Runner, RunState, Usage, function_tool  # noqa: E402
from hitl_client.openai_agents import Approvals, AsyncApprovals  # noqa: E402
from openai.types.responses import (  # noqa: E402
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from reviews.models import ReviewItem  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REFUND = {"order": "1182", "amount": 420.0, "currency": "EUR"}


@pytest.fixture(autouse=True)
def _no_tracing():
    """The SDK would export traces to OpenAI: not from tests."""
    agents.set_tracing_disabled(True)
    yield
    agents.set_tracing_disabled(False)


# --- a model that says what the test scripted --------------------------------------------------


Turn = Callable[[list[Any]], list[Any]] | list[Any]


class ScriptedModel(Model):
    """A `Model` whose every response is the next turn of a script: a list of output
    items, or a function of the input items that returns one. It keeps what it was given."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = list(turns)
        self.inputs: list[list[Any]] = []

    async def get_response(
        self,
        system_instructions,
        input,
        model_settings,
        tools,
        output_schema,
        handoffs,
        tracing,
        *,
        previous_response_id=None,
        conversation_id=None,
        prompt=None,
        **_,
    ):
        items = [input] if isinstance(input, str) else list(input)
        self.inputs.append(items)
        turn = self.turns.pop(0)
        output = turn(items) if callable(turn) else turn
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError("These tests do not stream.")

    def tool_output(self, call_id: str) -> str:
        """What the model was told about the call `call_id` (its tool output)."""
        for items in reversed(self.inputs):
            for item in items:
                if (
                    isinstance(item, dict)
                    and item.get("type") == "function_call_output"
                    and item.get("call_id") == call_id
                ):
                    return str(item["output"])
        raise AssertionError(f"The model never saw an output for {call_id}.")


def call(call_id: str, name: str = "refund", **arguments: Any) -> list[Any]:
    arguments = arguments or REFUND
    return [
        ResponseFunctionToolCall(
            type="function_call",
            id=f"fc_{call_id}",
            call_id=call_id,
            name=name,
            arguments=json.dumps(arguments),
            status="completed",
        )
    ]


def say(text: str) -> list[Any]:
    content = [ResponseOutputText(type="output_text", text=text, annotations=[])]
    message = ResponseOutputMessage(
        id="msg_1", type="message", role="assistant", status="completed", content=content
    )
    return [message]


def echo(call_id: str) -> Turn:
    """A last turn that repeats what the tool answered."""

    def turn(items: list[Any]) -> list[Any]:
        for item in items:
            if isinstance(item, dict) and item.get("call_id") == call_id and "output" in item:
                return say(str(item["output"]))
        raise AssertionError(f"No output for {call_id} in the model's input.")

    return turn


# --- the agent -------------------------------------------------------------------------------------


class Ledger:
    def __init__(self) -> None:
        self.refunds: list[tuple[str, float, str]] = []


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def support_agent(approvals, ledger: Ledger, model: ScriptedModel) -> Agent:
    @function_tool(needs_approval=approvals.needs_approval("payment.refund", signals={"category": "finance"}))
    def refund(order: str, amount: float, currency: str) -> str:
        """Refund an order."""
        ledger.refunds.append((order, amount, currency))
        return f"Refunded {amount:.2f} {currency} on order {order}."

    return Agent(name="Support", instructions="Help with orders.", tools=[refund], model=model)


@pytest.fixture
def approvals(hitl) -> Approvals:
    return Approvals(hitl, run_id="conv-381", timeout=30)


def run_to_end(agent: Agent, approvals: Approvals, prompt: str = "Refund order 1182, 420 EUR."):
    result = Runner.run_sync(agent, prompt)
    interrupted = bool(result.interruptions)
    while result.interruptions:
        result = Runner.run_sync(agent, approvals.resolve(result))
    return result, interrupted


# --- the tests ---------------------------------------------------------------------------------------


def test_a_call_the_gate_would_auto_approve_runs_without_interrupting(approvals, ledger):
    model = ScriptedModel([call("call_1"), echo("call_1")])
    result, interrupted = run_to_end(support_agent(approvals, ledger, model), approvals)
    assert not interrupted
    assert ledger.refunds == [("1182", 420.0, "EUR")]
    assert result.final_output == "Refunded 420.00 EUR on order 1182."
    assert ReviewItem.objects.count() == 0  # evaluate is a dry run


def test_an_approved_call_runs_once_the_reviewer_approves(approvals, ledger, refunds_reviewed, desk):
    model = ScriptedModel([call("call_1"), echo("call_1")])
    agent = support_agent(approvals, ledger, model)
    first = Runner.run_sync(agent, "Refund order 1182, 420 EUR.")
    assert [i.name for i in first.interruptions] == ["refund"] and ledger.refunds == []

    decision = desk.meanwhile("approve", "Order checked, amount right.")
    state = approvals.resolve(first)
    decision.result()
    result = Runner.run_sync(agent, state)

    assert ledger.refunds == [("1182", 420.0, "EUR")]
    assert result.final_output == "Refunded 420.00 EUR on order 1182." and not result.interruptions
    item = ReviewItem.objects.get()
    assert item.status == "approved" and item.queue.slug == "general"
    assert item.action == {"type": "payment.refund", "params": REFUND}
    assert item.signals == {"category": "finance"} and item.external_id == "conv-381/call_1"
    assert approvals.items["call_1"].id == str(item.pk)


def test_an_edit_reaches_the_model_as_a_rejection_carrying_the_approved_arguments(
    approvals, ledger, refunds_reviewed, desk, codes
):
    def lower_amount(action):
        return {**action, "params": {**action["params"], "amount": 300.0}}

    # The model reads the edit and calls the tool again with the approved arguments.
    model = ScriptedModel([call("call_1"), call("call_2", **{**REFUND, "amount": 300.0}), echo("call_2")])
    agent = support_agent(approvals, ledger, model)
    decision = desk.meanwhile(
        "edit", "Only 300 was charged", reason_codes=["wrong_amount"], edit=lower_amount
    )
    result, interrupted = run_to_end(agent, approvals)
    decision.result()

    told = model.tool_output("call_1")
    assert 'Approved arguments: {"amount": 300.0, "currency": "EUR", "order": "1182"}' in told
    assert "Justification: Only 300 was charged." in told and "Reason codes: wrong_amount." in told
    assert "did not run" in told
    # That call ran with the reviewer's amount, without a second review.
    assert interrupted and ledger.refunds == [("1182", 300.0, "EUR")]
    assert result.final_output == "Refunded 300.00 EUR on order 1182."
    item = ReviewItem.objects.get()
    assert item.status == "edited" and item.final_action["params"]["amount"] == 300.0


def test_a_rejection_reaches_the_model_with_the_justification_and_reason_codes(
    approvals, ledger, refunds_reviewed, desk, codes
):
    model = ScriptedModel([call("call_1"), echo("call_1")])
    decision = desk.meanwhile("reject", "Never paid", reason_codes=["policy_violation"])
    result, interrupted = run_to_end(support_agent(approvals, ledger, model), approvals)
    decision.result()

    assert interrupted and ledger.refunds == []
    assert result.final_output == (
        "A human reviewer rejected this call of refund; it did not run. Justification: Never paid. "
        "Reason codes: policy_violation. Do not make the same call again."
    )
    assert ReviewItem.objects.get().status == "rejected"


def test_a_blocked_call_is_refused_with_the_rule_that_blocked_it(approvals, ledger, big_refunds_blocked):
    model = ScriptedModel([call("call_1", **{**REFUND, "amount": 25_000.0}), echo("call_1")])
    result, interrupted = run_to_end(support_agent(approvals, ledger, model), approvals)
    assert interrupted and ledger.refunds == []
    assert "blocked this call of refund (No refunds over 10000)" in result.final_output
    assert ReviewItem.objects.get().status == "blocked"


def test_resuming_after_a_timeout_and_a_restart_finds_the_same_item_and_runs_the_tool_once(
    hitl, ledger, refunds_reviewed, desk
):
    model = ScriptedModel([call("call_1"), echo("call_1")])
    approvals = Approvals(hitl, run_id="conv-381")
    agent = support_agent(approvals, ledger, model)
    first = Runner.run_sync(agent, "Refund order 1182, 420 EUR.")
    saved = first.to_state().to_string()

    with pytest.raises(hitl_client.TimedOut):
        approvals.resolve(first, timeout=0.2)  # nobody has decided yet
    desk.decide_next("approve", "Order checked.")

    # Another process: the agent rebuilt, the state restored, the adapter new.
    approvals = Approvals(hitl, run_id="conv-381")
    agent = support_agent(approvals, ledger, model)
    restored = asyncio.run(RunState.from_string(agent, saved))
    result = Runner.run_sync(agent, approvals.resolve(restored))

    assert ledger.refunds == [("1182", 420.0, "EUR")]
    assert result.final_output == "Refunded 420.00 EUR on order 1182."
    assert ReviewItem.objects.count() == 1 and ReviewItem.objects.get().status == "approved"


def test_async_approvals_resolve_with_the_async_client(make_async_client, ledger, refunds_reviewed, desk):
    model = ScriptedModel([call("call_1"), echo("call_1")])
    submitted: list[hitl_client.Submission] = []
    decision = desk.meanwhile("approve", "Fine.")

    async def main():
        async with make_async_client() as client:
            approvals = AsyncApprovals(client, run_id="conv-9", on_pending=submitted.append)
            agent = support_agent(approvals, ledger, model)
            result = await Runner.run(agent, "Refund order 1182, 420 EUR.")
            assert result.interruptions
            return await Runner.run(agent, await approvals.resolve(result))

    result = asyncio.run(main())
    decision.result()
    assert ledger.refunds == [("1182", 420.0, "EUR")]
    assert result.final_output == "Refunded 420.00 EUR on order 1182."
    item = ReviewItem.objects.get()
    assert [s.id for s in submitted] == [str(item.pk)]
    assert submitted[0].review_url.endswith(f"/admin/reviews/reviewitem/{item.pk}/review/")


def test_the_example_agent_refunds_once_the_reviewer_approves(
    hitl, refunds_reviewed, desk, monkeypatch, capsys
):
    path = EXAMPLES / "openai_agents_refund.py"
    spec = importlib.util.spec_from_file_location("hitl_example_openai_agents", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    refunds: list[tuple] = []
    monkeypatch.setattr(example, "issue_refund", lambda *args: refunds.append(args) or "Refunded.")

    model = ScriptedModel([call("call_1"), echo("call_1")])
    agent, approvals = example.build(hitl, model=model)
    decision = desk.meanwhile("approve", "Order checked.")
    answer = example.run(agent, approvals, "Refund order 1182: 420 EUR.")
    decision.result()

    assert answer == "Refunded." and refunds == [("1182", 420.0, "EUR")]
    item = ReviewItem.objects.get()
    review_url = f"{hitl.base_url}/admin/reviews/reviewitem/{item.pk}/review/"
    assert f"waiting for review: {review_url}" in capsys.readouterr().out
