"""Races on a real PostgreSQL: several threads, each with its own connection."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from reviews import services
from reviews.exceptions import AlreadyDecided, ClaimedByAnother
from reviews.models import Decision, ItemStatus, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, submission

# serialized_rollback restores the roles the data migration made after each flush.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def run_in_threads(count: int, target) -> list:
    """Start `count` threads together; return what each returned or raised."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def runner(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target(index)
        except Exception as exc:  # collected and asserted on by the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_claim_next_never_hands_out_one_item_twice(integration, queue):
    GateRuleFactory(name="Review everything", queue=queue)
    items = [services.submit_item(integration=integration, payload=submission()).item for _ in range(40)]
    reviewers = [make_reviewer(f"reviewer-{i}", queue) for i in range(8)]

    def claim_until_empty(index: int) -> list:
        claimed = []
        user = reviewers[index]
        while True:
            item = services.claim_next(queue=queue, user=user)
            if item is None:
                return claimed
            claimed.append(item.pk)
            # Let go of the claim by deciding, so the reviewer can take the next one.
            services.decide(item=item, user=user, action="approve", justification="Looks right.")

    results = run_in_threads(len(reviewers), claim_until_empty)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    claimed = [pk for per_thread in results for pk in per_thread]
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert set(claimed) == {item.pk for item in items}
    assert Decision.objects.count() == 40
    assert ReviewItem.objects.filter(status=ItemStatus.APPROVED).count() == 40


def test_concurrent_decisions_on_one_item_record_exactly_one(integration, queue):
    GateRuleFactory(name="Review everything", queue=queue)
    item = services.submit_item(integration=integration, payload=submission()).item
    reviewers = [make_reviewer(f"reviewer-{i}", queue) for i in range(6)]

    def decide(index: int):
        return services.decide(item=item, user=reviewers[index], action="approve", justification="Fine.")

    results = run_in_threads(len(reviewers), decide)
    winners = [r for r in results if isinstance(r, Decision)]
    losers = [r for r in results if not isinstance(r, Decision)]
    assert len(winners) == 1
    assert all(isinstance(r, (AlreadyDecided, ClaimedByAnother)) for r in losers), losers
    assert Decision.objects.filter(item=item).count() == 1


def test_concurrent_duplicate_submissions_with_one_key_make_one_item(integration, queue):
    GateRuleFactory(name="Review everything", queue=queue)

    def submit(index: int):
        return services.submit_item(integration=integration, payload=submission(), idempotency_key="race-1")

    results = run_in_threads(8, submit)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.item.pk for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert ReviewItem.objects.filter(idempotency_key="race-1").count() == 1


def test_decisions_and_history_refuse_update_and_delete(integration, queue, reviewer):
    from django.db import DatabaseError, transaction

    GateRuleFactory(name="Review everything", queue=queue)
    item = services.submit_item(integration=integration, payload=submission()).item
    decision = services.decide(item=item, user=reviewer, action="approve", justification="Fine.")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Decision.objects.filter(pk=decision.pk).update(justification="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Decision.objects.filter(pk=decision.pk).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ReviewItem.history.filter(id=item.pk).update(status="rejected")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ReviewItem.history.filter(id=item.pk).delete()
    assert Decision.objects.get(pk=decision.pk).justification == "Fine."
