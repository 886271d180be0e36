"""A Pydantic AI agent whose refunds a person approves, edits or rejects in HITL review gates.

    pip install "./clients/python[pydantic-ai]"
    export HITL_URL=http://127.0.0.1:8000 HITL_API_KEY=hitl_...
    python examples/pydantic_ai_refund.py 1182 420.00

The refund tool requires approval, so a run that calls it ends with
`DeferredToolRequests`; `gate.resolve` submits each call, waits for the decision
(open the review page it prints meanwhile), and the next run carries on with
`ToolApproved` (with the reviewer's arguments after an edit) or `ToolDenied` (the
model reads the justification and reason codes). Auto-approved by the gate, the refund
runs at once.

The model here is a `FunctionModel` so that the example runs without an LLM: put
yours in its place (`Agent("openai:gpt-5", ...)`).
"""

from __future__ import annotations

import sys

import hitl_client
from hitl_client.pydantic_ai import Gate
from pydantic_ai import Agent, DeferredToolRequests
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel


def scripted(order: str, amount: float) -> FunctionModel:
    """Stands in for an LLM: asks for the refund, then repeats what the tool answered."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        answers = [part for part in messages[-1].parts if isinstance(part, ToolReturnPart)]
        if answers:
            return ModelResponse(parts=[TextPart(str(answers[-1].content))])
        call = ToolCallPart("refund", {"order": order, "amount": amount}, tool_call_id="call-refund")
        return ModelResponse(parts=[call])

    return FunctionModel(respond)


def build_agent(model: FunctionModel) -> Agent[None, str | DeferredToolRequests]:
    agent = Agent(model, output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def refund(order: str, amount: float) -> str:
        """Refund an order, in euros."""
        return f"Refunded {amount:.2f} EUR on order {order}."  # your payment provider's call

    return agent


def run(client: hitl_client.Client, order: str, amount: float) -> str:
    """Ask the agent for the refund; return its last word."""
    gate = Gate(
        client,
        action_types={"refund": "payment.refund"},
        on_pending=lambda pending: print("waiting for review:", pending.review_url, flush=True),
    )
    agent = build_agent(scripted(order, amount))
    result = agent.run_sync(f"Refund {amount} EUR on order {order}.")
    while isinstance(result.output, DeferredToolRequests):
        results = gate.resolve(result)  # waits for the reviewer
        result = agent.run_sync(message_history=result.all_messages(), deferred_tool_results=results)
    return result.output


def main(argv: list[str]) -> int:
    with hitl_client.Client() as client:  # HITL_URL and HITL_API_KEY from the environment
        print(run(client, argv[1], float(argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
