"""Periodic and background work. Each task loads rows by id and calls one service."""

from __future__ import annotations

from celery import shared_task

from reviews import services


@shared_task(name="reviews.expire_claims")
def expire_claims() -> int:
    return services.expire_claims()


@shared_task(name="reviews.apply_sla_timeouts")
def apply_sla_timeouts() -> int:
    return services.apply_sla_timeouts()
