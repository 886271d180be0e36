"""One visibility rule in every admin page that shows item content: a policy admin
edits queues, rules and integrations and retries deliveries, and reads no item."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from reviews import services
from reviews.models import BacklogItem, Decision, Incident, OutboxMessage, ReviewItem
from tests.factories import submission

SECRET = "Customer Jane Roe, IBAN DE44 5001 0517 5407 3249 31"
JUSTIFICATION = "Checked the IBAN against the signed mandate."


@pytest.fixture
def content(db):
    """Demo data, plus one decided item whose content and justification are easy to spot."""
    call_command("seed_demo", stdout=io.StringIO())
    reviewer = get_user_model().objects.get(username="reviewer")
    item = ReviewItem.objects.filter(status="pending", required_approvals=1).reviewable_by(reviewer).first()
    item.output = {"text": SECRET}
    item.callback_url = "https://bot.example/hitl"  # so the decision has a delivery
    item.save(update_fields=["output", "callback_url"])
    decision = services.decide(
        item=item,
        user=reviewer,
        action="approve",
        justification=JUSTIFICATION,
        checklist=[True] * len(item.queue.checklist),
    )
    services.report_incident(item=item, severity="high", description=f"Leaked: {SECRET}")
    return item, decision


def change_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def test_a_policy_admin_sees_delivery_status_but_not_the_item_in_the_outbox(client, policy_admin, content):
    item, _ = content
    message = OutboxMessage.objects.filter(item=item).first()
    OutboxMessage.objects.filter(pk=message.pk).update(status="failed", last_error="HTTP 503 from receiver")
    client.force_login(policy_admin)
    page = client.get(change_url(message))
    assert page.status_code == 200
    html = page.content.decode()
    assert "HTTP 503 from receiver" in html and "Failed" in html
    assert SECRET not in html and JUSTIFICATION not in html
    # … and may still retry it.
    changelist = reverse("admin:reviews_outboxmessage_changelist")
    client.post(changelist, {"action": "retry", "_selected_action": [message.pk]})
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.PENDING


def test_compliance_reads_the_payload(client, compliance, content):
    item, _ = content
    message = OutboxMessage.objects.filter(item=item).first()
    compliance.refresh_from_db()  # seed_demo set the demo password of this username
    client.force_login(compliance)
    assert SECRET in client.get(change_url(message)).content.decode()


@pytest.mark.parametrize("model", [Decision, Incident, ReviewItem])
def test_a_policy_admin_lists_no_row_that_shows_item_content(client, policy_admin, content, model):
    client.force_login(policy_admin)
    opts = model._meta
    response = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert SECRET not in response.content.decode() and JUSTIFICATION not in response.content.decode()


@pytest.mark.parametrize("pick", ["decision", "incident", "item", "item_history"])
def test_a_policy_admin_cannot_open_pages_with_item_content(client, policy_admin, content, pick):
    item, decision = content
    url = {
        "decision": change_url(decision),
        "incident": change_url(Incident.objects.get(item=item)),
        "item": change_url(item),
        "item_history": reverse("admin:reviews_reviewitem_history", args=[item.pk]),
    }[pick]
    client.force_login(policy_admin)
    response = client.get(url, follow=True)
    html = response.content.decode()
    assert SECRET not in html and JUSTIFICATION not in html
    assert response.status_code in (200, 404)


def test_the_backlog_links_decisions_only_for_readers_of_the_item(client, policy_admin, compliance, content):
    backlog = BacklogItem.objects.filter(decisions__isnull=False).first()
    assert backlog is not None, "the demo raises backlog items"
    client.force_login(policy_admin)
    html = client.get(change_url(backlog)).content.decode()
    assert "in queues you do not review" in html
    assert "/review/" not in html
    compliance.refresh_from_db()
    client.force_login(compliance)
    response = client.get(change_url(backlog))
    html = response.content.decode()
    assert response.status_code == 200, response
    assert "/review/" in html and "in queues you do not review" not in html


def test_decisions_follow_their_item_when_it_is_escalated(client, integration, queue, reviewer):
    """A reviewer of the queue an item left no longer reads its decisions; one of the
    queue it is in now does, as on the review page."""
    from tests.conftest import make_reviewer
    from tests.factories import GateRuleFactory, QueueFactory

    senior = QueueFactory(slug="senior", name="Senior")
    senior.reviewer_groups.add(Group.objects.create(name="senior-reviewers"))
    GateRuleFactory(name="Review everything", queue=queue)
    item = services.submit_item(integration=integration, payload=submission()).item
    senior_reviewer = make_reviewer("senior_reviewer", senior)
    reviewer.groups.add(*senior.reviewer_groups.all())  # so it may escalate there and decide
    decision = services.decide(
        item=item, user=reviewer, action="escalate", justification=JUSTIFICATION, escalate_to="senior"
    )
    left_behind = make_reviewer("general_only", queue)
    for user, sees in ((left_behind, False), (senior_reviewer, True)):
        client.force_login(user)
        listing = client.get(reverse("admin:reviews_decision_changelist"))
        assert (decision in listing.context["cl"].result_list) is sees
        page = client.get(change_url(decision), follow=True)
        assert (JUSTIFICATION in page.content.decode()) is sees


def test_those_who_read_everything_see_items_that_never_entered_a_queue(client, compliance, integration):
    """Auto-approved and blocked items have no queue; compliance and superusers read them."""
    item = services.submit_item(integration=integration, payload=submission()).item
    assert item.status == "auto_approved" and item.queue_id is None
    client.force_login(compliance)
    listing = client.get(reverse("admin:reviews_reviewitem_changelist"))
    assert item in listing.context["cl"].result_list
    assert client.get(change_url(item)).status_code == 200
