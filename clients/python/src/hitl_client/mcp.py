"""An MCP server that gates any MCP host's actions here: `python -m hitl_client.mcp`.

    HITL_URL=http://127.0.0.1:8000 HITL_API_KEY=hitl_... python -m hitl_client.mcp

It speaks stdio (the host starts it) and has two tools:

- `request_approval(action_type, params, ...)` submits the action and answers at once
  with its `id`, `status` and `review_url` (the page where a person decides it). An
  action the gate auto-approves comes back `auto_approved`, one it refuses `blocked`;
  a held one comes back `pending`: show the link, go on with other work, come back.
- `get_approval_status(id, wait_seconds=0)` answers the item's `status` and, once it
  is final, the decision: `approved` (true for approved, edited and auto-approved),
  `final_action` (the action to run, the reviewer's edit included; null otherwise),
  `edited`, `decision`, `reviewer`, `justification` and `reason_codes`.

Because the decision lives in the service, not in a callback, a host can come back
for it minutes or days later, well past any client's request timeout. Only ever run
`final_action`, never the action as first proposed.

Built on the official `mcp` package (`MCPServer`, version 2). The module's absolute
imports reach that package, not this module.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("hitl_client.mcp needs the MCP SDK 2: pip install 'hitl-gates-client[mcp]'") from exc

from hitl_client import errors
from hitl_client._version import __version__
from hitl_client.async_client import AsyncClient
from hitl_client.models import Item, Submission

NAME = "hitl-review-gates"
MAX_WAIT_SECONDS = 50.0  # under the usual tool-call timeouts of MCP hosts

INSTRUCTIONS = """\
Human review gates for consequential actions (refunds, emails, deletions, payments).
Before such an action, call request_approval with its type (e.g. "payment.refund") and
its parameters. If the status is "auto_approved", go ahead with final_action. If it is
"pending", tell the user that the action waits for review at review_url, and call
get_approval_status later with the id. Run the action only when approved is true, and
only as final_action (a reviewer may have edited it). When it was rejected, tell the
user why (justification, reason_codes) and do not retry the same action.
"""


def build_server(client: AsyncClient) -> MCPServer:
    """The MCP server, its tools answering through `client` (an integration's key)."""
    server = MCPServer(NAME, instructions=INSTRUCTIONS, version=__version__)

    @server.tool(
        annotations=ToolAnnotations(title="Request approval", read_only_hint=False, idempotent_hint=True)
    )
    async def request_approval(
        action_type: str,
        params: dict[str, Any],
        reasoning: str | None = None,
        signals: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        external_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit an action for human review before running it; answers at once.

        Args:
            action_type: What the action is, e.g. "payment.refund" or "email.send".
            params: The action's parameters, e.g. {"order": "1182", "amount": 420.0}.
            reasoning: Why you want to take this action, for the reviewer.
            signals: Optional scores the gate's rules may read, e.g. {"confidence": 0.6}.
            metadata: Optional facts about the request, e.g. {"user_id": "u-77"}.
            external_id: Optional id of this step in your own records.
            idempotency_key: Send the same key when retrying this very request, so it
                is not submitted twice.

        Returns the item's id, status and review_url (where a person decides it). Status
        "pending" means it waits for review: call get_approval_status later.
        """
        try:
            submission = await client.submit(
                action={"type": action_type, "params": params},
                context={"reasoning": reasoning} if reasoning else None,
                signals=signals,
                metadata=metadata,
                external_id=external_id,
                idempotency_key=idempotency_key,
            )
            item = None if submission.is_open else await client.get(submission.id)
        except errors.ApiError as exc:
            raise _tool_error(exc) from exc
        return _submitted(submission, item)

    @server.tool(annotations=ToolAnnotations(title="Get approval status", read_only_hint=True))
    async def get_approval_status(id: str, wait_seconds: float = 0) -> dict[str, Any]:
        """The review status of an action submitted with request_approval and, once it is
        final, the decision: run the action only if approved is true, and only as final_action.

        Args:
            id: The id request_approval answered.
            wait_seconds: Wait up to this long (at most 50 seconds) for a decision
                before answering; 0 answers at once.
        """
        try:
            if wait_seconds > 0:
                try:
                    item = await client.wait(id, timeout=min(float(wait_seconds), MAX_WAIT_SECONDS))
                except errors.TimedOut as exc:
                    item = exc.item or await client.get(id)
            else:
                item = await client.get(id)
        except ValueError as exc:  # not an item id
            raise ToolError(str(exc)) from exc
        except errors.ApiError as exc:
            raise _tool_error(exc) from exc
        return status_of(item)

    return server


def status_of(item: Item) -> dict[str, Any]:
    """What `get_approval_status` answers for an item."""
    answer: dict[str, Any] = {
        "id": item.id,
        "status": item.status,
        "final": item.is_final,
        "approved": item.is_approved,
        "queue": item.queue,
        "review_url": item.review_url,
        "due_at": item.due_at.isoformat() if item.due_at else None,
    }
    if not item.is_final:
        answer["message"] = "Waiting for a reviewer: ask again later."
        return answer
    decision = item.decision
    answer.update(
        final_action=item.final_action if item.is_approved else None,
        edited=bool(item.is_approved and item.final_action != item.action),
        decision=decision.action if decision else None,
        reviewer=decision.reviewer if decision else None,
        justification=decision.justification if decision else None,
        reason_codes=list(decision.reason_codes) if decision else [],
        decided_at=item.decided_at.isoformat() if item.decided_at else None,
    )
    if item.status == "blocked":
        answer["blocked_by"] = [rule.name for rule in item.matched_rules if rule.outcome == "block"]
    answer["message"] = _outcome(item)
    return answer


def _submitted(submission: Submission, item: Item | None) -> dict[str, Any]:
    if item is not None:  # decided by the gate at once: auto-approved or blocked
        return status_of(item)
    return {
        "id": submission.id,
        "status": submission.status,
        "final": False,
        "approved": False,
        "queue": submission.queue,
        "review_url": submission.review_url,
        "due_at": submission.due_at.isoformat() if submission.due_at else None,
        "message": "Waiting for a reviewer: do not run the action yet; call get_approval_status later.",
    }


def _outcome(item: Item) -> str:
    if item.is_approved:
        return "Approved: run final_action (exactly as given)."
    return {
        "rejected": "Rejected by a reviewer: do not run it; tell the user the justification.",
        "blocked": "Blocked by a gate rule: do not run it; no reviewer can approve it.",
        "expired": "Nobody reviewed it in time: do not run it.",
        "cancelled": "Withdrawn: do not run it.",
    }.get(item.status, f"Not approved ({item.status}): do not run it.")


def _tool_error(exc: errors.ApiError) -> ToolError:
    return ToolError(f"The review service refused the request ({exc.code}): {exc.detail}")


def main() -> int:
    """Serve on stdio, configured from HITL_URL and HITL_API_KEY."""
    try:
        client = AsyncClient()
    except ValueError as exc:
        print(f"hitl_client.mcp: {exc}", file=sys.stderr)
        return 2
    anyio.run(_serve, client)
    return 0


async def _serve(client: AsyncClient) -> None:
    async with client:  # closed in the loop it ran in
        await build_server(client).run_stdio_async()


if __name__ == "__main__":
    sys.exit(main())
