"""What the sync and the async client share, without any I/O: configuration, the
requests each method makes, when to retry, and how answers become results or errors."""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from hitl_client import errors
from hitl_client._version import __version__

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = f"hitl-gates-client/{__version__} httpx/{httpx.__version__}"

# Connection failures that happen before a request leaves this machine: retrying
# those can never make the server act twice, whatever the request.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def resolve_base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get("HITL_URL") or "").strip()
    if not url:
        raise ValueError("No service URL: pass base_url= or set HITL_URL (e.g. http://127.0.0.1:8000).")
    url = url.rstrip("/")
    # Accept the API's own address as well as the service's.
    return url.removesuffix(API_PREFIX)


def resolve_api_key(api_key: str | None) -> str:
    key = (api_key or os.environ.get("HITL_API_KEY") or "").strip()
    if not key:
        raise ValueError("No API key: pass api_key= or set HITL_API_KEY.")
    return key


def new_idempotency_key() -> str:
    return f"hitl-client-{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class Call:
    """One API request. `replayable`: sending it twice has the effect of sending it
    once (reads, `evaluate`, a submission under its Idempotency-Key), so it may be
    retried after a reply was lost. Others are retried only when they surely never
    reached the server (a refused connection, a 429)."""

    method: str
    path: str
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    replayable: bool = True


@dataclass(frozen=True, slots=True)
class Retry:
    """How requests are retried after a network error, a 5xx or a 429.

    `attempts` counts every try of one request. Delays grow exponentially from
    `backoff` up to `max_backoff` seconds, with jitter; a 429's `Retry-After` is
    honoured as given, unless it asks for more than `max_wait` seconds, in which
    case `RateLimited` is raised at once with `retry_after` set.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_wait: float = 60.0

    def delay(self, attempt: int) -> float:
        return jittered(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    def after_error(self, call: Call, exc: httpx.TransportError, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None to give up."""
        if attempt >= self.attempts:
            return None
        if call.replayable or isinstance(exc, NOT_SENT):
            return self.delay(attempt)
        return None

    def after_response(self, call: Call, response: httpx.Response, attempt: int) -> float | None:
        if attempt >= self.attempts:
            return None
        if response.status_code == 429:
            # Throttling refuses a request before the view runs: always safe to send again.
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None:
                return self.delay(attempt)
            return retry_after if retry_after <= self.max_wait else None
        if response.status_code >= 500 and call.replayable:
            return self.delay(attempt)
        return None


def jittered(seconds: float) -> float:
    """Between half and all of `seconds` ("equal jitter"), so that many clients that
    failed together do not come back together."""
    return seconds * (0.5 + random.random() / 2)


class Backoff:
    """Polling intervals: `initial`, doubling up to `maximum`, each with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.current = max(0.0, initial)
        self.maximum = max(self.current, maximum)

    def next(self) -> float:
        delay = jittered(self.current)
        self.current = min(self.maximum, self.current * 2)
        return delay


class Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def left(self) -> float | None:
        """What is left of the timeout, never below zero (None: no limit)."""
        remaining = self.remaining()
        return None if remaining is None else max(0.0, remaining)

    def cap(self, delay: float) -> float:
        remaining = self.remaining()
        return delay if remaining is None else max(0.0, min(delay, remaining))

    @property
    def passed(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


STATUS_ERRORS: dict[int, type[errors.ApiError]] = {
    400: errors.InvalidRequest,
    401: errors.AuthenticationFailed,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.InvalidRequest,
    415: errors.InvalidRequest,
    422: errors.IdempotencyConflict,
}


def error_for(response: httpx.Response) -> errors.ApiError:
    """The typed error for an answer that is not a success."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail, code, field_errors = _describe(body, response)
    status = response.status_code
    common: dict[str, Any] = {"status_code": status, "errors": field_errors, "response": response}
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return errors.RateLimited(detail, code=code or "throttled", retry_after=retry_after, **common)
    if status >= 500:
        return errors.ServerError(detail, code=code or "server_error", **common)
    cls = STATUS_ERRORS.get(status, errors.ApiError)
    return cls(detail, code=code, **common)


def _describe(body: Any, response: httpx.Response) -> tuple[str, str | None, dict[str, Any]]:
    if isinstance(body, Mapping):
        detail = body.get("detail")
        code = body.get("code") if isinstance(body.get("code"), str) else None
        nested = body.get("errors") if isinstance(body.get("errors"), Mapping) else None
        if isinstance(detail, str):
            return detail, code, dict(nested or {})
        # DRF field errors: {"field": ["message", ...], ...}
        fields = dict(body)
        summary = "; ".join(f"{name}: {' '.join(map(str, _as_list(msgs)))}" for name, msgs in fields.items())
        return summary or response.reason_phrase, code or "invalid", fields
    text = response.text.strip()[:200]
    return text or response.reason_phrase or f"HTTP {response.status_code}", None, {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def item_id_of(item: Any) -> str:
    """An item id from an id (str or UUID) or anything with an `id` (an Item, a Submission).

    Ids are UUIDs; anything else is refused before it can become part of a URL path.
    """
    value = getattr(item, "id", item)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ValueError(f"Expected an item id (a UUID) or an item, not {item!r}.")


def submission_body(
    *,
    kind: str | None,
    output: Any,
    action: Mapping[str, Any] | None,
    input: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    signals: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    external_id: str | None,
    callback_url: str | None,
) -> dict[str, Any]:
    """The body of `POST /api/v1/items/` and `/evaluate/`, without the keys left out."""
    if kind is None:
        if action is not None:
            kind = "action"
        elif output is not None:
            kind = "output"
        else:
            raise ValueError("Pass output= (an output item) or action= (an action item).")
    body: dict[str, Any] = {"kind": kind}
    for name, value in (
        ("external_id", external_id),
        ("input", input),
        ("output", output),
        ("action", action),
        ("context", context),
        ("signals", signals),
        ("metadata", metadata),
        ("callback_url", callback_url),
    ):
        if value is not None:
            body[name] = dict(value) if isinstance(value, Mapping) else value
    return body


def items_path(item_id: str | None = None, command: str | None = None) -> str:
    path = f"{API_PREFIX}/items/"
    if item_id is not None:
        path += f"{item_id}/"
    if command is not None:
        path += f"{command}/"
    return path
