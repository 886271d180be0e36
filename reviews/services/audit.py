"""Checking the audit trail: verify the hash chains and keep what was found
(`AuditCheck`), for the daily task and the `verify_audit` command."""

from __future__ import annotations

import logging
from collections.abc import Callable

from reviews import chain
from reviews.history import current_actor
from reviews.models import AuditCheck

logger = logging.getLogger(__name__)


def run_audit_check(progress: Callable[[str, int], None] | None = None) -> AuditCheck:
    """Verify every chain and record the result, intact or not."""
    result = chain.verify(progress)
    actor = current_actor()
    check = AuditCheck.objects.create(
        ok=result.ok,
        checked=result.checked,
        broken_link=str(result.broken) if result.broken else "",
        heads=result.heads,
        actor=str(actor) if actor else "unattributed",
    )
    if not result.ok:
        logger.error("Audit chain broken: %s", result.broken)
    return check
