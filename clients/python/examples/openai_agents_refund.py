"""A support agent on the OpenAI Agents SDK whose refunds a person reviews first.

    pip install './clients/python[openai-agents]'
    export HITL_URL=http://127.0.0.1:8000 HITL_API_KEY=hitl_... OPENAI_API_KEY=sk-...
    python examples/openai_agents_refund.py "Refund order 1182: 420 EUR, the parcel never came."

The refund tool's `needs_approval` asks the gate. A call the gate would hold stops
the run; `approvals.resolve` submits it, prints the review page, waits for the
reviewer, and the run goes on: approved, the refund runs; edited or rejected, the
model reads why (an edit carries the approved arguments, and the model's call with
exactly those runs without another review).
"""

from __future__ import annotations

import sys
import uuid

import hitl_client
from agents import Agent, Model, Runner, function_tool
from hitl_client.openai_agents import Approvals


def issue_refund(order: str, amount: float, currency: str) -> str:
    return f"Refunded {amount:.2f} {currency} on order {order}."  # your payment provider's call


def build(client: hitl_client.Client, *, model: str | Model = "gpt-4.1-mini", run_id: str | None = None):
    """The agent and its approvals (one `Approvals` per conversation)."""
    approvals = Approvals(
        client,
        run_id=run_id or f"support-{uuid.uuid4().hex[:12]}",
        on_pending=lambda submission: print("waiting for review:", submission.review_url, flush=True),
    )

    @function_tool(needs_approval=approvals.needs_approval("payment.refund"))
    def refund(order: str, amount: float, currency: str) -> str:
        """Refund an order to the customer.

        Args:
            order: The order number.
            amount: How much to refund.
            currency: ISO 4217 code, e.g. EUR.
        """
        return issue_refund(order, amount, currency)

    agent = Agent(
        name="Support",
        instructions="You help customers with their orders. Refund only what the customer was charged.",
        tools=[refund],
        model=model,
    )
    return agent, approvals


def run(agent: Agent, approvals: Approvals, prompt: str) -> str:
    result = Runner.run_sync(agent, prompt)
    while result.interruptions:  # calls the gate holds: a reviewer decides each
        result = Runner.run_sync(agent, approvals.resolve(result))
    return str(result.final_output)


def main(argv: list[str]) -> int:
    client = hitl_client.Client()  # HITL_URL and HITL_API_KEY from the environment
    agent, approvals = build(client)
    print(run(agent, approvals, argv[1] if len(argv) > 1 else "Refund order 1182: 420 EUR."))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
