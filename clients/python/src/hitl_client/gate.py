"""`client.gate(...)`: a tool function whose every call is an `action` item.

    client = hitl_client.Client()

    @client.gate("payment.refund")
    def refund(order: str, amount: float, currency: str = "EUR") -> dict: ...

    result = refund("1182", 420.0)   # GateResult: .value, .edited, .params, .item

A call is submitted as `{"kind": "action", "action": {"type": "payment.refund",
"params": {"order": "1182", "amount": 420.0, "currency": "EUR"}}}` (the call's
arguments, defaults included). Auto-approved, the function runs at once; held, the
call waits for a reviewer; approved, the function runs with the *final* parameters,
the reviewer's edit when there is one. A rejection raises `Rejected`, a block
`Blocked`, an expiry `Expired`: then nothing ran.

`mode="defer"` never waits: a held call returns a `Pending` handle at once, which
`.result()` (wait, then run) or `.resume(item)` (run now, given the decided item,
for instance from the `item.decided` webhook) completes, in this process or, through
`gated.resume(item)`, in another one after a restart.

The idempotency key of a call is derived from `run_id` and `call_id` when given
(values, or callables reading the run from wherever the framework keeps it), so a
framework that re-runs a step sends the same key again and gets the first item back,
not a second one. Without them each call is a new item.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar

from hitl_client import errors
from hitl_client.models import Item, Submission

if TYPE_CHECKING:
    from hitl_client.async_client import AsyncClient
    from hitl_client.client import Client

P = ParamSpec("P")
R = TypeVar("R")
Self = TypeVar("Self", bound="_Gated[Any, Any]")

Mode = Literal["wait", "defer"]
# A value, or a callable taking no argument or the call's params (a dict) and returning it.
Dynamic = Any

MAX_EXTERNAL_ID = 255


@dataclass(frozen=True, slots=True)
class Approval:
    """Why a gated call may run, and with what.

    `params` are the parameters the function runs with: the reviewer's edit when
    there is one. `edited` is True when they differ from `original_params`, what the
    call proposed. `item` is the decided item (its `id` is a good idempotency key
    for the tool's own side effect: a re-run of an approved call finds the same id).
    """

    item: Item
    edited: bool
    params: dict[str, Any]
    original_params: dict[str, Any]

    @property
    def item_id(self) -> str:
        return self.item.id

    @property
    def review_url(self) -> str | None:
        return self.item.review_url

    @property
    def auto_approved(self) -> bool:
        return self.item.status == "auto_approved"


@dataclass(frozen=True, slots=True)
class GateResult(Approval, Generic[R]):
    """What a gated call returns: the function's `value`, and the `Approval` it ran under."""

    value: R


_current: ContextVar[Approval | None] = ContextVar("hitl_client_approval", default=None)


def current_approval() -> Approval | None:
    """Inside a gated function while it runs: the approval it runs under (the item,
    whether a reviewer edited the parameters). None anywhere else."""
    return _current.get()


@dataclass(frozen=True, slots=True)
class GateSpec:
    """The decorator's options (see `Client.gate`)."""

    action_type: str
    signals: Dynamic = None
    metadata: Dynamic = None
    context: Dynamic = None
    input: Dynamic = None
    output: Dynamic = None
    external_id: Dynamic = None
    callback_url: str | None = None
    run_id: Dynamic = None
    call_id: Dynamic = None
    mode: Mode = "wait"
    timeout: float | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)
    on_pending: Callable[[Any], Any] | None = None


def make_spec(
    action_type: str | None,
    type_: str | None,
    *,
    mode: str,
    exclude: Collection[str],
    **options: Any,
) -> GateSpec:
    if action_type and type_ and action_type != type_:
        raise TypeError("Pass the action type once: gate('payment.refund') or gate(type='payment.refund').")
    chosen = action_type or type_
    if not isinstance(chosen, str) or not chosen:
        raise TypeError("gate() needs the action type, e.g. gate('payment.refund').")
    if mode not in ("wait", "defer"):
        raise ValueError(f"mode is 'wait' or 'defer', not {mode!r}.")
    if isinstance(exclude, str):
        exclude = (exclude,)
    return GateSpec(action_type=chosen, mode=mode, exclude=frozenset(exclude), **options)  # type: ignore[arg-type]


def resolve(value: Dynamic, params: dict[str, Any]) -> Any:
    """A decorator option's value for one call: called if callable (with the call's
    params when it takes an argument)."""
    if not callable(value):
        return value
    try:
        takes_params = bool(inspect.signature(value).parameters)
    except (TypeError, ValueError):  # some builtins have no signature
        takes_params = True
    return value(params) if takes_params else value()


def gate_key(action_type: str, run_id: Any, call_id: Any) -> str:
    """The Idempotency-Key of one tool call of one run: the same on every re-run."""
    material = json.dumps([action_type, str(run_id), str(call_id)], separators=(",", ":"))
    return "hitl-gate-" + hashlib.sha256(material.encode()).hexdigest()[:48]


def params_digest(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return "params-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """One call of a gated function, ready to submit."""

    body: dict[str, Any]
    idempotency_key: str | None
    params: dict[str, Any]
    passthrough: dict[str, Any]


class _Gated(Generic[P, R]):
    """What the sync and async gated functions share: turning a call into a submission
    and a decided item back into a call."""

    def __init__(self, func: Callable[..., Any], spec: GateSpec) -> None:
        self.__wrapped__ = func
        self.gate = spec
        self.signature = inspect.signature(func)
        self._instance: Any = None
        self._name: str = getattr(func, "__qualname__", repr(func))
        names = list(self.signature.parameters)
        # A method's `self` (or `cls`) is never a tool parameter.
        self._hidden = set(spec.exclude)
        if names and names[0] in ("self", "cls"):
            self._hidden.add(names[0])
        unknown = self._hidden - set(names)
        if unknown:
            raise TypeError(
                f"exclude names no parameter of {func.__qualname__}: {', '.join(sorted(unknown))}"
            )
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            with contextlib.suppress(AttributeError):
                setattr(self, attr, getattr(func, attr))

    # --- as a method -------------------------------------------------------------------

    def __get__(self: Self, instance: Any, owner: type | None = None) -> Self:
        if instance is None:
            return self
        bound = self._copy()
        bound._instance = instance
        return bound

    def _copy(self: Self) -> Self:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def using(self: Self, *, run_id: Dynamic = None, call_id: Dynamic = None) -> Self:
        """The same gated function with this run's ids, for one call or a few:
        `refund.using(run_id=thread_id, call_id=tool_call_id)("1182", 420.0)`."""
        clone = self._copy()
        clone.gate = replace(
            self.gate,
            run_id=self.gate.run_id if run_id is None else run_id,
            call_id=self.gate.call_id if call_id is None else call_id,
        )
        return clone

    # --- a call becomes a submission -------------------------------------------------------

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> PreparedCall:
        if self._instance is not None:
            args = (self._instance, *args)
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        params: dict[str, Any] = {}
        passthrough: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if name in self._hidden:
                passthrough[name] = value
            elif kind is inspect.Parameter.VAR_KEYWORD:
                params.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                params[name] = list(value)
            else:
                params[name] = value
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"The arguments of a gated call are sent for review, so they must be JSON values "
                f"({self._name}: {exc}); pass others through with exclude=[...]."
            ) from exc

        spec = self.gate
        run_id = resolve(spec.run_id, params)
        key = None
        external_id = resolve(spec.external_id, params)
        if run_id is not None:
            call_id = resolve(spec.call_id, params)
            if call_id is None:
                call_id = params_digest(params)  # the same step with the same arguments
            key = gate_key(spec.action_type, run_id, call_id)
            if external_id is None:
                external_id = f"{run_id}/{call_id}"[:MAX_EXTERNAL_ID]
        body = {
            "kind": "action",
            "action": {"type": spec.action_type, "params": params},
            "input": resolve(spec.input, params),
            "output": resolve(spec.output, params),
            "context": resolve(spec.context, params),
            "signals": resolve(spec.signals, params),
            "metadata": resolve(spec.metadata, params),
            "external_id": external_id,
            "callback_url": spec.callback_url,
        }
        return PreparedCall(body=body, idempotency_key=key, params=params, passthrough=passthrough)

    # --- a decided item becomes a call -------------------------------------------------------

    def _approval(self, item: Item) -> Approval:
        """Check that `item` approves a call of this tool; raise NotApproved otherwise."""
        item.raise_for_outcome()
        action = item.action or {}
        final = item.final_action or {}
        if action.get("type") != self.gate.action_type:
            raise errors.InvalidEdit(
                f"Item {item.id} is a {action.get('type')!r} action, not {self.gate.action_type!r}."
            )
        if final.get("type") != self.gate.action_type:
            raise errors.InvalidEdit(
                f"The approved action of item {item.id} is {final.get('type')!r}, "
                f"not {self.gate.action_type!r}."
            )
        params = final.get("params") or {}
        original = action.get("params") or {}
        if not isinstance(params, dict) or not isinstance(original, dict):
            raise errors.InvalidEdit(f"The action of item {item.id} has no parameter object.")
        return Approval(item=item, edited=params != original, params=params, original_params=original)

    def _arguments(self, approval: Approval, passthrough: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The function's arguments from the final parameters (plus the excluded ones)."""
        if self._instance is not None:
            passthrough = {next(iter(self.signature.parameters)): self._instance, **passthrough}
        params = dict(approval.params)
        parameters = self.signature.parameters
        has_var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters.values())
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        var_keyword = False
        for name, parameter in parameters.items():
            kind = parameter.kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                var_keyword = True
                continue
            if name in self._hidden:
                if name not in passthrough:
                    if parameter.default is inspect.Parameter.empty:
                        raise TypeError(f"Pass {name}= to resume {self._name}: it is not sent for review.")
                    continue
                value = passthrough[name]
            elif name in params:
                value = params.pop(name)
            else:
                continue  # the default applies, or binding below names what is missing
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if not isinstance(value, list):
                    raise errors.InvalidEdit(f"{name} must be a list in the approved parameters.")
                args.extend(value)
            elif kind is inspect.Parameter.POSITIONAL_ONLY or (
                kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and has_var_positional
            ):
                args.append(value)
            else:
                kwargs[name] = value
        if params:
            if not var_keyword:
                raise errors.InvalidEdit(
                    f"The approved parameters of item {approval.item.id} name what "
                    f"{self._name} does not take: {', '.join(sorted(params))}. Nothing ran."
                )
            kwargs.update(params)
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise errors.InvalidEdit(
                f"The approved parameters of item {approval.item.id} do not fit {self._name}: {exc}. "
                "Nothing ran."
            ) from exc
        return args, kwargs


@dataclass(frozen=True, slots=True, kw_only=True)
class _PendingBase:
    item_id: str
    review_url: str | None
    status: str
    idempotency_key: str | None
    params: dict[str, Any]
    passthrough: dict[str, Any] = field(default_factory=dict, repr=False)

    def _check(self, item: Item) -> Item:
        if item.id != self.item_id:
            raise ValueError(f"This handle is for item {self.item_id}, not {item.id}.")
        return item


def _pending_fields(submission: Submission, prepared: PreparedCall) -> dict[str, Any]:
    return {
        "item_id": submission.id,
        "review_url": submission.review_url,
        "status": submission.status,
        "idempotency_key": submission.idempotency_key,
        "params": prepared.params,
        "passthrough": prepared.passthrough,
    }


# --- sync ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending(_PendingBase, Generic[P, R]):
    """A held call (mode="defer"): the item waits for a reviewer, nothing ran yet.

    Show `review_url` to whoever should decide; finish the call with `result()`
    (waits) or `resume(item)` (now, with the decided item, e.g. from a webhook).
    After a restart, `gated.resume(item_id)` does the same without this handle.
    """

    function: _SyncGated[P, R] = field(repr=False, compare=False)

    def refresh(self) -> Item:
        """The item as it stands now."""
        return self.function.client.get(self.item_id)

    def result(self, timeout: float | None = None) -> GateResult[R]:
        """Wait until the item is decided, then run the call with the final parameters."""
        item = self.function.client.wait(self.item_id, timeout=timeout)
        return self.resume(item)

    def resume(self, item: Item | None = None) -> GateResult[R]:
        """Run the call now: with `item` (already decided, say from `item.decided`), or
        with the item fetched once. Raises StillPending while nobody has decided."""
        item = self._check(item) if item is not None else self.refresh()
        return self.function._run(item, self.passthrough)


class _SyncGated(_Gated[P, R]):
    def __init__(self, client: Client, func: Callable[P, R], spec: GateSpec) -> None:
        if inspect.iscoroutinefunction(func):
            raise TypeError(f"{func.__qualname__} is async: gate it with AsyncClient.gate.")
        super().__init__(func, spec)
        self.client = client

    def defer(self, *args: P.args, **kwargs: P.kwargs) -> GateResult[R] | Pending[P, R]:
        """Submit the call; run it at once if auto-approved, else return a `Pending`."""
        prepared = self._prepare(args, kwargs)
        submission = self.client.submit(**prepared.body, idempotency_key=prepared.idempotency_key)
        if submission.is_open:
            return Pending(**_pending_fields(submission, prepared), function=self)
        return self._run(self.client.get(submission.id), prepared.passthrough)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> GateResult[R]:
        """Submit the call, wait for the decision (up to the gate's `timeout`), run it."""
        outcome = self.defer(*args, **kwargs)
        if isinstance(outcome, Pending):
            if self.gate.on_pending is not None:
                self.gate.on_pending(outcome)  # "waiting for review: <review_url>"
            return outcome.result(timeout=self.gate.timeout)
        return outcome

    def resume(self, item: Item | str, **passthrough: Any) -> GateResult[R]:
        """Finish a call from its decided item (or item id), in any process: runs the
        function with the final parameters. Excluded parameters are passed here."""
        if not isinstance(item, Item):
            item = self.client.get(item)
        return self._run(item, passthrough)

    def _run(self, item: Item, passthrough: dict[str, Any]) -> GateResult[R]:
        approval = self._approval(item)
        args, kwargs = self._arguments(approval, passthrough)
        token = _current.set(approval)
        try:
            value = self.__wrapped__(*args, **kwargs)
        finally:
            _current.reset(token)
        return GateResult(**_fields(approval), value=value)


class GatedFunction(_SyncGated[P, R]):
    """A tool function gated in mode "wait": calling it returns a `GateResult` once it ran."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> GateResult[R]:
        return self.call(*args, **kwargs)


class DeferredFunction(_SyncGated[P, R]):
    """A tool function gated in mode "defer": a held call returns a `Pending` at once."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> GateResult[R] | Pending[P, R]:
        return self.defer(*args, **kwargs)


# --- async -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AsyncPending(_PendingBase, Generic[P, R]):
    """`Pending` for `AsyncClient`: the same, with `await`."""

    function: _AsyncGated[P, R] = field(repr=False, compare=False)

    async def refresh(self) -> Item:
        return await self.function.client.get(self.item_id)

    async def result(self, timeout: float | None = None) -> GateResult[R]:
        item = await self.function.client.wait(self.item_id, timeout=timeout)
        return await self.resume(item)

    async def resume(self, item: Item | None = None) -> GateResult[R]:
        item = self._check(item) if item is not None else await self.refresh()
        return await self.function._run(item, self.passthrough)


class _AsyncGated(_Gated[P, R]):
    """Gates an async tool function (a sync one works too: it is called, not awaited)."""

    def __init__(self, client: AsyncClient, func: Callable[P, Awaitable[R]] | Callable[P, R], spec: GateSpec):
        super().__init__(func, spec)
        self.client = client

    async def defer(self, *args: P.args, **kwargs: P.kwargs) -> GateResult[R] | AsyncPending[P, R]:
        prepared = self._prepare(args, kwargs)
        submission = await self.client.submit(**prepared.body, idempotency_key=prepared.idempotency_key)
        if submission.is_open:
            return AsyncPending(**_pending_fields(submission, prepared), function=self)
        return await self._run(await self.client.get(submission.id), prepared.passthrough)

    async def call(self, *args: P.args, **kwargs: P.kwargs) -> GateResult[R]:
        outcome = await self.defer(*args, **kwargs)
        if isinstance(outcome, AsyncPending):
            if self.gate.on_pending is not None:
                announced = self.gate.on_pending(outcome)
                if inspect.isawaitable(announced):
                    await announced
            return await outcome.result(timeout=self.gate.timeout)
        return outcome

    async def resume(self, item: Item | str, **passthrough: Any) -> GateResult[R]:
        if not isinstance(item, Item):
            item = await self.client.get(item)
        return await self._run(item, passthrough)

    async def _run(self, item: Item, passthrough: dict[str, Any]) -> GateResult[R]:
        approval = self._approval(item)
        args, kwargs = self._arguments(approval, passthrough)
        token = _current.set(approval)
        try:
            value = self.__wrapped__(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        finally:
            _current.reset(token)
        return GateResult(**_fields(approval), value=value)


class AsyncGatedFunction(_AsyncGated[P, R]):
    """An async tool function gated in mode "wait": `await refund(...)` gives a `GateResult`."""

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> GateResult[R]:
        return await self.call(*args, **kwargs)


class AsyncDeferredFunction(_AsyncGated[P, R]):
    """An async tool function gated in mode "defer": a held call gives an `AsyncPending`."""

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> GateResult[R] | AsyncPending[P, R]:
        return await self.defer(*args, **kwargs)


def _fields(approval: Approval) -> dict[str, Any]:
    return {
        "item": approval.item,
        "edited": approval.edited,
        "params": approval.params,
        "original_params": approval.original_params,
    }
