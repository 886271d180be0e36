"""Every write that changes a review item's state, and the other writes people and
integrations make (SPEC sections 3 and 4), one module per concern:

- `integrations`: integrations, API keys, webhook secret rotation;
- `submission`: an item through the gate, and its cancellation;
- `claims`: claiming, releasing, lapsed claims;
- `decisions`: approve, edit, reject, escalate;
- `deadlines`: at-risk flags and SLA timeouts;
- `feedback`: backlog items and incidents;
- `audit`: verifying the audit trail's hash chains;
- `quality`: gold items, for measuring review quality;
- `transitions`: the moves those are made of (lock, enter a queue, escalate, close).

The admin, the REST API, management commands and Celery tasks all call these
functions; nothing else assigns `ReviewItem.status`. Each is one transaction: the
item row is locked (`select_for_update`) and its state checked again after the
lock, so two requests racing on one item serialise and the loser sees the
winner's result. The public functions are importable from here.
"""

from __future__ import annotations

from reviews.services.audit import run_audit_check
from reviews.services.claims import claim, claim_next, expire_claims, release
from reviews.services.deadlines import apply_sla_timeouts, apply_timeout, flag_at_risk
from reviews.services.decisions import decide
from reviews.services.feedback import report_incident, update_backlog_item, update_incident
from reviews.services.integrations import (
    create_integration,
    finish_secret_rotation,
    issue_api_key,
    revoke_api_key,
    rotate_webhook_secret,
    unsafe_url_errors,
)
from reviews.services.quality import seed_gold_item
from reviews.services.submission import SubmitResult, cancel, request_fingerprint, submit_item

__all__ = [
    "SubmitResult",
    "apply_sla_timeouts",
    "apply_timeout",
    "cancel",
    "claim",
    "claim_next",
    "create_integration",
    "decide",
    "expire_claims",
    "finish_secret_rotation",
    "flag_at_risk",
    "issue_api_key",
    "release",
    "run_audit_check",
    "seed_gold_item",
    "report_incident",
    "request_fingerprint",
    "revoke_api_key",
    "rotate_webhook_secret",
    "submit_item",
    "unsafe_url_errors",
    "update_backlog_item",
    "update_incident",
]
