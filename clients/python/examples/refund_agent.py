"""The three-line gate: a refund that a person approves (or edits, or rejects) before it runs.

    export HITL_URL=http://127.0.0.1:8000 HITL_API_KEY=hitl_...
    python examples/refund_agent.py 1182 420.00

Auto-approved by the gate, the refund runs at once; held, the call waits for a
reviewer and prints the review page to open meanwhile.
"""

from __future__ import annotations

import sys

import hitl_client

client = hitl_client.Client()  # HITL_URL and HITL_API_KEY from the environment


@client.gate("payment.refund", on_pending=lambda pending: print("waiting for review:", pending.review_url))
def refund(order: str, amount: float, currency: str = "EUR") -> str:
    return f"Refunded {amount:.2f} {currency} on order {order}."  # your payment provider's call


def main(argv: list[str]) -> int:
    order, amount = argv[1], float(argv[2])
    try:
        result = refund(order, amount)
    except hitl_client.Rejected as exc:
        # What a model needs to try again: the reviewer's words and reason codes.
        print(f"Not refunded: {exc.justification} ({', '.join(exc.reason_codes)})")
        return 1
    except hitl_client.NotApproved as exc:  # blocked by a rule, expired or cancelled
        print(f"Not refunded: the request was {exc.item.status}.")
        return 1
    print(result.value, "(the reviewer changed the amount)" if result.edited else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
