"""Claims: order, leases, lapsed claims, who may claim and release."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import services
from reviews.exceptions import (
    ClaimedByAnother,
    NotAllowed,
    NotClaimed,
)
from reviews.models import ItemStatus, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import (
    GateConditionFactory,
    GateRuleFactory,
)
from tests.reviews.services.common import submit


def test_claim_next_takes_priority_then_due_date_then_age(integration, queue, reviewer):
    low = GateRuleFactory(name="low", queue=queue, risk_level="low", priority=50)
    GateConditionFactory(rule=low, field="metadata.risk", op="eq", value="low")
    high = GateRuleFactory(name="high", queue=queue, risk_level="high", priority=10)
    GateConditionFactory(rule=high, field="metadata.risk", op="eq", value="high")
    older_low = submit(integration, metadata={"risk": "low"})
    newer_low = submit(integration, metadata={"risk": "low"})
    high_item = submit(integration, metadata={"risk": "high"})
    ReviewItem.objects.filter(pk=newer_low.pk).update(due_at=older_low.due_at - timedelta(minutes=1))

    order = [services.claim_next(queue=queue, user=make_reviewer(f"r{i}", queue)).pk for i in range(3)]
    assert order == [high_item.pk, newer_low.pk, older_low.pk]


def test_claim_next_on_an_empty_queue_returns_none(queue, reviewer):
    assert services.claim_next(queue=queue, user=reviewer) is None


def test_claim_next_gives_a_lease(integration, review_all, queue, reviewer, settings):
    settings.HITL_CLAIM_MINUTES = 15
    submit(integration)
    item = services.claim_next(queue=queue, user=reviewer)
    assert item.status == ItemStatus.IN_REVIEW
    assert item.claimed_by == reviewer
    assert timedelta(minutes=14) < item.claim_expires_at - timezone.now() <= timedelta(minutes=15)


def test_reviewer_holding_a_claim_gets_the_same_item_back(integration, review_all, queue, reviewer):
    submit(integration)
    submit(integration)
    first = services.claim_next(queue=queue, user=reviewer)
    assert services.claim_next(queue=queue, user=reviewer).pk == first.pk
    assert ReviewItem.objects.filter(status=ItemStatus.IN_REVIEW).count() == 1


def test_two_reviewers_never_hold_one_item(integration, review_all, queue, reviewer, other_reviewer):
    submit(integration)
    assert services.claim_next(queue=queue, user=reviewer) is not None
    assert services.claim_next(queue=queue, user=other_reviewer) is None


def test_an_expired_lease_lets_another_reviewer_claim(
    integration, review_all, queue, reviewer, other_reviewer
):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    ReviewItem.objects.filter(pk=item.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    taken = services.claim_next(queue=queue, user=other_reviewer)
    assert taken.pk == item.pk and taken.claimed_by == other_reviewer


def test_expire_claims_returns_lapsed_items_to_the_queue(integration, review_all, queue, reviewer):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    assert services.expire_claims(now=timezone.now() + timedelta(hours=1)) == 1
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING and item.claimed_by is None


def test_outsider_cannot_claim(integration, review_all, queue, outsider):
    submit(integration)
    with pytest.raises(NotAllowed):
        services.claim_next(queue=queue, user=outsider)


def test_reviewer_role_is_needed_besides_the_queue_group(integration, review_all, queue):
    from tests.factories import UserFactory

    member = UserFactory(username="member-only")
    member.groups.add(*queue.reviewer_groups.all())
    submit(integration)
    with pytest.raises(NotAllowed):
        services.claim_next(queue=queue, user=member)


def test_superuser_may_review_every_queue(integration, review_all, queue, superuser):
    submit(integration)
    assert services.claim_next(queue=queue, user=superuser) is not None


def test_release_frees_the_item(integration, review_all, queue, reviewer):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    released = services.release(item=item, user=reviewer)
    assert released.status == ItemStatus.PENDING and released.claimed_by is None


def test_release_of_another_reviewers_claim_is_a_conflict(
    integration, review_all, queue, reviewer, other_reviewer
):
    item = submit(integration)
    services.claim_next(queue=queue, user=reviewer)
    with pytest.raises(ClaimedByAnother):
        services.release(item=item, user=other_reviewer)


def test_release_of_an_unclaimed_item_is_a_conflict(integration, review_all, reviewer):
    item = submit(integration)
    with pytest.raises(NotClaimed):
        services.release(item=item, user=reviewer)
