"""Bulk approval in the admin: one justification, only in queues marked low-risk."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from reviews import services
from reviews.exceptions import NotAllowed
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


def test_an_item_that_needs_two_reviewers_is_never_bulk_approved(client, reviewer, integration, queue):
    """Escalated from a four-eyes queue into one that allows bulk approval, it still needs
    two people to open it: two bulk passes by two reviewers must not finish it."""
    payments = QueueFactory(slug="payments", required_approvals=2)
    payments.reviewer_groups.add(*queue.reviewer_groups.all())
    queue.bulk_approve_allowed = True
    queue.save()
    GateRuleFactory(name="Payments", queue=payments)
    item = services.submit_item(integration=integration, payload=submission()).item
    services.decide(
        item=item, user=reviewer, action="escalate", justification="Routine.", escalate_to="general"
    )

    for bulk_reviewer in (make_reviewer("bulk", queue), make_reviewer("bulk2", queue)):
        client.force_login(bulk_reviewer)
        response = post_action(client, [item], justification="Routine answers, checked.")
        notes = [str(m) for m in get_messages(response.wsgi_request)]
        assert any("cannot be bulk approved" in note for note in notes)
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING and not item.decisions.filter(action="approve").exists()
    with pytest.raises(NotAllowed):
        services.decide(
            item=item, user=make_reviewer("bulk3", queue), action="approve", justification="x", bulk=True
        )


def test_the_bulk_rule_is_checked_again_under_the_lock(reviewer, held, queue):
    """The admin checks before it calls the service; the service checks again."""
    queue.bulk_approve_allowed = False
    queue.save()
    with pytest.raises(NotAllowed):
        services.decide(item=held[0], user=reviewer, action="approve", justification="x", bulk=True)
