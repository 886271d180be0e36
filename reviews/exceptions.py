"""Domain errors raised by the services; the API and the admin translate them.

Each carries the HTTP status it maps to and a short machine-readable code.
"""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None, errors: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.errors = errors or {}


class InvalidInput(DomainError):
    """The request breaks a rule of the domain."""

    status_code = 400
    code = "invalid"


class InvalidDecision(InvalidInput):
    """The decision breaks a rule: missing justification, wrong reason code, …"""

    code = "invalid_decision"


class NotAllowed(DomainError):
    """The user may not do this (wrong queue, same reviewer twice in four-eyes)."""

    status_code = 403
    code = "not_allowed"


class NoSuchItem(DomainError):
    """No such item, or none the caller may see (the same answer for both)."""

    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    """The item's state does not allow this right now."""

    status_code = 409
    code = "conflict"


class AlreadyDecided(Conflict):
    code = "already_decided"


class ClaimedByAnother(Conflict):
    code = "claimed_by_another"


class NotClaimed(Conflict):
    code = "not_claimed"


class IdempotencyMismatch(DomainError):
    """The same Idempotency-Key came back with a different body."""

    status_code = 422
    code = "idempotency_key_reused"
