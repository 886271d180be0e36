"""A LangChain agent whose refunds a person approves, edits or rejects in HITL review gates.

    pip install "./clients/python[langgraph]"
    export HITL_URL=http://127.0.0.1:8000 HITL_API_KEY=hitl_...
    python examples/langgraph_refund.py 1182 420.00

`HumanInTheLoopMiddleware` pauses the agent before each refund; `gate.resume` submits
the call, waits for the decision (open the review page it prints meanwhile) and
answers the middleware: approve, edit (the refund runs with the reviewer's amount) or
reject (the model reads the justification and reason codes). Auto-approved by the
gate, the refund runs at once.

The model here is scripted so that the example runs without an LLM: put yours in its
place (`langchain.chat_models.init_chat_model("openai:gpt-5")`).
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import hitl_client
from hitl_client.langgraph import Gate
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver


@tool
def refund(order: str, amount: float) -> str:
    """Refund an order, in euros."""
    return f"Refunded {amount:.2f} EUR on order {order}."  # your payment provider's call


class ScriptedModel(BaseChatModel):
    """Stands in for an LLM: asks for the refund, then repeats what the tool answered."""

    order: str
    amount: float

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        if isinstance(messages[-1], ToolMessage):
            reply = AIMessage(str(messages[-1].content))
        else:
            args = {"order": self.order, "amount": self.amount}
            reply = AIMessage("", tool_calls=[{"name": "refund", "args": args, "id": "call-refund"}])
        return ChatResult(generations=[ChatGeneration(message=reply)])


def run(client: hitl_client.Client, order: str, amount: float) -> str:
    """Ask the agent for the refund; return its last word."""
    gate = Gate(
        client,
        action_types={"refund": "payment.refund"},
        on_pending=lambda pending: print("waiting for review:", pending.review_url, flush=True),
    )
    agent = create_agent(
        ScriptedModel(order=order, amount=amount),
        tools=[refund],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"refund": True})],
        checkpointer=InMemorySaver(),  # a durable one in production: a paused thread survives a restart
    )
    config = {"configurable": {"thread_id": f"refund-{uuid.uuid4()}"}}
    state = agent.invoke(
        {"messages": [{"role": "user", "content": f"Refund {amount} EUR on {order}."}]}, config
    )
    while (command := gate.resume(agent, config)) is not None:  # waits for the reviewer
        state = agent.invoke(command, config)
    return str(state["messages"][-1].content)


def main(argv: list[str]) -> int:
    with hitl_client.Client() as client:  # HITL_URL and HITL_API_KEY from the environment
        print(run(client, argv[1], float(argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
