"""The synchronous client (`AsyncClient` in `hitl_client.async_client` is the same with `await`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, ParamSpec, TypeVar, overload

import httpx

from hitl_client import _core, errors
from hitl_client.gate import DeferredFunction, Dynamic, GatedFunction, make_spec
from hitl_client.models import Evaluation, Incident, Item, Submission

P = ParamSpec("P")
R = TypeVar("R")


class Client:
    """A client of the HITL review gates API, as one integration (its API key).

    `base_url` is the service (`http://127.0.0.1:8000`), default `HITL_URL`;
    `api_key` the integration's key, default `HITL_API_KEY`. `transport` is any
    httpx transport (tests, proxies). Requests that fail on the network, with a 5xx
    or a 429 are retried as `retry` says (`Retry-After` honoured); a submission is
    retried under the same Idempotency-Key, so a retry never makes a second item.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = _core.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        *,
        retry: _core.Retry | None = None,
        poll_interval: float = 1.0,
        max_poll_interval: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = _core.resolve_base_url(base_url)
        self.retry = retry or _core.Retry()
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={
                **(headers or {}),
                "Authorization": f"Api-Key {_core.resolve_api_key(api_key)}",
                "Accept": "application/json",
                "User-Agent": _core.USER_AGENT,
            },
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    # --- the API ----------------------------------------------------------------------------------

    def submit(
        self,
        *,
        kind: Literal["output", "action"] | None = None,
        output: Mapping[str, Any] | None = None,
        action: Mapping[str, Any] | None = None,
        input: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        signals: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Submit a model output (`output=`) or an agent action (`action={"type", "params"}`)
        to the gate. `kind` defaults from which one is given.

        Without `idempotency_key` one is generated for this call (see
        `Submission.idempotency_key`); pass your own, derived from something stable
        such as conversation and turn, to make a re-run of your code safe too.
        """
        body = _core.submission_body(
            kind=kind,
            output=output,
            action=action,
            input=input,
            context=context,
            signals=signals,
            metadata=metadata,
            external_id=external_id,
            callback_url=callback_url,
        )
        key = idempotency_key or _core.new_idempotency_key()
        call = _core.Call("POST", _core.items_path(), json=body, headers={"Idempotency-Key": key})
        response = self._send(call)
        return Submission.from_api(response.json(), idempotency_key=key, replayed=response.status_code == 200)

    def evaluate(
        self,
        *,
        kind: Literal["output", "action"] | None = None,
        output: Mapping[str, Any] | None = None,
        action: Mapping[str, Any] | None = None,
        input: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        signals: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        callback_url: str | None = None,
    ) -> Evaluation:
        """Dry-run the gate: the status this submission would get. Nothing is stored."""
        body = _core.submission_body(
            kind=kind,
            output=output,
            action=action,
            input=input,
            context=context,
            signals=signals,
            metadata=metadata,
            external_id=external_id,
            callback_url=callback_url,
        )
        return Evaluation.from_api(
            self._send(_core.Call("POST", f"{_core.API_PREFIX}/evaluate/", json=body)).json()
        )

    def get(self, item: Item | Submission | str) -> Item:
        """The item whole: status, final version, decisions, `review_url`."""
        return Item.from_api(self._send(_core.Call("GET", _core.items_path(_core.item_id_of(item)))).json())

    def cancel(self, item: Item | Submission | str) -> Item:
        """Withdraw an item still waiting for review. Cancelling a cancelled item returns
        it; a decided one raises `Conflict`."""
        item_id = _core.item_id_of(item)
        try:
            response = self._send(_core.Call("POST", _core.items_path(item_id, "cancel")))
        except errors.Conflict:
            # Also the answer to a retry whose first attempt did cancel it.
            current = self.get(item_id)
            if current.status == "cancelled":
                return current
            raise
        return Item.from_api(response.json())

    def report_incident(self, item: Item | Submission | str, severity: str, description: str) -> Incident:
        """Report something harmful that got past the gate or a reviewer (`severity`:
        low, medium, high or critical)."""
        body = {"item": _core.item_id_of(item), "severity": severity, "description": description}
        # Not replayable: a retry after a lost answer would report it twice.
        call = _core.Call("POST", f"{_core.API_PREFIX}/incidents/", json=body, replayable=False)
        return Incident.from_api(self._send(call).json())

    def wait(
        self,
        item: Item | Submission | str,
        timeout: float | None = None,
        *,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
    ) -> Item:
        """Poll until the item is final and return it, whatever the outcome (see
        `Item.raise_for_outcome`). Raises `TimedOut` after `timeout` seconds (None:
        as long as it takes; the queue's SLA bounds that on the service's side).

        Intervals start at `poll_interval`, double up to `max_poll_interval`, with
        jitter; a 429 waits its `Retry-After`; network errors and 5xx answers are
        waited out like a pending item.
        """
        item_id = _core.item_id_of(item)
        deadline = _core.Deadline(timeout)
        backoff = _core.Backoff(
            self.poll_interval if poll_interval is None else poll_interval,
            self.max_poll_interval if max_poll_interval is None else max_poll_interval,
        )
        last: Item | None = None
        while True:
            try:
                last = self.get(item_id)
            except errors.RateLimited as exc:
                delay = exc.retry_after if exc.retry_after is not None else backoff.next()
            except (errors.NetworkError, errors.ServerError):
                delay = backoff.next()
            else:
                if last.is_final:
                    return last
                delay = backoff.next()
            if deadline.passed:
                raise errors.TimedOut(item_id, timeout or 0.0, last)
            time.sleep(deadline.cap(delay))

    # --- the decorator -------------------------------------------------------------------------

    @overload
    def gate(
        self,
        action_type: str | None = None,
        *,
        type: str | None = None,
        signals: Dynamic = None,
        metadata: Dynamic = None,
        context: Dynamic = None,
        input: Dynamic = None,
        output: Dynamic = None,
        external_id: Dynamic = None,
        callback_url: str | None = None,
        run_id: Dynamic = None,
        call_id: Dynamic = None,
        mode: Literal["wait"] = "wait",
        timeout: float | None = None,
        exclude: Collection[str] = (),
        on_pending: Callable[[Any], Any] | None = None,
    ) -> Callable[[Callable[P, R]], GatedFunction[P, R]]: ...

    @overload
    def gate(
        self,
        action_type: str | None = None,
        *,
        type: str | None = None,
        signals: Dynamic = None,
        metadata: Dynamic = None,
        context: Dynamic = None,
        input: Dynamic = None,
        output: Dynamic = None,
        external_id: Dynamic = None,
        callback_url: str | None = None,
        run_id: Dynamic = None,
        call_id: Dynamic = None,
        mode: Literal["defer"],
        timeout: float | None = None,
        exclude: Collection[str] = (),
        on_pending: Callable[[Any], Any] | None = None,
    ) -> Callable[[Callable[P, R]], DeferredFunction[P, R]]: ...

    def gate(
        self,
        action_type: str | None = None,
        *,
        type: str | None = None,
        signals: Dynamic = None,
        metadata: Dynamic = None,
        context: Dynamic = None,
        input: Dynamic = None,
        output: Dynamic = None,
        external_id: Dynamic = None,
        callback_url: str | None = None,
        run_id: Dynamic = None,
        call_id: Dynamic = None,
        mode: Literal["wait", "defer"] = "wait",
        timeout: float | None = None,
        exclude: Collection[str] = (),
        on_pending: Callable[[Any], Any] | None = None,
    ) -> Callable[[Callable[P, R]], GatedFunction[P, R] | DeferredFunction[P, R]]:
        """Gate a tool function: each call is an `action` item of type `action_type`
        (or `type=`) whose `params` are the call's arguments.

        `signals`, `metadata`, `context`, `input`, `output`, `external_id`: values, or
        callables given the call's params (or nothing) that return them.
        `run_id` / `call_id`: values or such callables; with a `run_id` the call's
        Idempotency-Key is derived from both (`call_id` defaults to a digest of the
        arguments), so re-running a step sends the same item again, never a second.
        `mode="wait"` (calls return a `GateResult`) or `"defer"` (a held call returns
        a `Pending`). `timeout`: how long "wait" waits (`TimedOut` after it).
        `exclude`: parameters passed through to the function, never sent for review.
        `on_pending`: called with the `Pending` handle when a call is held, before
        waiting (to show "waiting for review: <review_url>").
        """
        spec = make_spec(
            action_type,
            type,
            mode=mode,
            exclude=exclude,
            signals=signals,
            metadata=metadata,
            context=context,
            input=input,
            output=output,
            external_id=external_id,
            callback_url=callback_url,
            run_id=run_id,
            call_id=call_id,
            timeout=timeout,
            on_pending=on_pending,
        )

        def decorate(func: Callable[P, R]) -> GatedFunction[P, R] | DeferredFunction[P, R]:
            if spec.mode == "defer":
                return DeferredFunction(self, func, spec)
            return GatedFunction(self, func, spec)

        return decorate

    # --- transport ------------------------------------------------------------------------------

    def _send(self, call: _core.Call) -> httpx.Response:
        """Send `call`, retrying as `self.retry` says; a 2xx answer, or a typed error."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(call.method, call.path, json=call.json, headers=call.headers)
            except httpx.TransportError as exc:
                delay = self.retry.after_error(call, exc, attempt)
                if delay is None:
                    raise errors.NetworkError(f"{call.method} {call.path}: {exc!r}") from exc
            else:
                if response.is_success:
                    return response
                delay = self.retry.after_response(call, response, attempt)
                if delay is None:
                    raise _core.error_for(response)
            time.sleep(delay)
