"""Gold items: copies with a known right answer, reviewed like any other item, never
executed, never reported, and never told apart by a reviewer."""

from __future__ import annotations

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from reviews import services
from reviews.exceptions import InvalidInput, NotAllowed
from reviews.models import BacklogItem, ExecutionStatus, GoldAnswer, ItemStatus, OutboxMessage, ReviewItem
from tests.factories import GateRuleFactory, ReasonCodeFactory, action_submission
from tests.reviews.test_api import ApiClient, token_client


@pytest.fixture
def refund(integration, queue):
    integration.callback_url = "https://agent.example/callback"
    integration.action_url = "https://agent.example/actions"
    integration.save()
    ReasonCodeFactory(code="wrong", label="Wrong", applies_to=["reject", "edit"], creates_backlog_item=True)
    GateRuleFactory(name="Review everything", queue=queue)
    return services.submit_item(
        integration=integration, payload=action_submission(callback_url="https://agent.example/cb")
    ).item


@pytest.fixture
def gold(refund, queue, superuser):
    return services.seed_gold_item(
        item=refund, queue=queue, answer="reject", user=superuser, note="Over limit."
    )


def test_a_gold_item_is_a_pending_copy_with_the_same_content_and_nothing_to_report(refund, gold, queue):
    assert gold.pk != refund.pk and gold.status == ItemStatus.PENDING and gold.queue == queue
    for field in ("kind", "input", "output", "action", "context", "signals", "metadata", "matched_rules"):
        assert getattr(gold, field) == getattr(refund, field), field
    assert gold.callback_url == "" and gold.idempotency_key == ""
    assert gold.gold.answer == "reject" and gold.gold.copied_from == refund
    assert gold.is_gold and not refund.is_gold


def test_approving_a_gold_action_runs_nothing_and_tells_nobody(gold, reviewer):
    services.decide(item=gold, user=reviewer, action="approve", justification="Looks fine.")
    gold.refresh_from_db()
    assert gold.status == ItemStatus.APPROVED
    assert gold.execution_status == ExecutionStatus.NOT_REQUIRED
    assert not OutboxMessage.objects.filter(item=gold).exists()


def test_rejecting_a_gold_item_raises_no_backlog_item(gold, reviewer):
    services.decide(item=gold, user=reviewer, action="reject", justification="No.", reason_codes=["wrong"])
    assert not BacklogItem.objects.exists()


def test_the_integration_never_sees_a_gold_item(integration, gold, refund):
    api = ApiClient(f"Api-Key {services.issue_api_key(integration=integration)}")
    assert api.get(f"/api/v1/items/{gold.pk}/").status_code == 404
    listed = [row["id"] for row in api.get("/api/v1/items/").json()["results"]]
    assert str(refund.pk) in listed and str(gold.pk) not in listed


def test_a_reviewer_cannot_tell_a_gold_item_from_its_original(client, gold, refund, reviewer):
    api = token_client(reviewer)
    gold_answer = api.get(f"/api/v1/items/{gold.pk}/").json()
    original = api.get(f"/api/v1/items/{refund.pk}/").json()
    assert set(gold_answer) == set(original)
    assert "gold" not in str(gold_answer).lower()
    client.force_login(reviewer)
    page = client.get(reverse("admin:reviews_review", args=[gold.pk])).content.decode()
    assert "gold" not in page.lower() and "Over limit." not in page


def test_agreement_follows_the_right_answer(gold, refund):
    answer = gold.gold
    assert answer.agrees_with("reject") and not answer.agrees_with("approve")
    approve = GoldAnswer(answer="approve")
    assert (
        approve.agrees_with("approve") and approve.agrees_with("edit") and not approve.agrees_with("reject")
    )


def test_only_superusers_seed_and_only_from_ordinary_items(refund, gold, queue, compliance, superuser):
    with pytest.raises(NotAllowed):
        services.seed_gold_item(item=refund, queue=queue, answer="approve", user=compliance)
    with pytest.raises(InvalidInput):
        services.seed_gold_item(item=gold, queue=queue, answer="approve", user=superuser)
    with pytest.raises(InvalidInput):
        services.seed_gold_item(item=refund, queue=queue, answer="maybe", user=superuser)
    assert GoldAnswer.objects.count() == 1


def test_a_superuser_seeds_gold_items_from_the_item_list(client, superuser, refund, queue):
    client.force_login(superuser)
    url = reverse("admin:reviews_reviewitem_changelist")
    selection = {"action": "seed_gold_items", helpers.ACTION_CHECKBOX_NAME: [refund.pk]}
    form = client.post(url, selection)
    assert form.status_code == 200 and "Seed 1 gold item(s)" in form.content.decode()
    done = client.post(url, {**selection, "queue": queue.pk, "answer": "approve", "note": "Fine."})
    assert done.status_code == 302
    gold = GoldAnswer.objects.get()
    assert gold.copied_from == refund and gold.answer == "approve" and gold.seeded_by == superuser
    assert gold.history.get().actor_label == "root"


def test_reviewers_have_no_seeding_action_and_no_gold_list(client, reviewer, compliance, gold):
    client.force_login(reviewer)
    changelist = client.get(reverse("admin:reviews_reviewitem_changelist"))
    assert "seed_gold_items" not in changelist.content.decode()
    assert client.get(reverse("admin:reviews_goldanswer_changelist")).status_code == 403
    client.force_login(compliance)
    listing = client.get(reverse("admin:reviews_goldanswer_changelist"))
    assert listing.status_code == 200 and str(gold.pk) in listing.content.decode()


def test_a_gold_item_counts_as_gold_only_through_its_answer(gold):
    assert ReviewItem.objects.filter(gold__isnull=False).get() == gold
