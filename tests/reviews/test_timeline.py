"""The item timeline: the whole story of one item, in order, with actors and exact times
(SPEC section 10), who may read it, and a fixed number of queries whatever its length."""

from __future__ import annotations

import contextlib
import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from simple_history.models import HistoricalRecords

from reviews import services, tasks
from reviews.history import act_for_integration
from reviews.models import ItemStatus, OutboxMessage, ReviewItem
from reviews.timeline import item_timeline
from tests.conftest import make_reviewer
from tests.factories import (
    GateConditionFactory,
    GateRuleFactory,
    QueueFactory,
    ReasonCodeFactory,
    action_submission,
)

CHECKLIST = ["The amount matches the order", "The customer asked for it"]


# --- Acting as someone, the way a request does -----------------------------------------------


@contextlib.contextmanager
def acting(user=None, integration=None):
    """Writes inside the block are attributed as in a request by `user` (admin or API) or
    by `integration` (API key): simple-history reads the request, `reviews.history` the rest."""
    request = RequestFactory().post("/")
    request.user = user
    if integration is not None:
        act_for_integration(request, integration)
    HistoricalRecords.context.request = request
    try:
        yield
    finally:
        del HistoricalRecords.context.request


def deliver(message: OutboxMessage) -> str:
    """One attempt, as the worker's task makes it (attributed to system:delivery)."""
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=message.created_at)
    return tasks.deliver_message(message.pk)


# --- An escalated four-eyes refund --------------------------------------------------------------


@pytest.fixture
def refund_desk(queue, reviewer, other_reviewer):
    return make_refund_desk(queue, other_reviewer)


def make_refund_desk(queue, other_reviewer) -> dict:
    """A four-eyes refunds queue escalating to an experts queue, which `other_reviewer`
    and a third reviewer, `expert`, review; a gate rule holding refunds of 10 or more."""
    queue.required_approvals = 2
    queue.checklist = CHECKLIST
    queue.save()
    experts_group = Group.objects.create(name="expert-reviewers")
    experts = QueueFactory(slug="refund-experts", name="Refund experts", required_approvals=1)
    experts.reviewer_groups.add(experts_group)
    queue.escalation_queue = experts
    queue.save()
    expert = make_reviewer("expert", experts)
    other_reviewer.groups.add(experts_group)
    rule = GateRuleFactory(name="Refunds need two people", queue=queue, risk_level="high")
    GateConditionFactory(rule=rule, field="action.type", op="eq", value="payment.refund")
    GateConditionFactory(rule=rule, field="action.params.amount", op="gte", value=10)
    ReasonCodeFactory(code="needs_expert", label="Needs an expert", applies_to=["escalate"])
    ReasonCodeFactory(code="verified", label="Verified against the order", applies_to=["approve"])
    return {"queue": queue, "experts": experts, "expert": expert, "rule": rule}


def submit_refund(integration, **overrides) -> ReviewItem:
    """Through the gate as the API does it, with an Idempotency-Key (so a fingerprint)."""
    payload = action_submission(
        **{
            "external_id": "refund-1182",
            "action": {
                "type": "payment.refund",
                "params": {"order": "1182", "amount": 42.0, "currency": "EUR"},
            },
            **overrides,
        }
    )
    key = f"{payload['external_id']}-a"
    with acting(integration=integration):
        result = services.submit_item(integration=integration, payload=payload, idempotency_key=key)
    return result.item


def escalated_four_eyes_refund(
    integration, receiver, desk, reviewer, other_reviewer, *, external_id="refund-1182", churn=1
) -> ReviewItem:
    """Submitted, claimed and released (`churn` times), escalated to the experts, approved
    there by two reviewers (the item keeps four-eyes), executed (the first request fails)
    and reported back by callback."""
    integration.action_url = f"{receiver.url}/actions"
    integration.callback_url = f"{receiver.url}/callback"
    integration.save()
    receiver.fail_first = len(receiver.requests) + 1  # this story's first request fails
    item = submit_refund(integration, external_id=external_id)
    queue, experts, expert = desk["queue"], desk["experts"], desk["expert"]
    claim_and_release(item, reviewer, churn)
    with acting(reviewer):
        assert services.claim_next(queue=queue, user=reviewer) == item
        services.decide(
            item=item,
            user=reviewer,
            action="escalate",
            justification="Refunds over 40 EUR go to the experts.",
            reason_codes=["needs_expert"],
        )
    with acting(other_reviewer):
        services.claim_next(queue=experts, user=other_reviewer)
        services.decide(
            item=item,
            user=other_reviewer,
            action="approve",
            justification="The order shows a duplicate charge.",
            reason_codes=["verified"],
        )
    with acting(expert):
        services.claim_next(queue=experts, user=expert)
        services.decide(item=item, user=expert, action="approve", justification="Agreed: refund it.")
    # Deliver what is left (a transactional test has already sent each message once, at commit).
    for message in OutboxMessage.objects.filter(item=item):
        for _ in range(3):
            message.refresh_from_db()
            if message.status == OutboxMessage.Status.DELIVERED:
                break
            deliver(message)
    execute = OutboxMessage.objects.get(item=item, kind="execute")
    assert list(execute.delivery_attempts.values_list("status_code", flat=True)) == [500, 200]
    item.refresh_from_db()
    assert item.status == ItemStatus.APPROVED and item.execution_status == "succeeded"
    return item


@pytest.fixture
def refund(integration, receiver, refund_desk, reviewer, other_reviewer):
    return escalated_four_eyes_refund(integration, receiver, refund_desk, reviewer, other_reviewer)


def timeline_url(item) -> str:
    return reverse("admin:reviews_reviewitem_timeline", args=[item.pk])


def titles(events) -> list[str]:
    return [event.title for event in events]


def index_of(events, pattern: str) -> int:
    for index, event in enumerate(events):
        if re.search(pattern, event.title):
            return index
    raise AssertionError(f"No event matches {pattern!r} in {titles(events)}")


# --- The story -----------------------------------------------------------------------------------


def test_the_timeline_tells_an_escalated_four_eyes_refund_in_order(refund):
    events = item_timeline(refund)
    story = [
        r"^Submitted by ",
        r"^Gate: held for review in General review",
        r"^Claimed by reviewer$",
        r"^Claim released by reviewer$",
        r"^Claimed by reviewer$",
        r"^Decision: escalate from General review to Refund experts",
        r"^Escalated to Refund experts",
        r"^Claimed by other_reviewer",
        r"^Decision: approve, first of two approvals",
        r"^First approval recorded",
        r"^Claimed by expert",
        r"^Decision: approve \(final\)",
        r"^Final state: approved",
        r"^Action execution queued",
        r"^Callback queued",
        r"^Action request, attempt 1: HTTP 500",
        r"^Action request, attempt 2: HTTP 200",
        r"^Executed",
        r"^Action execution delivered",
        r"^Callback request, attempt 1: HTTP 200",
        r"^Callback delivered",
    ]
    positions = []
    start = 0
    for pattern in story:
        found = next(
            (i for i in range(start, len(events)) if re.search(pattern, events[i].title)),
            None,
        )
        assert found is not None, f"{pattern!r} not found after position {start} in {titles(events)}"
        positions.append(found)
        start = found + 1
    assert [event.at for event in events] == sorted(event.at for event in events)


def test_every_event_has_an_exact_time_and_an_actor(refund):
    for event in item_timeline(refund):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", event.at_text), event.at_text
        assert event.actor["kind"] in ("user", "integration", "system")
        assert event.actor["name"] and event.actor["name"] != "unattributed", event.title


def test_the_actors_are_the_people_the_integration_and_the_tasks(refund):
    events = item_timeline(refund)
    by_title = {event.title: event for event in events}
    assert by_title["Submitted by Support bot"].actor == {"kind": "integration", "name": "support-bot"}
    assert events[index_of(events, r"^Gate:")].actor_label == "system:gate"
    assert events[index_of(events, r"^Claim released")].actor == {"kind": "user", "name": "reviewer"}
    assert events[index_of(events, r"^Decision: escalate")].actor_label == "reviewer"
    assert events[index_of(events, r"^Escalated to")].actor_label == "reviewer"
    assert events[index_of(events, r"^Decision: approve, first")].actor_label == "other_reviewer"
    assert events[index_of(events, r"^Decision: approve \(final\)")].actor_label == "expert"
    assert events[index_of(events, r"^Final state: approved")].actor_label == "expert"
    assert events[index_of(events, r"attempt 1: HTTP 500")].actor_label == "system:delivery"
    assert events[index_of(events, r"^Executed")].actor_label == "system:delivery"


def test_the_submission_and_the_gate_say_what_came_in_and_which_rule_held_it(refund, refund_desk):
    events = item_timeline(refund)
    submitted = events[0]
    details = {d.label: d.value.text for d in submitted.details}
    assert details["External id"] == "refund-1182"
    assert details["Idempotency key"] == "refund-1182-a"
    assert details["Request fingerprint"] == refund.request_hash and len(refund.request_hash) == 64
    gate = events[1]
    (rule,) = [d for d in gate.details if d.label.startswith("Rule: ")]
    assert rule.label == "Rule: Refunds need two people, version 1"
    assert "Hold for review" in rule.value.text and "queue general" in rule.value.text
    fired = [entry.text for entry in rule.entries]
    assert 'Fired: action.type equals "payment.refund": it was "payment.refund"' in fired
    assert "Fired: action.params.amount is at least 10: it was 42.0" in fired
    (link,) = gate.links
    assert link.url.endswith(
        f"/policies/gaterule/{refund_desk['rule'].pk}/history/{link.url.split('/')[-2]}/"
    )


def test_a_claim_ending_names_the_reviewer_never_a_deleted_user(refund):
    events = item_timeline(refund)
    released = events[index_of(events, r"^Claim released by reviewer$")]
    claimed_by = next(d for d in released.details if d.label == "Claimed by")
    assert (claimed_by.old.text, claimed_by.value.text) == ("reviewer", "(none)")
    escalated = events[index_of(events, r"^Escalated to Refund experts")]
    changes = {d.label: (d.old.text, d.value.text) for d in escalated.details if d.is_change}
    assert changes["Queue"] == ("General review", "Refund experts")
    assert changes["Claimed by"] == ("reviewer", "(none)")
    assert changes["Review round"] == ("1", "2")
    for event in events:
        for detail in event.details:
            for value in (detail.value, detail.old):
                assert value is None or "Deleted user" not in value.text


def test_decisions_show_reviewer_justification_codes_and_checklist(refund):
    events = item_timeline(refund)
    first = events[index_of(events, r"^Decision: approve, first")]
    details = {d.label: d for d in first.details}
    assert details["Justification"].value.text == "The order shows a duplicate charge."
    assert [e.text for e in details["Reason codes"].entries] == ["verified: Verified against the order"]
    assert details["Round and step"].value.text == "round 2, step 1"
    assert first.anchor.startswith("decision-")
    assert first.links[0].url == reverse("admin:reviews_decision_change", args=[first.anchor.split("-")[1]])


def test_a_four_eyes_queue_decision_shows_its_checklist_answers(integration, refund_desk, reviewer):
    item = submit_refund(integration)
    with acting(reviewer):
        services.decide(
            item=item, user=reviewer, action="approve", justification="Fine.", checklist=[True, True]
        )
    events = item_timeline(item)
    decision = events[index_of(events, r"^Decision: approve, first")]
    checklist = next(d for d in decision.details if d.label == "Checklist")
    assert checklist.value.text == "2 of 2 ticked"
    assert [e.text for e in checklist.entries] == [f"✓ {statement}" for statement in CHECKLIST]


def test_a_long_justification_is_kept_whole_behind_show_all(
    client, compliance, integration, refund_desk, reviewer
):
    long = "W" * 20_000
    item = submit_refund(integration)
    with acting(reviewer):
        services.decide(
            item=item,
            user=reviewer,
            action="escalate",
            justification=f"<script>alert(1)</script> \u202eevil {long}",
            reason_codes=["needs_expert"],
        )
    client.force_login(compliance)
    response = client.get(timeline_url(item))
    html = response.content.decode()
    assert response.status_code == 200
    assert long in html and "Show all 20," in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "⟨U+202E⟩" in html and "\u202e" not in html


def test_incidents_and_their_updates_are_on_the_timeline(refund, superuser):
    with acting(superuser):
        incident = services.report_incident(
            item=refund, severity="high", description="The refund went to the wrong card.", user=superuser
        )
        services.update_incident(
            incident=incident, severity="critical", status="resolved", description=incident.description
        )
    events = item_timeline(refund)
    reported = events[index_of(events, r"^Incident reported: high severity")]
    assert reported.actor_label == "root"
    assert any(link.url.startswith("#decision-") for link in reported.links)
    updated = events[index_of(events, r"^Incident updated")]
    changes = {d.label: (d.old.text, d.value.text) for d in updated.details}
    assert changes["Severity"] == ("High", "Critical") and changes["Status"] == ("Open", "Resolved")


def test_backlog_items_fed_by_the_items_decisions_are_on_the_timeline(
    integration, queue, reviewer, policy_admin
):
    GateRuleFactory(name="Review everything", queue=queue)
    ReasonCodeFactory(
        code="missing_guardrail", label="Missing guardrail", applies_to=["reject"], creates_backlog_item=True
    )
    with acting(integration=integration):
        item = services.submit_item(integration=integration, payload=action_submission()).item
    with acting(reviewer):
        services.decide(
            item=item,
            user=reviewer,
            action="reject",
            justification="No limit.",
            reason_codes=["missing_guardrail"],
        )
    backlog = item.decisions.get().backlog_items.get()
    with acting(policy_admin):
        services.update_backlog_item(
            backlog=backlog, title=backlog.title, status="resolved", notes="Limit added."
        )
    events = item_timeline(item)
    linked = events[index_of(events, r"^Decision added to the backlog item")]
    assert linked.actor_label == "reviewer"
    resolved = events[index_of(events, r"^Backlog item .* changed")]
    assert resolved.actor_label == "policy_admin"
    assert {d.label: (d.old.text, d.value.text) for d in resolved.details}["Status"] == ("Open", "Resolved")


def test_a_lapsed_claim_and_the_sla_events_name_the_system_task(integration, refund_desk, reviewer):
    item = submit_refund(integration)
    with acting(reviewer):
        services.claim(item=item, user=reviewer)
    past = "2000-01-01T00:00:00Z"
    ReviewItem.objects.filter(pk=item.pk).update(claim_expires_at=past)
    tasks.expire_claims()
    ReviewItem.objects.filter(pk=item.pk).update(at_risk_at=past)
    tasks.flag_at_risk()
    ReviewItem.objects.filter(pk=item.pk).update(due_at=past)
    tasks.apply_sla_timeouts()
    events = item_timeline(item)
    expired = events[index_of(events, r"^Claim of reviewer expired$")]
    assert expired.kind == "claim expired" and expired.actor_label == "system:claim-expiry"
    at_risk = events[index_of(events, r"^SLA at risk: half the SLA has passed")]
    assert at_risk.kind == "sla" and at_risk.actor_label == "system:sla-sweep"
    timeout = events[index_of(events, r"^SLA timeout: escalated to Refund experts$")]
    assert timeout.actor_label == "system:sla-sweep"
    assert {d.label: (d.old.text, d.value.text) for d in timeout.details if d.is_change}["Queue"] == (
        "General review",
        "Refund experts",
    )


def test_an_auto_approved_item_and_its_spot_check_copy_link_to_each_other(integration, queue):
    GateRuleFactory(name="Spot-check a few", queue=queue, outcome="spot_check", risk_level="low")
    with acting(integration=integration):
        item = services.submit_item(integration=integration, payload=action_submission()).item
    copy = ReviewItem.objects.get(spot_check_of=item)
    events = item_timeline(item)
    assert events[1].title == "Gate: auto-approved, with a spot-check copy"
    assert reverse("admin:reviews_reviewitem_timeline", args=[copy.pk]) in [
        link.url for link in events[1].links
    ]
    copied = item_timeline(copy)
    assert copied[1].title == "Spot-check copy placed in General review"
    assert reverse("admin:reviews_reviewitem_timeline", args=[item.pk]) in [
        link.url for link in copied[0].links
    ]


# --- Who may read it ---------------------------------------------------------------------------


def test_compliance_reads_every_timeline(client, compliance, refund, integration, refund_desk):
    other = submit_refund(integration, external_id="refund-other")
    client.force_login(compliance)
    for item in (refund, other):
        response = client.get(timeline_url(item))
        assert response.status_code == 200
        assert "Submitted by Support bot" in response.content.decode()


def test_a_reviewer_of_the_items_queue_reads_the_timeline(client, other_reviewer, refund):
    client.force_login(other_reviewer)  # a reviewer of the experts' queue, where the item is now
    assert client.get(timeline_url(refund)).status_code == 200


def test_the_queue_it_was_escalated_from_no_longer_reads_it(client, reviewer, refund):
    """The one visibility rule: an item is read through the queue it is in now."""
    client.force_login(reviewer)
    assert client.get(timeline_url(refund)).status_code == 404


def test_a_reviewer_of_another_queue_gets_404(client, refund):
    elsewhere = make_reviewer("elsewhere", QueueFactory(slug="elsewhere"))
    elsewhere.groups.add(Group.objects.create(name="elsewhere-group"))
    client.force_login(elsewhere)
    assert client.get(timeline_url(refund)).status_code == 404


@pytest.mark.parametrize("bad", ["abc", "123", "00000000-0000-0000-0000-000000000000", "%C2%B2", "1" * 100])
def test_bad_ids_are_404(client, compliance, bad):
    client.force_login(compliance)
    assert client.get(f"/admin/reviews/reviewitem/{bad}/timeline/").status_code == 404


def test_the_item_page_links_to_its_timeline(client, compliance, refund):
    client.force_login(compliance)
    response = client.get(reverse("admin:reviews_reviewitem_change", args=[refund.pk]))
    assert timeline_url(refund) in response.content.decode()


def test_the_review_page_links_to_the_timeline(client, compliance, refund):
    client.force_login(compliance)
    response = client.get(reverse("admin:reviews_review", args=[refund.pk]))
    assert f'href="{timeline_url(refund)}"' in response.content.decode()


def test_the_page_holds_no_inline_style_or_script(client, compliance, refund):
    client.force_login(compliance)
    html = client.get(timeline_url(refund)).content.decode()
    assert "timeline.css" in html
    assert " style=" not in html and "<style" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)


# --- A fixed number of queries --------------------------------------------------------------------


def claim_and_release(item, user, times: int) -> None:
    with acting(user):
        for _ in range(times):
            services.claim(item=item, user=user)
            services.release(item=item, user=user)


def measured(item, client=None) -> tuple[int, int]:
    """(events, queries) of `item_timeline`, or of the page when `client` is given."""
    item = ReviewItem.objects.select_related("integration", "queue", "claimed_by").get(pk=item.pk)
    with CaptureQueriesContext(connection) as captured:
        if client is None:
            events = len(item_timeline(item))
        else:
            response = client.get(timeline_url(item))
            assert response.status_code == 200
            events = len(response.context["events"])
    return events, len(captured)


def test_the_timeline_takes_the_same_queries_at_5_and_at_500_events(
    client, compliance, integration, refund_desk, reviewer
):
    few = submit_refund(integration, external_id="refund-few")
    claim_and_release(few, reviewer, 1)
    with acting(reviewer):
        services.claim(item=few, user=reviewer)
    many = submit_refund(integration, external_id="refund-many")
    claim_and_release(many, reviewer, 250)
    with acting(reviewer):
        services.claim(item=many, user=reviewer)
    (few_events, few_queries), (many_events, many_queries) = measured(few), measured(many)
    assert few_events == 5 and many_events == 503
    assert few_queries == many_queries

    client.force_login(compliance)
    (_, few_page), (_, many_page) = measured(few, client), measured(many, client)
    assert few_page == many_page


def test_a_whole_story_takes_the_same_queries_with_500_more_events(
    integration, refund_desk, reviewer, other_reviewer, receiver
):
    """Decisions, reason codes, messages, attempts, rule versions: one query each, however many."""
    story = (integration, receiver, refund_desk, reviewer, other_reviewer)
    plain = escalated_four_eyes_refund(*story, external_id="refund-plain", churn=1)
    busy = escalated_four_eyes_refund(*story, external_id="refund-busy", churn=250)
    (plain_events, plain_queries), (busy_events, busy_queries) = measured(plain), measured(busy)
    assert plain_events < 30 and busy_events > 520
    assert plain_queries == busy_queries


def test_reading_the_timeline_writes_nothing(refund):
    """Reading the timeline writes nothing (no history rows, no outbox changes)."""
    before = (refund.history.count(), OutboxMessage.objects.filter(item=refund).count())
    item_timeline(refund)
    assert (refund.history.count(), OutboxMessage.objects.filter(item=refund).count()) == before
