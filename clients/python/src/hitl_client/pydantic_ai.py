"""Pydantic AI agents whose tool calls a person approves, edits or rejects in HITL
review gates: `DeferredToolRequests` in, `DeferredToolResults` out.

    from pydantic_ai import Agent, DeferredToolRequests
    from hitl_client.pydantic_ai import Gate

    agent = Agent(model, output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def refund(order: str, amount: float) -> str: ...

    gate = Gate(hitl_client.Client(), action_types={"refund": "payment.refund"})
    result = agent.run_sync("Refund order 1182")
    while isinstance(result.output, DeferredToolRequests):
        results = gate.resolve(result)  # submits each call, waits for the decisions
        result = agent.run_sync(message_history=result.all_messages(), deferred_tool_results=results)

An approval is `ToolApproved()`, an edit `ToolApproved(override_args=<the reviewer's
parameters>)`, a rejection (or a block, an expiry) `ToolDenied(message=...)` whose
message carries the reviewer's justification and reason codes to the model. Each
item's Idempotency-Key comes from the conversation id and the tool call id, so
resolving the same requests again (after a restart, say) finds the same items.

`gate.capability()` resolves them inside the run instead (Pydantic AI's
`HandleDeferredToolCalls`), for an agent that may wait there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

try:
    from pydantic_ai import DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied
    from pydantic_ai.capabilities import HandleDeferredToolCalls
    from pydantic_ai.messages import ToolCallPart
    from pydantic_ai.tools import RunContext
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"hitl_client.pydantic_ai needs Pydantic AI: pip install 'hitl-gates-client[pydantic-ai]' ({exc})"
    ) from exc

from hitl_client import errors
from hitl_client._core import Deadline
from hitl_client.async_client import AsyncClient
from hitl_client.client import Client
from hitl_client.gate import gate_key
from hitl_client.models import Item, Submission

__all__ = ["Gate", "refusal_message"]

MAX_EXTERNAL_ID = 255
AUTO_ANSWERER = "hitl-gate"

# A value, or a callable given the ToolCallPart that returns it.
Option = Any


refusal_message = errors.refusal_message  # kept importable from here


class Gate:
    """Approval-requiring tool calls of a Pydantic AI agent, decided by the service.

    `client`: a `Client` (for `resolve`, and `aresolve` in a thread) or an
    `AsyncClient` (for `aresolve` and `capability`). `action_types` maps a tool's
    name to the item's action type (`{"refund": "payment.refund"}`, or a callable); a
    tool not named is its own type. `signals`, `metadata`, `context`: values, or
    callables given the `ToolCallPart`, sent with each item (the same answer every
    time: a reused Idempotency-Key with another body is refused). `timeout`: how
    long to wait for the decisions (`TimedOut` after it). `on_pending`: called with
    the `Submission` of each call held for review, once (to show "waiting for
    review: <review_url>").
    """

    def __init__(
        self,
        client: Client | AsyncClient,
        *,
        action_types: Mapping[str, str] | Callable[[str], str] | None = None,
        signals: Option = None,
        metadata: Option = None,
        context: Option = None,
        timeout: float | None = None,
        on_pending: Callable[[Submission], Any] | None = None,
    ) -> None:
        self.client = client
        self.on_pending = on_pending
        self.action_types = action_types or {}
        self.signals = signals
        self.metadata = metadata
        self.context = context
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Gate({self.client!r})"

    def action_type(self, tool_name: str) -> str:
        if callable(self.action_types):
            return self.action_types(tool_name)
        return self.action_types.get(tool_name, tool_name)

    # --- between runs -------------------------------------------------------------------

    def resolve(
        self,
        requests: Any,
        *,
        conversation_id: str | None = None,
        timeout: float | None = None,
        wait: bool = True,
    ) -> DeferredToolResults:
        """Submit each call in `requests.approvals`, wait for the decisions, and return
        the results to pass as `deferred_tool_results=` to the next run.

        `requests` is a `DeferredToolRequests` or the run's result whose output it is
        (then `conversation_id` comes from the result). With `wait=False` only the
        calls decided by now are in the results (`requests.remaining(results)` are
        the others).
        """
        client = self._client(Client, "resolve")
        requests, conversation_id = _requests_of(requests, conversation_id)
        submissions = [
            self._announce(client.submit(**self._submission(part, conversation_id))).id
            for part in requests.approvals
        ]
        deadline = Deadline(self.timeout if timeout is None else timeout)
        items: list[Item | None] = []
        for item_id in submissions:
            if wait:
                items.append(client.wait(item_id, timeout=deadline.left()))
            else:
                item = client.get(item_id)
                items.append(None if item.is_open else item)
        return self._results(requests.approvals, items)

    async def aresolve(
        self,
        requests: Any,
        *,
        conversation_id: str | None = None,
        timeout: float | None = None,
        wait: bool = True,
    ) -> DeferredToolResults:
        """`resolve`, awaited: natively with an `AsyncClient`, in a thread with a `Client`."""
        if isinstance(self.client, Client):
            return await asyncio.to_thread(
                self.resolve, requests, conversation_id=conversation_id, timeout=timeout, wait=wait
            )
        client = self._client(AsyncClient, "aresolve")
        requests, conversation_id = _requests_of(requests, conversation_id)
        submissions = [
            self._announce(await client.submit(**self._submission(part, conversation_id))).id
            for part in requests.approvals
        ]
        deadline = Deadline(self.timeout if timeout is None else timeout)
        items: list[Item | None] = []
        for item_id in submissions:
            if wait:
                items.append(await client.wait(item_id, timeout=deadline.left()))
            else:
                item = await client.get(item_id)
                items.append(None if item.is_open else item)
        return self._results(requests.approvals, items)

    # --- inside a run -------------------------------------------------------------------

    def capability(self) -> HandleDeferredToolCalls[Any]:
        """A capability that resolves approval requests inside the run, waiting there
        for the decisions: `Agent(model, capabilities=[gate.capability()])`. External
        calls (`requests.calls`) are left for you."""

        async def handler(ctx: RunContext[Any], requests: DeferredToolRequests) -> DeferredToolResults | None:
            if not requests.approvals:
                return None
            return await self.aresolve(requests, conversation_id=ctx.conversation_id)

        return HandleDeferredToolCalls(handler=handler)

    # --- one call -------------------------------------------------------------------------

    def result_for(self, part: ToolCallPart, item: Item) -> ToolApproved | ToolDenied:
        """What the decided `item` means for the call: approved (with the reviewer's
        arguments when they were edited) or denied, with the reason."""
        try:
            item.raise_for_outcome()  # StillPending on an open item
        except errors.NotApproved as exc:
            return ToolDenied(message=f"The call did not run. {refusal_message(exc)}")
        final = item.final_action or {}
        expected = self.action_type(part.tool_name)
        params = final.get("params")
        if final.get("type") != expected or not isinstance(params, dict):
            raise errors.InvalidEdit(
                f"The approved action of item {item.id} is {final.get('type')!r}, not {expected!r} "
                "with parameters: nothing ran."
            )
        if params != part.args_as_dict():
            return ToolApproved(override_args=dict(params))
        return ToolApproved()

    def idempotency_key(self, part: ToolCallPart, conversation_id: str | None) -> str:
        """The same for every submission of this call in this conversation."""
        return gate_key(self.action_type(part.tool_name), conversation_id or "", part.tool_call_id)

    def _submission(self, part: ToolCallPart, conversation_id: str | None) -> dict[str, Any]:
        external_id = f"{conversation_id}/{part.tool_call_id}" if conversation_id else part.tool_call_id
        return {
            "action": {"type": self.action_type(part.tool_name), "params": part.args_as_dict()},
            "signals": _option(self.signals, part),
            "metadata": _option(self.metadata, part),
            "context": _option(self.context, part),
            "external_id": external_id[:MAX_EXTERNAL_ID],
            "idempotency_key": self.idempotency_key(part, conversation_id),
        }

    def _announce(self, submission: Submission) -> Submission:
        if self.on_pending is not None and submission.is_open and not submission.replayed:
            self.on_pending(submission)  # "waiting for review: <review_url>", once per item
        return submission

    def _results(self, parts: list[ToolCallPart], items: list[Item | None]) -> DeferredToolResults:
        results = DeferredToolResults()
        for part, item in zip(parts, items, strict=True):
            if item is None:
                continue
            results.approvals[part.tool_call_id] = self.result_for(part, item)
            # The tool reads these as ctx.tool_call_metadata: item.id is a good
            # idempotency key for its own side effect.
            results.metadata[part.tool_call_id] = {
                "hitl_item_id": item.id,
                "hitl_status": item.status,
                "hitl_review_url": item.review_url,
            }
            results.answered_by[part.tool_call_id] = item.reviewer or AUTO_ANSWERER
        return results

    def _client(self, cls: type, method: str) -> Any:
        if not isinstance(self.client, cls):
            other = "aresolve" if method == "resolve" else "resolve"
            raise TypeError(
                f"Gate.{method} needs a {cls.__name__}; with a {type(self.client).__name__}, use {other}."
            )
        return self.client


def _requests_of(requests: Any, conversation_id: str | None) -> tuple[DeferredToolRequests, str | None]:
    """`DeferredToolRequests`, from themselves or from a run's result whose output they are."""
    if isinstance(requests, DeferredToolRequests):
        return requests, conversation_id
    output = getattr(requests, "output", None)
    if not isinstance(output, DeferredToolRequests):
        raise TypeError(
            f"Expected DeferredToolRequests, or a run's result whose output they are, not {requests!r}."
        )
    return output, conversation_id or getattr(requests, "conversation_id", None)


def _option(value: Option, part: ToolCallPart) -> Any:
    return value(part) if callable(value) else value
