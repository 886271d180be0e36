"""`hitl_client.langgraph`: real LangGraph graphs and langchain agents (a scripted chat
model, no LLM) paused for review, with the reviewer deciding through the API while the
driver waits, then resumed with `Command(resume=...)` from an in-memory checkpointer."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import hitl_client
import pytest
from hitl_client.langgraph import INTERRUPT_TYPE, Gate
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command
from pydantic import Field

from reviews.models import ReviewItem

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REFUND = {"order": "1182", "amount": 420.0}


class ScriptedModel(FakeMessagesListChatModel):
    """A chat model without an LLM: it answers from its script and keeps what it was sent."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


def asks_for(*calls: dict) -> ScriptedModel:
    """A model that asks for these tool calls, then says it is done."""
    tool_calls = [{"name": "refund", "args": args, "id": f"call-{n}"} for n, args in enumerate(calls, 1)]
    return ScriptedModel(responses=[AIMessage("", tool_calls=tool_calls), AIMessage("Done.")])


@pytest.fixture
def ledger() -> list[tuple[str, float]]:
    return []


@pytest.fixture
def refund(ledger):
    @tool
    def refund(order: str, amount: float) -> str:
        """Refund an order, in euros."""
        ledger.append((order, amount))
        return f"refunded {amount} on {order}"

    return refund


@pytest.fixture
def gate(hitl) -> Gate:
    return Gate(hitl, action_types={"refund": "payment.refund"}, signals={"category": "finance"}, timeout=30)


@pytest.fixture
def config() -> dict:
    return {"configurable": {"thread_id": f"thread-{uuid.uuid4()}"}}


def start(graph, config, user: str = "Refund order 1182, 420 EUR."):
    return graph.invoke({"messages": [{"role": "user", "content": user}]}, config)


def drive(graph, gate, config) -> dict:
    """The driver's loop: resume while the gate has an answer."""
    state = graph.get_state(config).values
    while (command := gate.resume(graph, config)) is not None:
        state = graph.invoke(command, config)
    return state


def tool_messages(state) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def lower_amount(action: dict) -> dict:
    return {**action, "params": {**action["params"], "amount": 300.0}}


# --- a node of your own graph -------------------------------------------------------------


def own_graph(gate: Gate, model: ScriptedModel, tools: list):
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    builder.add_node("tools", gate.tool_node(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def test_a_node_pauses_until_the_reviewer_approves_then_runs_the_tool(
    gate, refund, ledger, refunds_reviewed, desk, config
):
    graph = own_graph(gate, asks_for(REFUND), [refund])
    start(graph, config)
    [paused] = graph.get_state(config).interrupts
    [entry] = paused.value["items"]
    assert paused.value["type"] == INTERRUPT_TYPE and entry["status"] == "pending"
    assert entry["tool_call_id"] == "call-1" and entry["review_url"].endswith(f"/{entry['item_id']}/review/")
    assert ledger == []

    decision = desk.meanwhile("approve", "Order checked.")
    state = drive(graph, gate, config)
    decision.result()

    assert ledger == [("1182", 420.0)]
    assert tool_messages(state)[0].content == "refunded 420.0 on 1182"
    assert state["messages"][-1].content == "Done."
    item = ReviewItem.objects.get()
    assert item.status == "approved" and item.action == {"type": "payment.refund", "params": REFUND}
    assert item.external_id == f"{config['configurable']['thread_id']}/call-1"
    assert item.signals == {"category": "finance"}


def test_a_node_runs_the_tool_with_the_reviewers_edit(
    gate, refund, ledger, refunds_reviewed, desk, codes, config
):
    graph = own_graph(gate, asks_for(REFUND), [refund])
    start(graph, config)
    decision = desk.meanwhile(
        "edit", "Only 300 was charged.", reason_codes=["wrong_amount"], edit=lower_amount
    )
    state = drive(graph, gate, config)
    decision.result()
    assert ledger == [("1182", 300.0)]
    assert tool_messages(state)[0].content == "refunded 300.0 on 1182"


def test_a_rejection_reaches_the_model_with_the_justification_and_codes(
    gate, refund, ledger, refunds_reviewed, desk, codes, config
):
    model = asks_for(REFUND)
    graph = own_graph(gate, model, [refund])
    start(graph, config)
    decision = desk.meanwhile("reject", "Never paid.", reason_codes=["wrong_amount", "policy_violation"])
    drive(graph, gate, config)
    decision.result()
    assert ledger == []
    answer = model.seen[-1][-1]  # what the model was sent on its second turn
    assert isinstance(answer, ToolMessage) and answer.status == "error" and answer.tool_call_id == "call-1"
    assert answer.content == (
        "The call to `refund` did not run. Rejected by reviewer (wrong_amount, policy_violation): Never paid."
    )


def test_resuming_reruns_the_node_without_a_second_item(gate, refund, ledger, refunds_reviewed, desk, config):
    graph = own_graph(gate, asks_for(REFUND), [refund])
    start(graph, config)
    assert ReviewItem.objects.count() == 1

    # Resumed before anyone decided: LangGraph runs the node again from the top; it
    # submits the call again, finds the same item still pending, and pauses again.
    graph.invoke(Command(resume="too early"), config)
    assert ReviewItem.objects.count() == 1
    [paused] = graph.get_state(config).interrupts
    assert paused.value["items"][0]["item_id"] == str(ReviewItem.objects.get().pk)
    assert gate.resume(graph, config, wait=False) is None  # nothing decided yet
    assert ledger == []

    decision = desk.meanwhile("approve", "Fine.")
    drive(graph, gate, config)  # a third run of the node
    decision.result()
    assert ReviewItem.objects.count() == 1
    assert ledger == [("1182", 420.0)]


def test_a_node_reviews_several_calls_at_once_and_runs_ungated_tools_after_them(
    gate, refund, ledger, refunds_reviewed, desk, codes, config
):
    looked_up: list[str] = []

    @tool
    def lookup(order: str) -> str:
        """Look an order up."""
        looked_up.append(order)
        return f"order {order}: paid"

    model = ScriptedModel(
        responses=[
            AIMessage(
                "",
                tool_calls=[
                    {"name": "lookup", "args": {"order": "1182"}, "id": "call-1"},
                    {"name": "refund", "args": REFUND, "id": "call-2"},
                    {"name": "refund", "args": {"order": "1183", "amount": 80.0}, "id": "call-3"},
                ],
            ),
            AIMessage("Done."),
        ]
    )
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", gate.tool_node([lookup, refund], gated={"refund"}))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    graph = graph.compile(checkpointer=InMemorySaver())

    start(graph, config)
    [paused] = graph.get_state(config).interrupts
    assert [entry["tool_call_id"] for entry in paused.value["items"]] == ["call-2", "call-3"]
    assert looked_up == []  # nothing runs before every reviewed call is decided

    desk.decide_next("approve", "Fine.")
    desk.decide_next("reject", "Duplicate.", reason_codes=["policy_violation"])
    state = drive(graph, gate, config)
    assert looked_up == ["1182"] and len(ledger) == 1
    assert sorted(ReviewItem.objects.values_list("status", flat=True)) == ["approved", "rejected"]
    assert [m.tool_call_id for m in tool_messages(state)] == ["call-1", "call-2", "call-3"]


def test_an_auto_approved_call_runs_without_pausing(gate, refund, ledger, config):
    graph = own_graph(gate, asks_for(REFUND), [refund])
    state = start(graph, config)
    assert graph.get_state(config).interrupts == ()
    assert ledger == [("1182", 420.0)] and state["messages"][-1].content == "Done."
    assert ReviewItem.objects.get().status == "auto_approved"


# --- HumanInTheLoopMiddleware ---------------------------------------------------------------


def middleware_agent(model: ScriptedModel, tools: list, **options: Any):
    interrupt_on = options.pop("interrupt_on", {"refund": True})
    return create_agent(
        model,
        tools=tools,
        middleware=[HumanInTheLoopMiddleware(interrupt_on=interrupt_on, **options)],
        checkpointer=InMemorySaver(),
    )


MODES = pytest.mark.parametrize("mode", ["batched", "per_call"])


@MODES
def test_the_middleware_runs_an_approved_call(gate, refund, ledger, refunds_reviewed, desk, config, mode):
    agent = middleware_agent(asks_for(REFUND), [refund], interrupt_mode=mode)
    start(agent, config)
    assert ledger == [] and len(agent.get_state(config).interrupts) == 1

    decision = desk.meanwhile("approve", "Order checked.")
    state = drive(agent, gate, config)
    decision.result()
    assert ledger == [("1182", 420.0)]
    assert tool_messages(state)[0].content == "refunded 420.0 on 1182"
    item = ReviewItem.objects.get()
    assert item.status == "approved" and item.context["description"].startswith(
        "Tool execution requires approval"
    )


@MODES
def test_the_middleware_runs_the_tool_with_the_edited_action(
    gate, refund, ledger, refunds_reviewed, desk, codes, config, mode
):
    agent = middleware_agent(asks_for(REFUND), [refund], interrupt_mode=mode)
    start(agent, config)
    decision = desk.meanwhile(
        "edit", "Only 300 was charged.", reason_codes=["wrong_amount"], edit=lower_amount
    )
    state = drive(agent, gate, config)
    decision.result()
    assert ledger == [("1182", 300.0)]
    [message] = tool_messages(state)
    assert "a human reviewer replaced this tool call" in message.content
    assert message.content.endswith("refunded 300.0 on 1182")


@MODES
def test_the_middleware_hands_the_rejection_to_the_model(
    gate, refund, ledger, refunds_reviewed, desk, codes, config, mode
):
    model = asks_for(REFUND)
    agent = middleware_agent(model, [refund], interrupt_mode=mode)
    start(agent, config)
    decision = desk.meanwhile("reject", "Never paid.", reason_codes=["policy_violation"])
    drive(agent, gate, config)
    decision.result()
    assert ledger == []
    answer = model.seen[-1][-1]
    assert isinstance(answer, ToolMessage) and answer.status == "error"
    assert answer.content == (
        "User rejected the tool call for `refund` with reason: "
        "Rejected by reviewer (policy_violation): Never paid."
    )


def test_the_middleware_driver_submits_again_after_a_restart_without_a_second_item(
    gate, hitl, refund, ledger, refunds_reviewed, desk, config
):
    agent = middleware_agent(asks_for(REFUND), [refund])
    start(agent, config)
    announced: list[hitl_client.Submission] = []
    first = Gate(
        hitl,
        action_types={"refund": "payment.refund"},
        signals={"category": "finance"},
        on_pending=announced.append,
    )
    assert first.resume(agent, config, wait=False) is None  # submitted; nobody decided yet
    assert first.resume(agent, config, wait=False) is None  # the driver again, after a restart
    assert ReviewItem.objects.count() == 1
    [submission] = announced  # announced once, the first time
    assert submission.review_url.endswith(f"/{submission.id}/review/")

    desk.decide(desk.next_item()["id"], "approve", "Fine.")
    drive(agent, gate, config)
    assert ReviewItem.objects.count() == 1 and ledger == [("1182", 420.0)]


def test_the_middleware_matches_decisions_to_several_calls_by_their_ids(
    gate, refund, ledger, refunds_reviewed, desk, codes, config
):
    other = {"order": "1183", "amount": 80.0}
    agent = middleware_agent(asks_for(REFUND, other), [refund])
    start(agent, config)
    [paused] = agent.get_state(config).interrupts
    assert len(paused.value["action_requests"]) == 2

    gate.resume(agent, config, wait=False)  # submits both
    items = {item.external_id.rsplit("/", 1)[1]: item for item in ReviewItem.objects.all()}
    assert sorted(items) == ["call-1", "call-2"]
    desk.decide(str(items["call-1"].pk), "reject", "Never paid.", reason_codes=["policy_violation"])
    desk.decide(str(items["call-2"].pk), "approve", "Fine.")

    state = drive(agent, gate, config)
    assert ledger == [("1183", 80.0)]
    rejected, ran = tool_messages(state)
    assert rejected.tool_call_id == "call-1" and "Never paid." in rejected.content
    assert ran.tool_call_id == "call-2" and ran.content == "refunded 80.0 on 1183"


def test_an_edit_of_a_tool_that_takes_no_edits_is_refused(
    gate, refund, ledger, refunds_reviewed, desk, codes, config
):
    agent = middleware_agent(
        asks_for(REFUND), [refund], interrupt_on={"refund": {"allowed_decisions": ["approve", "reject"]}}
    )
    start(agent, config)
    decision = desk.meanwhile("edit", "Only 300.", reason_codes=["wrong_amount"], edit=lower_amount)
    state = drive(agent, gate, config)
    decision.result()
    assert ledger == []
    assert '"amount": 300.0' in tool_messages(state)[0].content


def test_a_blocked_call_is_rejected_with_the_rule(gate, refund, ledger, big_refunds_blocked, config):
    agent = middleware_agent(asks_for({"order": "1182", "amount": 25_000.0}), [refund])
    start(agent, config)
    state = drive(agent, gate, config)
    assert ledger == []
    assert tool_messages(state)[0].content.endswith("Blocked by the gate (No refunds over 10000).")


# --- the example ------------------------------------------------------------------------


def test_the_example_runs_a_refund_as_a_script(server, api_key):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "DJANGO_", "DATABASE_"))}
    env.update(HITL_URL=server.url, HITL_API_KEY=api_key)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "langgraph_refund.py"), "1182", "42"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Refunded 42.00 EUR on order 1182."


def test_the_example_waits_for_the_reviewers_edit(hitl, refunds_reviewed, desk, codes, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "hitl_example_langgraph_refund", EXAMPLES / "langgraph_refund.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    decision = desk.meanwhile(
        "edit", "Only 300 was charged.", reason_codes=["wrong_amount"], edit=lower_amount
    )
    answer = example.run(hitl, "1182", 420.0)
    decision.result()
    assert answer.endswith("Refunded 300.00 EUR on order 1182.")
    assert "waiting for review: " in capsys.readouterr().out
