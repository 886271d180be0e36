"""Resume deferred tool calls from the `item.decided` webhook instead of polling.

    export HITL_URL=http://127.0.0.1:8000 HITL_API_KEY=hitl_... HITL_WEBHOOK_SECRET=whsec_...
    python examples/receiver.py            # listens on http://127.0.0.1:8001/hitl

A deferred call (`mode="defer"`) returns at once with a `Pending` handle when the
gate holds it. When a reviewer decides, the service posts `item.decided` to the
item's callback URL; the receiver checks the signature, then runs the call with
the reviewer's final parameters (`tool.resume(item)`), or records why it may not
run. Nothing polls, and the agent process may even have restarted in between.
"""

from __future__ import annotations

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hitl_client


def refund(order: str, amount: float, currency: str = "EUR") -> str:
    return f"Refunded {amount:.2f} {currency} on order {order}."  # your payment provider's call


class Resumer:
    """Finishes each deferred call of `tool` once the service reports its decision."""

    def __init__(self, tool: hitl_client.DeferredFunction[Any, Any], secret: str) -> None:
        self.tool = tool
        self.secret = secret
        self.seen: set[str] = set()  # webhook-ids: keep them in your database
        self.outcomes: dict[str, hitl_client.GateResult[Any] | hitl_client.NotApproved] = {}
        self.done: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        """One webhook request: the HTTP status to answer."""
        try:
            payload = hitl_client.verify_webhook(self.secret, headers, body)
        except hitl_client.InvalidSignature:
            return 400
        msg_id = {name.lower(): value for name, value in headers.items()}["webhook-id"]
        with self.lock:
            if msg_id in self.seen:  # a retry of a message already handled
                return 204
        if payload["type"] == "item.decided":
            self.decided(hitl_client.Item.from_api(payload["data"]))
        with self.lock:
            self.seen.add(msg_id)  # only once handled: a failure is answered 500 and sent again
        return 204

    def decided(self, item: hitl_client.Item) -> None:
        if item.status in ("auto_approved", "blocked"):
            return  # the gate answered these at once: the call ran then, or never
        if (item.action or {}).get("type") != self.tool.gate.action_type:
            return  # another tool's item
        try:
            outcome: hitl_client.GateResult[Any] | hitl_client.NotApproved = self.tool.resume(item)
        except hitl_client.NotApproved as exc:  # rejected, expired, cancelled: tell the user or the model
            outcome = exc
        with self.lock:
            self.outcomes[item.id] = outcome
            self.done.setdefault(item.id, threading.Event()).set()

    def wait_for(self, item_id: str, timeout: float | None = None) -> Any:
        """Block until the item's outcome arrived (for this demo; an agent would move on)."""
        with self.lock:
            event = self.done.setdefault(item_id, threading.Event())
        if not event.wait(timeout):
            raise TimeoutError(f"No decision for {item_id} yet.")
        return self.outcomes[item_id]


def serve(resumer: Resumer, host: str = "127.0.0.1", port: int = 8001) -> ThreadingHTTPServer:
    """An HTTP server for the webhooks, running in a background thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(resumer.handle(dict(self.headers.items()), body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    port = int(os.environ.get("RECEIVER_PORT", "8001"))
    client = hitl_client.Client()
    # Items made by this tool report their decision to this receiver.
    tool = client.gate("payment.refund", mode="defer", callback_url=f"http://127.0.0.1:{port}/hitl")(refund)
    resumer = Resumer(tool, os.environ["HITL_WEBHOOK_SECRET"])
    server = serve(resumer, port=port)

    outcome: Any
    try:
        outcome = tool("1182", 420.0)  # a GateResult if auto-approved, else a Pending
        if isinstance(outcome, hitl_client.Pending):
            print("waiting for review:", outcome.review_url)
            outcome = resumer.wait_for(outcome.item_id)
    except hitl_client.Blocked as exc:
        outcome = exc
    finally:
        server.shutdown()
    if isinstance(outcome, hitl_client.NotApproved):
        print("Not refunded:", outcome)
        return 1
    print(outcome.value, "(edited by the reviewer)" if outcome.edited else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
