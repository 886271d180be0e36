"""Fixtures of the service tests: a gate that holds everything, reason codes, queues."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from tests.factories import (
    GateRuleFactory,
    QueueFactory,
    ReasonCodeFactory,
)


@pytest.fixture
def review_all(queue):
    """Every submission is held in the general queue."""
    return GateRuleFactory(name="Review everything", queue=queue, outcome="review", risk_level="medium")


@pytest.fixture
def codes(db):
    return {
        "factual_error": ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"]),
        "missing_guardrail": ReasonCodeFactory(
            code="missing_guardrail", applies_to=["reject", "edit"], creates_backlog_item=True
        ),
        "verified": ReasonCodeFactory(code="verified", applies_to=["approve"]),
        "needs_expert": ReasonCodeFactory(code="needs_expert", applies_to=["escalate"]),
        "retired": ReasonCodeFactory(code="retired", applies_to=["reject"], active=False),
    }


@pytest.fixture
def four_eyes(queue):
    queue.required_approvals = 2
    queue.save()
    return queue


@pytest.fixture
def one_approval(reviewer, other_reviewer):
    """A one-approval queue that both reviewers review too."""
    group = Group.objects.create(name="quick-reviewers")
    quick = QueueFactory(slug="quick", name="Quick", required_approvals=1)
    quick.reviewer_groups.add(group)
    for user in (reviewer, other_reviewer):
        user.groups.add(group)
    return quick
