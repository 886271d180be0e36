"""Typed errors. Every error the API answers carries its machine-readable `code`
(`{"detail", "code"}` in the API's answer); an item that ended without approval
raises one of the `NotApproved` errors, which carry the item.

    HitlError
    ├── ApiError                      code, detail, status_code
    │   ├── InvalidRequest            400, 413, 415 (field errors in .errors)
    │   ├── AuthenticationFailed      401
    │   ├── PermissionDenied          403
    │   ├── NotFound                  404
    │   ├── Conflict                  409
    │   ├── IdempotencyConflict       422: the key was used with another body
    │   ├── RateLimited               429 (.retry_after), once the retries are spent
    │   ├── ServerError               5xx, once the retries are spent
    │   ├── NetworkError              no answer, once the retries are spent
    │   ├── TimedOut                  wait(timeout=...) ran out; the item is still open
    │   ├── StillPending              resume() on an item nobody has decided yet
    │   └── NotApproved               the item ended without approval (.item)
    │       ├── Rejected              .justification, .reason_codes, .reviewer
    │       ├── Blocked               a gate rule refused it (.matched_rules)
    │       ├── Expired               its deadline passed
    │       └── Cancelled             withdrawn
    ├── InvalidEdit                   the reviewer's final action does not fit the tool
    └── InvalidSignature              a webhook failed verification
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from hitl_client.models import Item, MatchedRule


class HitlError(Exception):
    """The root of every error this package raises."""

    code: str = "error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class ApiError(HitlError):
    """The API refused a request, or an item did not end the way the caller needs.

    `code` is the API's machine-readable code (`not_found`, `already_decided`,
    `throttled`, …) or, for outcomes, the item's status (`rejected`, …).
    """

    code = "api_error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        errors: dict[str, Any] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(detail, code=code)
        self.status_code = status_code
        self.errors: dict[str, Any] = errors or {}
        self.response = response

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, status_code={self.status_code!r}, detail={self.detail!r})"


class InvalidRequest(ApiError):
    """400 (field errors in `errors`), 413 (body too large) or 415."""

    code = "invalid"


class AuthenticationFailed(ApiError):
    code = "authentication_failed"


class PermissionDenied(ApiError):
    code = "permission_denied"


class NotFound(ApiError):
    """No such item, or it belongs to another integration."""

    code = "not_found"


class Conflict(ApiError):
    """The item's state forbids it: cancelling a decided item, say."""

    code = "conflict"


class IdempotencyConflict(ApiError):
    """The Idempotency-Key was already used with a different body."""

    code = "idempotency_key_reused"


class RateLimited(ApiError):
    """429. `retry_after` is the wait in seconds the API asked for (None if it named none)."""

    code = "throttled"

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    code = "server_error"


class NetworkError(ApiError):
    """No answer came (connection refused, reset, timed out); the cause is chained."""

    code = "network_error"


class TimedOut(ApiError):
    """`wait(timeout=...)` ran out before the item was decided. The item stays in
    its queue; wait again, or `cancel` it."""

    code = "timed_out"

    def __init__(self, item_id: str, timeout: float, item: Item | None = None) -> None:
        super().__init__(f"Item {item_id} was not decided within {timeout:g} seconds.")
        self.item_id = item_id
        self.timeout = timeout
        self.item = item


class StillPending(ApiError):
    """`resume()` was given an item that is still waiting for a reviewer."""

    code = "pending"

    def __init__(self, item: Item) -> None:
        super().__init__(f"Item {item.id} is still {item.status}.")
        self.item = item


class NotApproved(ApiError):
    """The item ended without approval; nothing may run. `item` is its final state."""

    def __init__(self, item: Item, detail: str | None = None) -> None:
        super().__init__(detail or f"Item {item.id} was {item.status}.", code=item.status)
        self.item = item

    @property
    def item_id(self) -> str:
        return self.item.id

    @property
    def review_url(self) -> str | None:
        return self.item.review_url


class Rejected(NotApproved):
    """A reviewer rejected it. `justification` and `reason_codes` say why: hand them
    back to the model."""

    code = "rejected"

    def __init__(self, item: Item) -> None:
        decision = item.decision
        self.justification: str = decision.justification if decision else ""
        self.reason_codes: tuple[str, ...] = decision.reason_codes if decision else ()
        self.reviewer: str | None = decision.reviewer if decision else None
        codes = f" ({', '.join(self.reason_codes)})" if self.reason_codes else ""
        super().__init__(item, f"Rejected by {self.reviewer or 'a reviewer'}{codes}: {self.justification}")


class Blocked(NotApproved):
    """A gate rule refused it at submission; no reviewer can approve it."""

    code = "blocked"

    def __init__(self, item: Item) -> None:
        self.matched_rules: tuple[MatchedRule, ...] = item.matched_rules
        names = ", ".join(rule.name for rule in self.matched_rules if rule.outcome == "block")
        super().__init__(item, f"Blocked by the gate ({names or 'a rule'}).")


class Expired(NotApproved):
    """Nobody decided it before its deadline; a timeout never approves."""

    code = "expired"


class Cancelled(NotApproved):
    code = "cancelled"


class InvalidEdit(HitlError):
    """The approved action cannot be run by this tool: another type, or parameters the
    function does not take. Nothing ran."""

    code = "invalid_edit"


class InvalidSignature(HitlError):
    """A webhook's signature, or its timestamp, did not check out: refuse the request."""

    code = "invalid_signature"


def refusal_message(exc: NotApproved) -> str:
    """Why a call may not run, in words a model can act on: a rejection keeps the
    reviewer's justification and reason codes (the adapters hand it to the model)."""
    if isinstance(exc, Expired):
        return "Nobody approved it before its review deadline (expired)."
    if isinstance(exc, Cancelled):
        return "Its review was cancelled."
    return str(exc)  # "Rejected by <reviewer> (<codes>): <justification>", "Blocked by the gate (...)."
