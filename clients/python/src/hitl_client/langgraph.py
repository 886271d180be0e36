"""LangGraph and LangChain agents whose tool calls a person approves, edits or rejects
in HITL review gates.

    from hitl_client.langgraph import Gate

    gate = Gate(hitl_client.Client(), action_types={"refund": "payment.refund"})

Two ways in:

- **In a node of your graph**: `gate.review(tool_calls)` submits the calls and
  pauses the graph with `interrupt()` until each one is decided, then returns a
  `Review` per call (`approved`, the final `args`, the refusal `message`).
  `gate.tool_node(tools)` is such a node, ready made: it runs approved calls with the
  final arguments and answers refused ones with a ToolMessage carrying the reviewer's
  justification and reason codes.
- **With langchain's `HumanInTheLoopMiddleware`**: the service decides in place of a
  person at the terminal; `gate.resume(agent, config)` answers the middleware's
  interrupts (batched or per call) with `approve`, `edit` (`edited_action`) or
  `reject` (`message`).

Either way the graph is driven by the same loop:

    config = {"configurable": {"thread_id": "conv-42"}}
    graph.invoke(inputs, config)
    while (command := gate.resume(graph, config)) is not None:  # waits for the decisions
        graph.invoke(command, config)

Each item's Idempotency-Key comes from the thread id and the tool call id, so
LangGraph's re-run of an interrupted node, or a driver that restarts and submits
again, finds the item it made and never creates a second one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

try:
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.tools import BaseTool
    from langgraph.config import get_config
    from langgraph.types import Command, interrupt
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"hitl_client.langgraph needs LangGraph: pip install 'hitl-gates-client[langgraph]' ({exc})"
    ) from exc

from hitl_client import errors
from hitl_client._core import Deadline
from hitl_client.client import Client
from hitl_client.gate import gate_key
from hitl_client.models import Item, Submission

__all__ = ["INTERRUPT_TYPE", "Gate", "Review", "refusal_message"]

INTERRUPT_TYPE = "hitl_review"
"""The `type` of the interrupt value `Gate.review` pauses with."""

MAX_EXTERNAL_ID = 255

# A value, or a callable given the tool call ({"name", "args", "id"}) that returns it.
Option = Any


class _Graph(Protocol):
    def get_state(self, config: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Review:
    """What the service decided about one tool call.

    `args` are the arguments the tool may run with (the reviewer's edit when there is
    one), None when it may not run; then `message` says why, for the model.
    """

    tool_call: dict[str, Any]
    item: Item
    args: dict[str, Any] | None
    message: str | None = None

    @property
    def approved(self) -> bool:
        return self.args is not None

    @property
    def edited(self) -> bool:
        return self.args is not None and self.args != self.tool_call.get("args")

    @property
    def decision(self) -> dict[str, Any]:
        """The decision as `HumanInTheLoopMiddleware` takes it."""
        if self.args is None:
            return {"type": "reject", "message": self.message or ""}
        if self.edited:
            return {"type": "edit", "edited_action": {"name": self.tool_call["name"], "args": self.args}}
        return {"type": "approve"}

    def to_tool_call(self) -> dict[str, Any]:
        """The call to run: the model's, with the final arguments."""
        if self.args is None:
            raise errors.NotApproved(self.item, self.message)
        return {**self.tool_call, "args": self.args, "type": "tool_call"}

    def tool_message(self) -> ToolMessage:
        """The answer to a refused call: the model reads why it did not run."""
        name = self.tool_call.get("name")
        return ToolMessage(
            content=f"The call to `{name}` did not run. {self.message}",
            name=name,
            tool_call_id=self.tool_call.get("id") or "",
            status="error",
        )


refusal_message = errors.refusal_message  # kept importable from here


class Gate:
    """Tool calls of a LangGraph graph, gated by the service.

    `action_types` maps a tool's name to the item's action type (`{"refund":
    "payment.refund"}`, or a callable); a tool not named is its own type.
    `signals`, `metadata`, `context`: values, or callables given the tool call, sent
    with each item; callables must give the same answer on a re-run (the service
    refuses a reused Idempotency-Key with another body). `timeout`: how long
    `resume` waits for the decisions (`TimedOut` after it; the graph stays paused).
    `on_pending`: called with the `Submission` of each call held for review, once
    (to show "waiting for review: <review_url>").
    """

    def __init__(
        self,
        client: Client,
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

    # --- one tool call ---------------------------------------------------------------------

    def action_type(self, tool_name: str) -> str:
        if callable(self.action_types):
            return self.action_types(tool_name)
        return self.action_types.get(tool_name, tool_name)

    def idempotency_key(self, tool_call: Mapping[str, Any], thread_id: str) -> str:
        """The same for every submission of this call in this thread."""
        return gate_key(self.action_type(tool_call["name"]), thread_id, _call_id(tool_call))

    def submit(
        self, tool_call: Mapping[str, Any], *, thread_id: str, description: str | None = None
    ) -> Submission:
        """Submit one tool call as an action item (again: the same item, `replayed`)."""
        call = dict(tool_call)
        context = _option(self.context, call)
        if description:
            context = {"description": description, **(context or {})}
        submission = self.client.submit(
            action={"type": self.action_type(call["name"]), "params": dict(call.get("args") or {})},
            context=context,
            signals=_option(self.signals, call),
            metadata=_option(self.metadata, call),
            external_id=f"{thread_id}/{_call_id(call)}"[:MAX_EXTERNAL_ID],
            idempotency_key=self.idempotency_key(call, thread_id),
        )
        if self.on_pending is not None and submission.is_open and not submission.replayed:
            self.on_pending(submission)  # "waiting for review: <review_url>", once per item
        return submission

    def review_of(self, tool_call: Mapping[str, Any], item: Item) -> Review:
        """The `Review` of a tool call from its decided item."""
        call = dict(tool_call)
        try:
            item.raise_for_outcome()  # StillPending on an open item
        except errors.NotApproved as exc:
            return Review(call, item, args=None, message=refusal_message(exc))
        final = item.final_action or {}
        expected = self.action_type(call["name"])
        if final.get("type") != expected or not isinstance(final.get("params"), dict):
            raise errors.InvalidEdit(
                f"The approved action of item {item.id} is {final.get('type')!r}, not {expected!r} "
                "with parameters: nothing ran."
            )
        return Review(call, item, args=dict(final["params"]))

    # --- in a node ----------------------------------------------------------------------

    def review(self, tool_calls: Iterable[Mapping[str, Any]]) -> list[Review]:
        """In a node: submit the tool calls, pause the graph until every one is
        decided, and return their reviews, in order.

        The pause is an `interrupt()` (the graph needs a checkpointer); `resume`
        answers it once the items are decided. On resume LangGraph runs the node
        again from the top: the calls are submitted again under the same keys, which
        finds the same items, and their decisions are read from the service (a
        resume that comes too early only pauses again).
        """
        calls = [dict(call) for call in tool_calls]
        thread_id = _thread_id(_node_config())
        items = [self.client.get(self.submit(call, thread_id=thread_id)) for call in calls]
        while waiting := [index for index, item in enumerate(items) if item.is_open]:
            interrupt(
                {
                    "type": INTERRUPT_TYPE,
                    "items": [_pending(calls[index], items[index]) for index in waiting],
                }
            )
            for index in waiting:
                items[index] = self.client.get(items[index].id)
        return [self.review_of(call, item) for call, item in zip(calls, items, strict=True)]

    def tool_node(
        self,
        tools: Sequence[BaseTool],
        *,
        gated: Collection[str] | None = None,
        messages_key: str = "messages",
    ) -> Callable[[Any], dict[str, list[Any]]]:
        """A node that runs the tool calls of the last AI message once the service
        allows them: with the final arguments, or not at all (a ToolMessage with the
        reason). `gated`: the names of the tools to review (default: all); the others
        run without a review, after the reviewed ones are decided."""
        by_name = {tool.name: tool for tool in tools}

        def hitl_tools(state: Any) -> dict[str, list[Any]]:
            messages = state[messages_key] if isinstance(state, Mapping) else getattr(state, messages_key)
            last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
            calls = list(last.tool_calls) if last is not None else []
            reviewed = [call for call in calls if gated is None or call["name"] in gated]
            reviews = {id(call): review for call, review in zip(reviewed, self.review(reviewed), strict=True)}
            results: list[Any] = []
            for call in calls:
                review = reviews.get(id(call))
                if review is not None and not review.approved:
                    results.append(review.tool_message())
                    continue
                run = review.to_tool_call() if review is not None else {**call, "type": "tool_call"}
                tool = by_name.get(run["name"])
                if tool is None:
                    results.append(
                        ToolMessage(
                            content=f"There is no tool named `{run['name']}`.",
                            name=run["name"],
                            tool_call_id=run.get("id") or "",
                            status="error",
                        )
                    )
                    continue
                results.append(tool.invoke(run))
            return {messages_key: results}

        return hitl_tools

    # --- outside the graph ----------------------------------------------------------------

    def resume(
        self, graph: _Graph, config: Mapping[str, Any], *, timeout: float | None = None, wait: bool = True
    ) -> Command | None:
        """The `Command(resume=...)` that answers the thread's pending interrupts once
        the service decided them, or None when none of them is one this gate knows.

        It answers `Gate.review`'s pauses and `HumanInTheLoopMiddleware`'s (batched
        or per call, which it submits first), waiting up to `timeout` (default: the
        gate's) for the decisions. With `wait=False` it returns None while any is
        still open. Other interrupts of the graph are left unanswered: add yours to
        the command's `resume` mapping.
        """
        snapshot = graph.get_state(config)
        pending = self._pending(snapshot, _thread_id(config))
        if not pending:
            return None
        deadline = Deadline(self.timeout if timeout is None else timeout)
        answers: dict[str, Any] = {}
        for paused in pending:
            items = []
            for _, item_id in paused.entries:
                item = self._decided(item_id, deadline, wait)
                if item is None:
                    return None
                items.append(item)
            answers[paused.interrupt_id] = self._answer(paused, items)
        return Command(resume=answers)

    def _pending(self, snapshot: Any, thread_id: str) -> list[_Pending]:
        """The interrupts this gate answers, their calls submitted (again: the same items)."""
        pending: list[_Pending] = []
        for paused in snapshot.interrupts:
            value = paused.value
            if not isinstance(value, Mapping):
                continue
            if value.get("type") == INTERRUPT_TYPE:  # Gate.review, in a node
                entries = [(None, entry["item_id"]) for entry in value["items"]]
                pending.append(_Pending(paused.id, "node", entries))
            elif value.get("type") == "tool_approval":  # HumanInTheLoopMiddleware, per call
                call = {"name": value["name"], "args": value["args"], "id": value["tool_call_id"]}
                submission = self.submit(call, thread_id=thread_id, description=value.get("description"))
                allowed = _allowed_in_schema(getattr(paused, "response_schema", None))
                pending.append(_Pending(paused.id, "per_call", [(call, submission.id)], [allowed]))
            elif "action_requests" in value:  # HumanInTheLoopMiddleware, batched
                requests = list(value["action_requests"])
                calls = _calls_of(requests, snapshot.values)
                configs = {
                    c.get("action_name"): c.get("allowed_decisions") for c in value.get("review_configs", ())
                }
                entries = [
                    (call, self.submit(call, thread_id=thread_id, description=request.get("description")).id)
                    for call, request in zip(calls, requests, strict=True)
                ]
                allowed_by_call = [configs.get(call["name"]) for call in calls]
                pending.append(_Pending(paused.id, "batched", entries, allowed_by_call))
        return pending

    def _answer(self, paused: _Pending, items: list[Item]) -> Any:
        """The resume value of one interrupt, its items decided."""
        if paused.kind == "node":
            return {"decided": [item.id for item in items]}  # the node reads the decisions itself
        decisions = [
            _middleware_decision(self.review_of(call or {}, item), allowed)
            for (call, _), item, allowed in zip(paused.entries, items, paused.allowed or [], strict=True)
        ]
        return decisions[0] if paused.kind == "per_call" else {"decisions": decisions}

    def _decided(self, item_id: str, deadline: Deadline, wait: bool) -> Item | None:
        if not wait:
            item = self.client.get(item_id)
            return None if item.is_open else item
        remaining = deadline.left()
        return self.client.wait(item_id, timeout=remaining)


@dataclass(frozen=True, slots=True)
class _Pending:
    """One interrupt of the thread and the items that answer it."""

    interrupt_id: str
    kind: str  # node, per_call, batched
    entries: list[tuple[dict[str, Any] | None, str]]  # (tool call, item id)
    allowed: list[Collection[str] | None] | None = None


def _middleware_decision(review: Review, allowed: Collection[str] | None) -> dict[str, Any]:
    """`review.decision`, unless the tool takes no edits: then an edit is refused (the
    model's arguments were not approved), the edited ones named in the message."""
    decision = review.decision
    if decision["type"] == "edit" and allowed is not None and "edit" not in allowed:
        return {
            "type": "reject",
            "message": (
                "A reviewer approved this call only with other arguments "
                f"({json.dumps(review.args, default=str)}), and this tool takes no edits."
            ),
        }
    return decision


def _allowed_in_schema(schema: Any) -> set[str] | None:
    """The decision types a per-call interrupt's `response_schema` allows (None: unknown)."""
    if not isinstance(schema, Mapping):
        return None
    mapping = (schema.get("discriminator") or {}).get("mapping")
    if isinstance(mapping, Mapping):
        return set(mapping)
    const = ((schema.get("properties") or {}).get("type") or {}).get("const")
    return {const} if isinstance(const, str) else None


def _calls_of(requests: Sequence[Mapping[str, Any]], values: Any) -> list[dict[str, Any]]:
    """The tool calls behind a batched `HITLRequest`'s action requests (which carry no
    ids): those of the last AI message with the same name and arguments, in order."""
    messages = values.get("messages", ()) if isinstance(values, Mapping) else ()
    last = next((m for m in reversed(messages) if isinstance(m, AIMessage) and m.tool_calls), None)
    candidates = list(last.tool_calls) if last is not None else []
    calls = []
    for request in requests:
        match = next(
            (c for c in candidates if c["name"] == request["name"] and c["args"] == request["args"]), None
        )
        if match is not None:
            candidates.remove(match)
            calls.append(dict(match))
        else:
            calls.append({"name": request["name"], "args": dict(request["args"]), "id": None})
    return calls


def _pending(call: Mapping[str, Any], item: Item) -> dict[str, Any]:
    return {
        "item_id": item.id,
        "status": item.status,
        "review_url": item.review_url,
        "tool_call_id": call.get("id"),
        "name": call.get("name"),
        "args": call.get("args"),
    }


def _call_id(tool_call: Mapping[str, Any]) -> str:
    """The tool call's id; for a model that gives none, a digest of the call."""
    if tool_call.get("id"):
        return str(tool_call["id"])
    canonical = json.dumps([tool_call.get("name"), tool_call.get("args")], sort_keys=True, default=str)
    return "call-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _option(value: Option, call: dict[str, Any]) -> Any:
    return value(call) if callable(value) else value


def _node_config() -> Mapping[str, Any]:
    try:
        return get_config()
    except RuntimeError as exc:
        raise RuntimeError("Gate.review runs inside a LangGraph node (it pauses the graph).") from exc


def _thread_id(config: Mapping[str, Any]) -> str:
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if thread_id in (None, ""):
        raise ValueError('The graph needs a thread: config={"configurable": {"thread_id": ...}}.')
    return str(thread_id)
