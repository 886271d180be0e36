"""Python client for HITL review gates.

    import hitl_client

    client = hitl_client.Client()  # HITL_URL, HITL_API_KEY

    @client.gate("payment.refund")
    def refund(order: str, amount: float, currency: str = "EUR") -> dict: ...

See the package's README for submit / wait / cancel, `mode="defer"`, the errors and
`verify_webhook`.
"""

from hitl_client._core import Retry
from hitl_client._version import __version__
from hitl_client.async_client import AsyncClient
from hitl_client.client import Client
from hitl_client.errors import (
    ApiError,
    AuthenticationFailed,
    Blocked,
    Cancelled,
    Conflict,
    Expired,
    HitlError,
    IdempotencyConflict,
    InvalidEdit,
    InvalidRequest,
    InvalidSignature,
    NetworkError,
    NotApproved,
    NotFound,
    PermissionDenied,
    RateLimited,
    Rejected,
    ServerError,
    StillPending,
    TimedOut,
)
from hitl_client.gate import (
    Approval,
    AsyncDeferredFunction,
    AsyncGatedFunction,
    AsyncPending,
    DeferredFunction,
    GatedFunction,
    GateResult,
    GateSpec,
    Pending,
    current_approval,
)
from hitl_client.models import Decision, Evaluation, Incident, Item, MatchedRule, Submission
from hitl_client.webhooks import verify_webhook

__all__ = [
    "__version__",
    # clients
    "AsyncClient",
    "Client",
    "Retry",
    # results
    "Decision",
    "Evaluation",
    "Incident",
    "Item",
    "MatchedRule",
    "Submission",
    # the decorator
    "Approval",
    "AsyncDeferredFunction",
    "AsyncGatedFunction",
    "AsyncPending",
    "DeferredFunction",
    "GateResult",
    "GateSpec",
    "GatedFunction",
    "Pending",
    "current_approval",
    # webhooks
    "verify_webhook",
    # errors
    "ApiError",
    "AuthenticationFailed",
    "Blocked",
    "Cancelled",
    "Conflict",
    "Expired",
    "HitlError",
    "IdempotencyConflict",
    "InvalidEdit",
    "InvalidRequest",
    "InvalidSignature",
    "NetworkError",
    "NotApproved",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Rejected",
    "ServerError",
    "StillPending",
    "TimedOut",
]
