"""Gold items in the metrics: left out of the queue figures, compared with their right
answers for each reviewer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from metrics import selectors
from reviews import services
from reviews.models import Queue
from tests.factories import GateRuleFactory, ReasonCodeFactory, submission


@pytest.fixture
def graded(integration, queue, reviewer, other_reviewer, superuser):
    ReasonCodeFactory(code="wrong", label="Wrong", applies_to=["reject", "edit"])
    GateRuleFactory(name="Review everything", queue=queue)
    real = services.submit_item(integration=integration, payload=submission()).item
    services.decide(item=real, user=reviewer, action="approve", justification="Fine.")
    golds = [
        services.seed_gold_item(item=real, queue=queue, answer=answer, user=superuser)
        for answer in ("reject", "reject", "approve")
    ]
    # reviewer: rejects a reject (agrees), approves a reject (disagrees); other_reviewer edits an approve.
    services.decide(
        item=golds[0], user=reviewer, action="reject", justification="No.", reason_codes=["wrong"]
    )
    services.decide(item=golds[1], user=reviewer, action="approve", justification="Fine.")
    services.decide(
        item=golds[2],
        user=other_reviewer,
        action="edit",
        justification="Better.",
        reason_codes=["wrong"],
        edited_output={"text": "Better"},
    )
    now = timezone.now()
    return {"since": now - timedelta(hours=1), "until": now + timedelta(minutes=1)}


def test_gold_items_stay_out_of_the_queue_figures(graded, queue):
    (row,) = selectors.queue_stats(queues=[queue], **graded)
    assert row["decisions"] == 1 and row["approval_rate"] == 1.0


def test_gold_decisions_still_count_as_reviewer_work(graded, queue):
    work = {row["reviewer"]: row["decisions"] for row in selectors.reviewer_stats(queues=[queue], **graded)}
    assert work == {"reviewer": 3, "other_reviewer": 1}


def test_each_reviewers_agreement_with_gold_answers(graded, queue):
    assert selectors.gold_agreement(queues=[queue], **graded) == [
        {"reviewer": "reviewer", "gold_decisions": 2, "agreed": 1, "agreement_rate": 0.5},
        {"reviewer": "other_reviewer", "gold_decisions": 1, "agreed": 1, "agreement_rate": 1.0},
    ]
    assert selectors.gold_agreement(queues=list(Queue.objects.exclude(pk=queue.pk)), **graded) == []
