"""Background work. Each task takes ids, loads rows and calls one service; all are
safe to run twice (delivery takes a lease, sweeps re-check state under a lock).

Task messages are acknowledged when a worker starts them, not when it finishes:
the outbox, not the broker, keeps what is still to be delivered, and the sweep
hands a message whose worker died to another once its lease runs out.

What a task writes is attributed to a named system actor (`system:delivery`, ...)."""

from __future__ import annotations

from celery import shared_task

from reviews import services
from reviews.delivery import outbox, worker
from reviews.history import acting_as_system


@shared_task(name=outbox.DELIVER_TASK)
def deliver_message(message_id: int) -> str:
    with acting_as_system("delivery"):
        return worker.deliver(message_id)


@shared_task(name="reviews.sweep_outbox")
def sweep_outbox() -> int:
    with acting_as_system("delivery"):
        return outbox.sweep()


@shared_task(name="reviews.expire_claims")
def expire_claims() -> int:
    with acting_as_system("claim-expiry", reason="claim expired"):
        return services.expire_claims()


@shared_task(name="reviews.flag_at_risk")
def flag_at_risk() -> int:
    with acting_as_system("sla-sweep"):
        return services.flag_at_risk()


@shared_task(name="reviews.apply_sla_timeouts")
def apply_sla_timeouts() -> int:
    with acting_as_system("sla-sweep"):
        return services.apply_sla_timeouts()


@shared_task(name="reviews.verify_audit")
def verify_audit() -> bool:
    with acting_as_system("verify-audit"):
        return services.run_audit_check().ok
