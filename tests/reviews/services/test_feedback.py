"""Feedback: backlog items from reason codes, incidents from spot checks and reports."""

from __future__ import annotations

import pytest

from reviews import services
from reviews.exceptions import (
    InvalidInput,
)
from reviews.models import BacklogItem, ExecutionStatus, Incident, ItemStatus
from tests.factories import (
    GateRuleFactory,
    action_submission,
)
from tests.reviews.services.common import approve, submit


def test_rejections_with_a_backlog_code_open_then_update_one_backlog_item(
    integration, review_all, queue, reviewer, codes
):
    for _ in range(2):
        services.decide(
            item=submit(integration),
            user=reviewer,
            action="reject",
            justification="Leaked data.",
            reason_codes=["missing_guardrail", "factual_error"],
        )
    backlog = BacklogItem.objects.get()
    assert backlog.reason_code.code == "missing_guardrail" and backlog.queue == queue
    assert backlog.decisions.count() == 2


def test_approvals_never_open_backlog_items(integration, review_all, reviewer, codes):
    approve(submit(integration), reviewer, reason_codes=["verified"])
    assert not BacklogItem.objects.exists()


def test_rejected_spot_check_opens_an_incident_on_the_original(integration, queue, reviewer, codes):
    GateRuleFactory(name="Sample", outcome="spot_check", queue=queue)
    original = submit(integration)
    copy = original.spot_checks.get()
    services.decide(
        item=copy,
        user=reviewer,
        action="reject",
        justification="Wrong hours.",
        reason_codes=["factual_error"],
    )
    incident = Incident.objects.get()
    assert incident.item == original and incident.source == Incident.Source.SPOT_CHECK
    copy.refresh_from_db()
    assert copy.execution_status == ExecutionStatus.NOT_REQUIRED


def test_approved_spot_check_of_an_action_never_executes(integration, queue, reviewer):
    GateRuleFactory(name="Sample", outcome="spot_check", queue=queue)
    original = services.submit_item(integration=integration, payload=action_submission()).item
    copy = original.spot_checks.get()
    approve(copy, reviewer)
    copy.refresh_from_db()
    assert copy.status == ItemStatus.APPROVED
    assert copy.execution_status == ExecutionStatus.NOT_REQUIRED


def test_incident_links_the_decision_that_let_the_item_through(integration, review_all, reviewer):
    item = submit(integration)
    decision = approve(item, reviewer)
    incident = services.report_incident(
        item=item, severity="high", description="Wrong hours told.", integration=integration
    )
    assert incident.decision == decision and incident.source == Incident.Source.INTEGRATION


@pytest.mark.parametrize(("severity", "description"), [("extreme", "x"), ("high", "  ")])
def test_incident_needs_a_known_severity_and_a_description(integration, severity, description):
    item = submit(integration)
    with pytest.raises(InvalidInput):
        services.report_incident(
            item=item, severity=severity, description=description, integration=integration
        )
