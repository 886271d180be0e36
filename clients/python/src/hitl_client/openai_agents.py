"""OpenAI Agents SDK adapter: the SDK's tool approvals, decided by a reviewer here.

    from agents import Agent, Runner, function_tool
    from hitl_client.openai_agents import Approvals

    approvals = Approvals(hitl_client.Client(), run_id="conversation-42")

    @function_tool(needs_approval=approvals.needs_approval("payment.refund"))
    def refund(order: str, amount: float, currency: str) -> str: ...

    agent = Agent(name="Support", tools=[refund])
    result = Runner.run_sync(agent, "Refund order 1182")
    while result.interruptions:
        result = Runner.run_sync(agent, approvals.resolve(result))

1. `needs_approval("payment.refund")` is the tool's `needs_approval=` callable: it asks
   the service's `evaluate` (a dry run, nothing stored) whether the gate would hold
   the call. Calls the gate auto-approves run at once and leave no item; held or
   blocked ones (or any the service could not be asked about) interrupt the run.
2. `resolve(result)` submits each `ToolApprovalItem` of `result.interruptions` as an
   `action` item, waits for the decisions, and answers the SDK on the run's state:
   `state.approve(item)` for an approval, `state.reject(item, rejection_message=...)`
   for anything else. It returns the state to pass back to `Runner.run`.

The SDK has no way to run a call with other arguments than the model's, so a
reviewer's **edit** reaches the model as a rejection whose message carries the
approved arguments (`edit_message`); when the model then calls the tool again with
exactly those arguments, `needs_approval` lets that one call run without another
review (once, in this process: after a restart it is reviewed again). Rejections,
blocks and expiries reach the model as rejections whose message says why: the
reviewer's justification and reason codes (`rejection_message`).

Each interruption's Idempotency-Key comes from `run_id` and the SDK's call id, so
`resolve` may be called again (after `TimedOut`, a crash, or on a `RunState` restored
with `RunState.from_string`) and finds the same items, never second ones.

`Approvals` takes a `Client` and suits `Runner.run_sync`; `AsyncApprovals` takes an
`AsyncClient` and suits `await Runner.run(...)`. Subclass either to word the messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:
    import agents  # noqa: F401  (the SDK this adapter speaks to)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hitl_client.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'hitl-gates-client[openai-agents]'"
    ) from exc

from hitl_client import errors
from hitl_client._core import Deadline
from hitl_client.models import Evaluation, Item, Submission

if TYPE_CHECKING:
    from agents import RunContextWrapper, RunResult, RunResultStreaming, RunState, ToolApprovalItem

    from hitl_client.async_client import AsyncClient
    from hitl_client.client import Client

# A value, or a callable given the call's params (a dict) that returns it.
Option = Any
OnPending = Callable[[Submission], Any]

MAX_EXTERNAL_ID = 255


@dataclass(frozen=True, slots=True)
class ToolGate:
    """How the calls of one tool are sent to the gate (see `needs_approval`)."""

    action_type: str
    signals: Option = None
    metadata: Option = None
    context: Option = None

    def body(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "action",
            "action": {"type": self.action_type, "params": params},
            "signals": _option(self.signals, params),
            "metadata": _option(self.metadata, params),
            "context": _option(self.context, params),
        }


class NeedsApproval:
    """A tool's `needs_approval=`: True when the gate would hold (or block) the call.

    The SDK calls it with the run context, the call's parsed arguments and its call id.
    It fails closed: when the service cannot be asked, the call needs approval.
    """

    def __init__(self, approvals: _Approvals, gate: ToolGate) -> None:
        self.approvals = approvals
        self.gate = gate

    async def __call__(self, context: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
        if self.approvals._take_preapproved(self.gate.action_type, params):
            return False  # exactly the arguments a reviewer approved by editing
        try:
            evaluation = await self.approvals._evaluate(self.gate.body(params))
        except errors.HitlError:
            return True
        return evaluation.status != "auto_approved"

    def __repr__(self) -> str:
        return f"NeedsApproval({self.gate.action_type!r})"


@dataclass(frozen=True, slots=True)
class _Request:
    """One interruption, ready to submit."""

    interruption: Any  # ToolApprovalItem
    tool_name: str
    call_id: str
    gate: ToolGate
    params: dict[str, Any]
    body: dict[str, Any]
    idempotency_key: str


class _Approvals:
    """What `Approvals` and `AsyncApprovals` share: everything but the I/O."""

    def __init__(
        self,
        *,
        run_id: str | None = None,
        timeout: float | None = None,
        action_types: Mapping[str, str] | None = None,
        on_pending: OnPending | None = None,
    ) -> None:
        self.run_id = run_id
        self.timeout = timeout
        self.action_types = dict(action_types or {})
        self.on_pending = on_pending
        # The item each resolved call id was decided by, for the caller to look at.
        self.items: dict[str, Item] = {}
        self._preapproved: list[tuple[str, str]] = []

    # --- the tool's side ----------------------------------------------------------------------

    def needs_approval(
        self,
        action_type: str,
        *,
        signals: Option = None,
        metadata: Option = None,
        context: Option = None,
    ) -> NeedsApproval:
        """The `needs_approval=` of a `function_tool` whose calls are `action_type` items.

        `signals`, `metadata`, `context`: values, or callables given the call's params,
        sent with the dry run and with the submission alike (the gate's rules may read
        them).
        """
        if not isinstance(action_type, str) or not action_type:
            raise TypeError("needs_approval() needs the action type, e.g. needs_approval('payment.refund').")
        return NeedsApproval(self, ToolGate(action_type, signals=signals, metadata=metadata, context=context))

    async def _evaluate(self, body: dict[str, Any]) -> Evaluation:
        raise NotImplementedError

    # --- the messages the model reads -----------------------------------------------------------

    def rejection_message(self, item: Item, tool_name: str) -> str:
        """What the model reads when a call ended without approval: rejected (with the
        reviewer's justification and reason codes), blocked, expired or cancelled."""
        if item.status == "rejected":
            return (
                f"A human reviewer rejected this call of {tool_name}; it did not run."
                f"{_why(item)} Do not make the same call again."
            )
        if item.status == "blocked":
            names = ", ".join(rule.name for rule in item.matched_rules if rule.outcome == "block")
            return (
                f"The approval gate blocked this call of {tool_name} ({names or 'a rule'}); it did not run, "
                "and no reviewer can approve it."
            )
        if item.status == "expired":
            return f"Nobody reviewed this call of {tool_name} in time; it did not run."
        if item.status == "cancelled":
            return f"The review of this call of {tool_name} was withdrawn; it did not run."
        return f"This call of {tool_name} was not approved ({item.status}); it did not run."

    def edit_message(self, item: Item, tool_name: str, params: dict[str, Any]) -> str:
        """What the model reads when a reviewer approved the call with other arguments.

        The SDK cannot run a call with arguments other than the model's, so the edit is
        delivered as a rejection carrying the approved arguments: calling the tool again
        with exactly these runs it without another review."""
        arguments = json.dumps(params, ensure_ascii=False, sort_keys=True)
        return (
            f"A human reviewer did not approve this call of {tool_name} as proposed, and approved it "
            f"with other arguments instead; it did not run.{_why(item)} "
            f"Approved arguments: {arguments}. To go ahead, call {tool_name} again with exactly these "
            "arguments; that call will not need another review."
        )

    # --- interruptions become submissions, decisions become answers -------------------------------

    def _requests(self, result: Any) -> tuple[Any, list[_Request]]:
        state, interruptions = _state_and_interruptions(result)
        requests = []
        for interruption in interruptions:
            request = self._request(interruption)
            if request is not None:
                requests.append(request)
        return state, requests

    def _request(self, interruption: ToolApprovalItem) -> _Request | None:
        raw = interruption.raw_item
        arguments = _field(raw, "arguments")
        call_id = _field(raw, "call_id")
        if not isinstance(arguments, str) or not call_id:
            return None  # not a function tool's call (hosted MCP, shell, ...): left to the caller
        tool_name = interruption.name or str(_field(raw, "name") or "tool")
        try:
            params = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            params = {"arguments": arguments}
        if not isinstance(params, dict):
            params = {"arguments": params}
        gate = self._gate_for(interruption, tool_name)
        material = json.dumps([gate.action_type, self.run_id, str(call_id)], separators=(",", ":"))
        key = "hitl-openai-agents-" + hashlib.sha256(material.encode()).hexdigest()[:48]
        body = gate.body(params)
        body["external_id"] = (f"{self.run_id}/{call_id}" if self.run_id else str(call_id))[:MAX_EXTERNAL_ID]
        return _Request(interruption, tool_name, str(call_id), gate, params, body, key)

    def _gate_for(self, interruption: ToolApprovalItem, tool_name: str) -> ToolGate:
        """The tool's gate: named in `action_types`, else the tool's own `needs_approval`
        (found on the interrupted agent, so a restored state finds it too), else the tool
        name as the action type."""
        if tool_name in self.action_types:
            return ToolGate(self.action_types[tool_name])
        for tool in getattr(interruption.agent, "tools", None) or ():
            if getattr(tool, "name", None) == tool_name and isinstance(
                getattr(tool, "needs_approval", None), NeedsApproval
            ):
                return tool.needs_approval.gate
        return ToolGate(tool_name)

    def _answer(self, state: RunState[Any], request: _Request, item: Item) -> None:
        """Approve or reject the interruption on the state, as the item was decided."""
        self.items[request.call_id] = item
        if item.is_approved:
            final = item.final_action or {}
            params = final.get("params")
            if final.get("type") == request.gate.action_type and params == request.params:
                state.approve(request.interruption)
                return
            if final.get("type") == request.gate.action_type and isinstance(params, dict):
                self._preapproved.append((request.gate.action_type, _canonical(params)))
                message = self.edit_message(item, request.tool_name, params)
            else:
                message = (
                    f"A human reviewer approved another action ({final.get('type')!r}) instead of this "
                    f"call of {request.tool_name}; it did not run.{_why(item)}"
                )
            state.reject(request.interruption, rejection_message=message)
            return
        state.reject(request.interruption, rejection_message=self.rejection_message(item, request.tool_name))

    def _take_preapproved(self, action_type: str, params: dict[str, Any]) -> bool:
        entry = (action_type, _canonical(params))
        if entry in self._preapproved:
            self._preapproved.remove(entry)
            return True
        return False


class Approvals(_Approvals):
    """Tool approvals for `Runner.run_sync`, with a `Client`.

    `run_id`: something stable for the conversation (with the SDK's call ids it makes
    each call's Idempotency-Key). `timeout`: how long `resolve` waits in all
    (`TimedOut` after it; call it again later). `action_types`: tool name to action
    type, for tools whose `needs_approval` is not this adapter's. `on_pending`: called
    with each `Submission` held for review (to show "waiting for review: <review_url>").
    """

    def __init__(
        self,
        client: Client,
        *,
        run_id: str | None = None,
        timeout: float | None = None,
        action_types: Mapping[str, str] | None = None,
        on_pending: OnPending | None = None,
    ) -> None:
        super().__init__(run_id=run_id, timeout=timeout, action_types=action_types, on_pending=on_pending)
        self.client = client

    async def _evaluate(self, body: dict[str, Any]) -> Evaluation:
        # The SDK awaits the policy on its event loop: the blocking client runs beside it.
        return await asyncio.to_thread(lambda: self.client.evaluate(**body))

    def resolve(
        self, result: RunResult | RunResultStreaming | RunState[Any], *, timeout: float | None = None
    ) -> RunState[Any]:
        """Submit the run's interruptions, wait for their decisions, and return the run's
        state with each approved or rejected: pass it to `Runner.run_sync(agent, state)`.

        `result` is a run's result or a `RunState` (one restored after a restart, say).
        Raises `TimedOut` when the decisions take longer than `timeout` (default: the
        `timeout` given to `Approvals`); the items stay in their queues, and calling
        `resolve` again waits for the same ones.
        """
        state, requests = self._requests(result)
        submissions = [self.client.submit(**r.body, idempotency_key=r.idempotency_key) for r in requests]
        for submission in submissions:
            if submission.is_open and self.on_pending is not None:
                self.on_pending(submission)
        limit = self.timeout if timeout is None else timeout
        deadline = Deadline(limit)
        items = [self.client.wait(s.id, timeout=deadline.left()) for s in submissions]
        for request, item in zip(requests, items, strict=True):
            self._answer(state, request, item)
        return state


class AsyncApprovals(_Approvals):
    """`Approvals` for `await Runner.run(...)`, with an `AsyncClient`: `await approvals.resolve(result)`."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        run_id: str | None = None,
        timeout: float | None = None,
        action_types: Mapping[str, str] | None = None,
        on_pending: OnPending | Callable[[Submission], Awaitable[Any]] | None = None,
    ) -> None:
        super().__init__(run_id=run_id, timeout=timeout, action_types=action_types, on_pending=on_pending)
        self.client = client

    async def _evaluate(self, body: dict[str, Any]) -> Evaluation:
        return await self.client.evaluate(**body)

    async def resolve(
        self, result: RunResult | RunResultStreaming | RunState[Any], *, timeout: float | None = None
    ) -> RunState[Any]:
        """`Approvals.resolve`, awaited; the decisions are waited for side by side."""
        state, requests = self._requests(result)
        submissions = [
            await self.client.submit(**r.body, idempotency_key=r.idempotency_key) for r in requests
        ]
        for submission in submissions:
            if submission.is_open and self.on_pending is not None:
                announced = self.on_pending(submission)
                if inspect.isawaitable(announced):
                    await announced
        limit = self.timeout if timeout is None else timeout
        items = await asyncio.gather(*(self.client.wait(s.id, timeout=limit) for s in submissions))
        for request, item in zip(requests, items, strict=True):
            self._answer(state, request, item)
        return state


# --- helpers -------------------------------------------------------------------------------------


def _state_and_interruptions(result: Any) -> tuple[Any, list[Any]]:
    """The state to answer on, and its interruptions, from a run result or a RunState."""
    if hasattr(result, "get_interruptions") and hasattr(result, "approve"):  # a RunState
        return result, list(result.get_interruptions())
    if hasattr(result, "to_state") and hasattr(result, "interruptions"):
        return result.to_state(), list(result.interruptions)
    raise TypeError(f"resolve() takes a run's result or a RunState, not {type(result).__name__}.")


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _option(value: Option, params: dict[str, Any]) -> Any:
    return value(params) if callable(value) else value


def _canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def _why(item: Item) -> str:
    """' Justification: ... Reason codes: ...', or nothing when no reviewer decided."""
    decision = item.decision
    if decision is None:
        return ""
    justification = decision.justification.strip()
    if justification and justification[-1] not in ".!?":
        justification += "."
    text = f" Justification: {justification}" if justification else ""
    if decision.reason_codes:
        text += f" Reason codes: {', '.join(decision.reason_codes)}."
    return text
