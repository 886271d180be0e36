"""A small, fully known history of reviews, built through the services at chosen times,
from which the tests work out every metric by hand (see `EXPECTED` in test_selectors).

Queues: `general` (one approval, SLA 60 min, expires on timeout, escalates by hand to
`expert`), `four-eyes` (two approvals) and `expert` (reviewed by other_reviewer only).
T is ten hours before NOW; the tests' window is the day before NOW.

    general   G0  submitted NOW-8d-1h, approved NOW-8d (outside every window)
              G1  submitted T, claimed T+20m, approved T+30m by reviewer
              G2  submitted T, claimed T+100m, edited T+120m by other_reviewer (late)
              G3  submitted T+60m, rejected T+75m by reviewer (no claim)
              G4  action, submitted T+60m, claimed T+85m, escalated T+90m by reviewer
              G5  submitted T+120m, expired by the SLA sweep at T+240m
              G6  submitted NOW-30m, pending (at risk at NOW)
              G7  submitted NOW-2h, claimed NOW-10m by reviewer (past its SLA)
    expert    G4  claimed T+180m, approved T+210m by other_reviewer (late); its
                  execution fails (no action URL, one attempt allowed)
    four-eyes F1  action, submitted T; reviewer claims T+30m, approves T+40m; other_reviewer
                  claims T+70m, approves T+80m (late); its execution is pending
              F2  submitted T; reviewer edits T+20m, other_reviewer approves T+50m
              F3  submitted T+120m; reviewer approves T+130m, other_reviewer rejects T+150m
    no queue  A1  action, auto-approved at T; its execution is pending

Incidents: high on G1 (NOW-1h), medium on F2 (NOW-2h), critical on G4 (NOW-3h),
low on G0 (NOW-3d), low on A1 (NOW-1h).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.utils import timezone

from reviews import services
from reviews.delivery import worker
from reviews.models import Incident, OutboxMessage, Queue, ReviewItem
from tests.factories import (
    GateConditionFactory,
    GateRuleFactory,
    QueueFactory,
    ReasonCodeFactory,
    action_submission,
    submission,
)


@contextlib.contextmanager
def clock(moment: datetime):
    """Everything that asks `timezone.now()` meanwhile gets `moment`."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


@dataclass
class Story:
    now: datetime
    since: datetime
    until: datetime
    general: Queue
    four_eyes: Queue
    expert: Queue
    items: dict[str, ReviewItem] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()


@pytest.fixture
def story(integration, reviewer, other_reviewer, queue, settings) -> Story:
    settings.HITL_DELIVERY_MAX_ATTEMPTS = 1
    now = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    start = now - timedelta(hours=10)

    def at(minutes: float) -> datetime:
        return start + timedelta(minutes=minutes)

    general = queue
    expert = QueueFactory(slug="expert", name="Expert review")
    expert_group = Group.objects.create(name="expert-reviewers")
    expert.reviewer_groups.add(expert_group)
    other_reviewer.groups.add(expert_group)
    general.timeout_outcome = Queue.TimeoutOutcome.REJECT
    general.escalation_queue = expert
    general.save()
    four_eyes = QueueFactory(slug="four-eyes", name="Four eyes", required_approvals=2)
    four_eyes.reviewer_groups.add(*general.reviewer_groups.all())
    for name, priority, target, category in (
        ("Finance", 10, four_eyes, "finance"),
        ("General", 20, general, "general"),
    ):
        rule = GateRuleFactory(name=name, priority=priority, queue=target)
        GateConditionFactory(rule=rule, field="signals.category", op="eq", value=category)
    ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"])

    story = Story(now=now, since=now - timedelta(days=1), until=now, general=general, four_eyes=four_eyes,
                  expert=expert)  # fmt: skip
    items = story.items

    def submit(name: str, when: datetime, body: dict) -> ReviewItem:
        with clock(when):
            items[name] = services.submit_item(integration=integration, payload=body).item
        return items[name]

    def claim(name: str, user, when: datetime) -> None:
        with clock(when):
            services.claim(item=items[name], user=user)

    def decide(name: str, user, action: str, when: datetime, **extra) -> None:
        if action in ("reject", "edit"):
            extra["reason_codes"] = ["factual_error"]
        with clock(when):
            services.decide(item=items[name], user=user, action=action, justification="Checked.", **extra)

    general_output = submission(signals={"category": "general"})
    general_action = action_submission(signals={"category": "general"})
    finance_output = submission(signals={"category": "finance"})
    edited = {"edited_output": {"text": "We open at 9:00."}}

    submit("G0", now - timedelta(days=8, hours=1), general_output)
    decide("G0", reviewer, "approve", now - timedelta(days=8))
    submit("G1", at(0), general_output)
    submit("G2", at(0), general_output)
    submit("F1", at(0), action_submission())
    submit("F2", at(0), finance_output)
    submit("A1", at(0), action_submission(signals={"category": "smalltalk"}))
    decide("F2", reviewer, "edit", at(20), **edited)
    claim("G1", reviewer, at(20))
    decide("G1", reviewer, "approve", at(30))
    claim("F1", reviewer, at(30))
    decide("F1", reviewer, "approve", at(40))
    decide("F2", other_reviewer, "approve", at(50))
    submit("G3", at(60), general_output)
    submit("G4", at(60), general_action)
    claim("F1", other_reviewer, at(70))
    decide("G3", reviewer, "reject", at(75))
    decide("F1", other_reviewer, "approve", at(80))
    claim("G4", reviewer, at(85))
    decide("G4", reviewer, "escalate", at(90))
    claim("G2", other_reviewer, at(100))
    decide("G2", other_reviewer, "edit", at(120), **edited)
    submit("G5", at(120), general_output)
    submit("F3", at(120), finance_output)
    decide("F3", reviewer, "approve", at(130))
    decide("F3", other_reviewer, "reject", at(150))
    claim("G4", other_reviewer, at(180))
    decide("G4", other_reviewer, "approve", at(210))
    execution = OutboxMessage.objects.get(item=items["G4"], kind=OutboxMessage.Kind.EXECUTE)
    assert worker.deliver(execution.pk) == "failed"  # now: the message fell due when written
    services.apply_sla_timeouts(now=at(240))
    submit("G7", now - timedelta(hours=2), general_output)
    submit("G6", now - timedelta(minutes=30), general_output)
    claim("G7", reviewer, now - timedelta(minutes=10))

    for name, severity, ago, reporter in (
        ("G1", "high", timedelta(hours=1), {"integration": integration}),
        ("F2", "medium", timedelta(hours=2), {"user": reviewer}),
        ("G4", "critical", timedelta(hours=3), {"user": other_reviewer}),
        ("G0", "low", timedelta(days=3), {"integration": integration}),
        ("A1", "low", timedelta(hours=1), {"integration": integration}),
    ):
        incident = services.report_incident(
            item=items[name], severity=severity, description="Harm got through.", **reporter
        )
        Incident.objects.filter(pk=incident.pk).update(created_at=now - ago)  # backdated

    for item in items.values():
        item.refresh_from_db()
    return story
