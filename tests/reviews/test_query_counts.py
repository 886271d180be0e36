"""SQL statements per API request, counted exactly, so that one more is a failing test.

Each count is written out statement by statement. Inside a test every transaction is
a savepoint (SAVEPOINT ... RELEASE), which the counts include; outside tests those are
BEGIN and COMMIT. The first request of each kind runs before the count: it stamps the
API key's last use and creates the audit chain's head, which later requests do not.
"""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from reviews import services
from reviews.models import ItemStatus, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, ReasonCodeFactory, action_submission, submission
from tests.reviews.test_api import ApiClient, token_client

ITEMS = "/api/v1/items/"


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()


@pytest.fixture
def callback(integration):
    """Final states write their webhook to the outbox (never sent: no commit in a test)."""
    integration.callback_url = "https://bot.example/hitl"
    integration.save()
    return integration


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(name="Review everything", queue=queue)


@pytest.fixture
def api(callback):
    return ApiClient(f"Api-Key {services.issue_api_key(integration=callback)}")


@pytest.fixture
def staff(reviewer):
    return token_client(reviewer)


def submit(api, **overrides) -> str:
    response = api.post(ITEMS, submission(**overrides))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def pending_items(api, count: int) -> list[str]:
    return [submit(api, external_id=f"conv-{index}") for index in range(count)]


def decide(client, item_id: str, **body):
    return client.post(f"{ITEMS}{item_id}/decisions/", {"justification": "Checked.", **body})


# --- Decisions --------------------------------------------------------------------------

# Who calls: the token with its user, the user's groups (read once per request). The
# item is found under the decision's lock, with whether the user reviews its queue.
DECISION_LOOKUP = 2
# The decision's transaction: SAVEPOINT; the item locked with its queue, integration,
# gold answer and whether the user reviews its queue; every decision on the item, with
# its reviewer; the decision and its history row; the item's new state and its history
# row; the audit chain: the decision read back, the head locked, the seal, the head
# moved; RELEASE.
DECISION_WRITES = 12
# A final state with a callback URL: the outbox message and its history row (the body
# is the locked item with the decisions already read).
WEBHOOK = 2
# Reason codes: the codes looked up, their links to the decision inserted.
REASON_CODES = 2


def test_an_approval_through_the_api(api, staff, review_all, django_assert_num_queries):
    first, item_id = pending_items(api, 2)
    assert decide(staff, first, action="approve").status_code == 201
    with django_assert_num_queries(DECISION_LOOKUP + DECISION_WRITES + WEBHOOK):
        response = decide(staff, item_id, action="approve")
    assert response.status_code == 201
    assert [d["action"] for d in response.json()["item"]["decisions"]] == ["approve"]


def test_a_rejection_with_a_reason_code_through_the_api(api, staff, review_all, django_assert_num_queries):
    ReasonCodeFactory(code="wrong_facts", applies_to=["reject"])
    first, item_id = pending_items(api, 2)
    assert decide(staff, first, action="reject", reason_codes=["wrong_facts"]).status_code == 201
    with django_assert_num_queries(DECISION_LOOKUP + DECISION_WRITES + WEBHOOK + REASON_CODES):
        response = decide(staff, item_id, action="reject", reason_codes=["wrong_facts"])
    assert response.status_code == 201
    assert response.json()["item"]["status"] == ItemStatus.REJECTED


def test_a_first_of_two_approvals_through_the_api(
    api, staff, queue, reviewer, review_all, django_assert_num_queries
):
    queue.required_approvals = 2
    queue.save()
    first, item_id = pending_items(api, 2)
    assert decide(staff, first, action="approve").status_code == 201
    with django_assert_num_queries(DECISION_LOOKUP + DECISION_WRITES):
        response = decide(staff, item_id, action="approve")
    assert response.status_code == 201
    assert response.json()["item"]["status"] == ItemStatus.PENDING


# --- Submissions ------------------------------------------------------------------------

# The API key with its integration; the gate's rule revision (every submission here:
# tests set HITL_RULES_REFRESH_SECONDS to 0, production once a second per process);
# SAVEPOINT, the item, its history row, RELEASE.
SUBMISSION = 6
# An auto-approved action: its execution and its webhook in the outbox (each message
# with its history row), and the item read back with its decisions for the webhook.
AUTO_APPROVED_ACTION = 6


def test_a_submission_held_for_review(api, review_all, django_assert_num_queries):
    submit(api)
    with django_assert_num_queries(SUBMISSION):
        response = api.post(ITEMS, submission(external_id="held"), HTTP_IDEMPOTENCY_KEY="held-1")
    assert response.status_code == 201 and response.json()["status"] == ItemStatus.PENDING


def test_an_auto_approved_action(api, callback, django_assert_num_queries):
    callback.action_url = "https://bot.example/actions"
    callback.save()
    submit(api)
    with django_assert_num_queries(SUBMISSION + AUTO_APPROVED_ACTION):
        response = api.post(ITEMS, action_submission(), HTTP_IDEMPOTENCY_KEY="refund-1")
    assert response.status_code == 201 and response.json()["status"] == ItemStatus.AUTO_APPROVED


# --- Reads ------------------------------------------------------------------------------

# Either caller: the page's items with their queue and claimant, then their decisions
# with the reviewers. An integration is its API key; a reviewer their token and groups.
READ = 2
CALLER = {"integration": 1, "reviewer": 2}


@pytest.fixture
def decided(api, review_all, queue, reviewer):
    """Fifty items, every other one decided (so the page has decisions to show)."""
    other = make_reviewer("second", queue)
    ids = pending_items(api, 50)
    for index, item_id in enumerate(ids[::2]):
        services.decide(
            item=ReviewItem(pk=item_id),
            user=reviewer if index % 2 else other,
            action="approve",
            justification="Checked.",
        )
    return ids


@pytest.mark.parametrize("who", ["integration", "reviewer"])
@pytest.mark.parametrize("page", [5, 50])
def test_a_list_page(request, who, page, decided, django_assert_num_queries):
    client = request.getfixturevalue("api" if who == "integration" else "staff")
    with django_assert_num_queries(CALLER[who] + READ):
        response = client.get(ITEMS, {"page_size": page})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == page and any(row["decisions"] for row in results)


@pytest.mark.parametrize("who", ["integration", "reviewer"])
def test_a_single_read(request, who, decided, django_assert_num_queries):
    client = request.getfixturevalue("api" if who == "integration" else "staff")
    with django_assert_num_queries(CALLER[who] + READ):
        response = client.get(f"{ITEMS}{decided[0]}/")
    assert response.status_code == 200 and response.json()["decisions"]


# --- The representation itself -------------------------------------------------------------


def test_the_representation_is_drfs_own(api, staff, review_all, queue, reviewer, monkeypatch):
    """`FieldsOnce` skips DRF's per-item bookkeeping, never its answer: every state an
    item can be in serialises as DRF's own loop would serialise it."""
    from rest_framework import serializers

    from reviews.representation import (
        FieldsOnce,
        ItemSerializer,
        ItemSummarySerializer,
        for_representation,
        summary_rows,
        summary_values,
    )

    ReasonCodeFactory(code="wrong_facts", applies_to=["reject"])
    pending, claimed, approved, rejected = pending_items(api, 4)
    services.claim(item=ReviewItem(pk=claimed), user=reviewer)
    decide(staff, approved, action="approve")
    decide(staff, rejected, action="reject", reason_codes=["wrong_facts"])
    review_all.enabled = False
    review_all.save()
    auto_approved = api.post(ITEMS, action_submission(external_id="auto")).json()["id"]
    ids = [pending, claimed, approved, rejected, auto_approved]
    request = staff.get(ITEMS).wsgi_request

    def answers():
        items = list(for_representation(ReviewItem.objects.filter(pk__in=ids)).order_by("pk"))
        return (
            ItemSerializer(items, many=True, context={"request": request}).data,
            ItemSummarySerializer(items, many=True, context={"request": request}).data,
        )

    fast = answers()
    monkeypatch.setattr(FieldsOnce, "to_representation", serializers.Serializer.to_representation)
    assert answers() == fast
    # A list page's summaries are built from plain rows: the same answer, key for key.
    rows = list(summary_values(ReviewItem.objects.filter(pk__in=ids)).order_by("pk"))
    from_rows = summary_rows(rows, request)
    assert [list(row) for row in from_rows] == [list(row) for row in fast[1]]
    assert json.dumps(from_rows) == json.dumps(fast[1])
    assert {row["status"] for row in fast[0]} == {
        "pending",
        "in_review",
        "approved",
        "rejected",
        "auto_approved",
    }


def test_the_webhook_body_is_the_item_as_stored(api, review_all, queue, reviewer, other_reviewer):
    """A decision's webhook body is built from the row locked for it and the decisions
    already read: it is what a read of the stored item shows, decision for decision,
    across rounds (an escalation, then two approvals), edits and rejections."""
    from reviews.models import OutboxMessage
    from reviews.representation import item_representation
    from tests.factories import QueueFactory

    senior = QueueFactory(slug="senior", required_approvals=2)
    senior.reviewer_groups.add(*queue.reviewer_groups.all())
    third = make_reviewer("third", queue)
    ReasonCodeFactory(code="wrong_facts", applies_to=["reject", "edit"])
    escalated, edited, rejected = pending_items(api, 3)

    def decide_as(user, item_id, action, **extra):
        services.decide(item=ReviewItem(pk=item_id), user=user, action=action, justification="Seen.", **extra)

    decide_as(reviewer, escalated, "escalate", escalate_to="senior")
    decide_as(other_reviewer, escalated, "approve")
    decide_as(third, escalated, "approve")
    decide_as(
        reviewer,
        edited,
        "edit",
        reason_codes=["wrong_facts"],
        edited_output={"text": "Ça arrive demain, 2.50 € près.", "score": 0.1, "n": 10**20},
    )
    decide_as(reviewer, rejected, "reject", reason_codes=["wrong_facts"])

    for item_id, status, actions in [
        (escalated, ItemStatus.APPROVED, ["escalate", "approve", "approve"]),
        (edited, ItemStatus.EDITED, ["edit"]),
        (rejected, ItemStatus.REJECTED, ["reject"]),
    ]:
        body = OutboxMessage.objects.get(item_id=item_id, kind=OutboxMessage.Kind.CALLBACK).payload["data"]
        assert body == item_representation(ReviewItem.objects.get(pk=item_id))
        assert body["status"] == status and [d["action"] for d in body["decisions"]] == actions
