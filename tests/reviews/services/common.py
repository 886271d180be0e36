"""Helpers shared by the service tests."""

from __future__ import annotations

from reviews import services
from tests.factories import (
    submission,
)


def submit(integration, **overrides):
    return services.submit_item(integration=integration, payload=submission(**overrides)).item


def approve(item, user, **kwargs):
    kwargs.setdefault("justification", "Checked against the source.")
    return services.decide(item=item, user=user, action="approve", **kwargs)
