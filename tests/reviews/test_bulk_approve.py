"""Bulk approval in the admin: one justification, only in queues marked low-risk."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from reviews import services
from reviews.models import ItemStatus, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, QueueFactory, submission

CHANGELIST = "/admin/reviews/reviewitem/"


@pytest.fixture
def held(integration, queue):
    GateRuleFactory(name="Review everything", queue=queue)
    return [services.submit_item(integration=integration, payload=submission()).item for _ in range(3)]


def post_action(client, items, **extra):
    selected = [item.pk for item in items]
    data = {"action": "bulk_approve", "index": 0, "select_across": 0, "_selected_action": selected}
    return client.post(CHANGELIST, {**data, **extra})


def test_bulk_approve_is_refused_in_a_queue_not_marked_for_it(client, reviewer, held):
    client.force_login(reviewer)
    response = post_action(client, held, justification="All fine.")
    assert response.status_code == 302
    assert not ReviewItem.objects.filter(status=ItemStatus.APPROVED).exists()


def test_bulk_approve_asks_for_one_justification_then_approves_each(client, reviewer, held, queue):
    queue.bulk_approve_allowed = True
    queue.checklist = ["Polite"]
    queue.save()
    client.force_login(reviewer)
    confirm = post_action(client, held)
    assert confirm.status_code == 200 and b"justification" in confirm.content
    assert not ReviewItem.objects.filter(status=ItemStatus.APPROVED).exists()
    assert post_action(client, held, justification="   ").status_code == 200  # blank: asked again
    assert post_action(client, held, justification="Routine answers, checked.").status_code == 302
    approved = ReviewItem.objects.filter(status=ItemStatus.APPROVED)
    assert approved.count() == 3
    assert {d.justification for i in approved for d in i.decisions.all()} == {"Routine answers, checked."}


def test_bulk_approve_is_not_offered_to_people_who_review_nothing(client, compliance, held, queue):
    queue.bulk_approve_allowed = True
    queue.save()
    client.force_login(compliance)
    post_action(client, held, justification="x")
    assert not ReviewItem.objects.filter(status=ItemStatus.APPROVED).exists()


def test_bulk_approval_of_an_item_escalated_from_four_eyes_is_only_its_first_approval(
    client, reviewer, integration, queue
):
    payments = QueueFactory(slug="payments", required_approvals=2)
    payments.reviewer_groups.add(*queue.reviewer_groups.all())
    queue.bulk_approve_allowed = True
    queue.save()
    GateRuleFactory(name="Payments", queue=payments)
    item = services.submit_item(integration=integration, payload=submission()).item
    services.decide(
        item=item, user=reviewer, action="escalate", justification="Routine.", escalate_to="general"
    )

    client.force_login(make_reviewer("bulk", queue))
    response = post_action(client, [item], justification="Routine answers, checked.")
    item.refresh_from_db()
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Approved 0 item(s)." in notes
    assert "1 item(s) got their first approval and wait for another reviewer." in notes
    assert item.status == ItemStatus.PENDING and item.decisions.filter(action="approve").count() == 1
