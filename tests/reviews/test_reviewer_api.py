"""The reviewer API: queues, claims and decisions over HTTP, through the same services."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from reviews import services
from reviews.models import ItemStatus, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, QueueFactory, ReasonCodeFactory, submission
from tests.reviews.test_api import ApiClient, token_client

QUEUES = "/api/v1/queues/"


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(name="Review everything", queue=queue)


@pytest.fixture
def items(integration, review_all):
    return [services.submit_item(integration=integration, payload=submission()).item for _ in range(3)]


def decide_url(item) -> str:
    return f"/api/v1/items/{item.pk}/decisions/"


def test_queues_lists_only_the_callers_queues_with_their_workload(reviewer, items, queue):
    QueueFactory(slug="elsewhere")
    services.claim_next(queue=queue, user=reviewer)
    [row] = token_client(reviewer).get(QUEUES).json()
    assert row["slug"] == "general"
    assert (row["pending"], row["in_review"], row["sla_breaches"]) == (2, 1, 0)
    assert row["oldest_pending_seconds"] >= 0


def test_queues_count_is_not_inflated_by_several_reviewer_groups(reviewer, items, queue):
    from django.contrib.auth.models import Group

    extra = Group.objects.create(name="second-group")
    queue.reviewer_groups.add(extra)
    reviewer.groups.add(extra)
    [row] = token_client(reviewer).get(QUEUES).json()
    assert row["pending"] == 3


def test_queues_query_count_is_constant(reviewer, integration, queue, django_assert_num_queries):
    GateRuleFactory(name="Review everything", queue=queue)
    client = token_client(reviewer)
    client.get(QUEUES)
    for _ in range(5):
        services.submit_item(integration=integration, payload=submission())
    for slug in ("q1", "q2", "q3"):
        extra = QueueFactory(slug=slug)
        extra.reviewer_groups.add(*queue.reviewer_groups.all())
    with django_assert_num_queries(3):  # the token, the Reviewers role, the queues with their counts
        assert len(client.get(QUEUES).json()) == 4


@pytest.mark.parametrize("who", ["outsider", "compliance", "anonymous"])
def test_queues_is_for_reviewers(request, who, items):
    client = ApiClient() if who == "anonymous" else token_client(request.getfixturevalue(who))
    response = client.get(QUEUES)
    if who == "outsider":
        assert response.status_code == 200 and response.json() == []
    else:
        assert response.status_code in (401, 403)


def test_claim_next_answers_the_item_then_204_when_empty(reviewer, other_reviewer, items, queue):
    first = token_client(reviewer).post(f"{QUEUES}general/claim-next/")
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "in_review" and body["claimed_by"] == "reviewer" and body["claim_expires_at"]
    second = token_client(other_reviewer).post(f"{QUEUES}general/claim-next/").json()["id"]
    third = token_client(make_reviewer("third", queue)).post(f"{QUEUES}general/claim-next/").json()["id"]
    assert len({body["id"], second, third}) == 3
    assert (
        token_client(make_reviewer("fourth", queue)).post(f"{QUEUES}general/claim-next/").status_code == 204
    )


def test_claim_next_on_someone_elses_queue_is_404(outsider, items):
    assert token_client(outsider).post(f"{QUEUES}general/claim-next/").status_code == 404
    assert not ReviewItem.objects.filter(status=ItemStatus.IN_REVIEW).exists()


def test_integrations_cannot_use_reviewer_endpoints(integration, items):
    api = ApiClient(f"Api-Key {services.issue_api_key(integration=integration)}")
    assert api.get(QUEUES).status_code == 403
    assert api.post(f"{QUEUES}general/claim-next/").status_code == 403
    body = {"action": "approve", "justification": "self-approval"}
    assert api.post(decide_url(items[0]), body).status_code == 403
    assert api.post(f"/api/v1/items/{items[0].pk}/release/").status_code == 403


def test_release_gives_the_claim_back(reviewer, other_reviewer, items, queue):
    client = token_client(reviewer)
    item_id = client.post(f"{QUEUES}general/claim-next/").json()["id"]
    assert token_client(other_reviewer).post(f"/api/v1/items/{item_id}/release/").status_code == 409
    response = client.post(f"/api/v1/items/{item_id}/release/")
    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert client.post(f"/api/v1/items/{item_id}/release/").json()["code"] == "not_claimed"


def test_a_decision_is_201_with_the_new_item_state(reviewer, items):
    ReasonCodeFactory(code="verified", applies_to=["approve"])
    response = token_client(reviewer).post(
        decide_url(items[0]),
        {"action": "approve", "justification": "Matches the page.", "reason_codes": ["verified"]},
    )
    assert response.status_code == 201
    body = response.json()
    assert (
        body["action"] == "approve"
        and body["reviewer"] == "reviewer"
        and body["reason_codes"] == ["verified"]
    )
    assert body["item"]["status"] == "approved" and body["item"]["final_output"] == items[0].output


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "approve", "justification": "  "}, "justification"),
        ({"action": "reject", "justification": "No."}, "reason_codes"),
        ({"action": "edit", "justification": "x", "reason_codes": ["factual_error"]}, "edited_output"),
        ({"action": "maybe", "justification": "x"}, "action"),
        ({"action": "approve"}, "justification"),
        ({"action": "approve", "justification": "x", "edited_output": "text"}, "edited_output"),
        ({"action": "approve", "justification": "x", "extra": 1}, "extra"),
        ({"action": "escalate", "justification": "x"}, "escalate_to"),
    ],
)
def test_invalid_decisions_are_400_and_write_nothing(reviewer, items, body, field):
    ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"])
    response = token_client(reviewer).post(decide_url(items[0]), body)
    assert response.status_code == 400, response.content
    data = response.json()
    assert field in data or field in data.get("errors", {})
    assert not items[0].decisions.exists()


def test_deciding_twice_is_409(reviewer, other_reviewer, items):
    body = {"action": "approve", "justification": "ok"}
    assert token_client(reviewer).post(decide_url(items[0]), body).status_code == 201
    response = token_client(other_reviewer).post(decide_url(items[0]), body)
    assert response.status_code == 409 and response.json()["code"] == "already_decided"


def test_deciding_an_item_claimed_by_someone_else_is_409(reviewer, other_reviewer, items):
    item_id = token_client(reviewer).post(f"{QUEUES}general/claim-next/").json()["id"]
    item = ReviewItem.objects.get(pk=item_id)
    response = token_client(other_reviewer).post(
        decide_url(item), {"action": "approve", "justification": "ok"}
    )
    assert response.status_code == 409 and response.json()["code"] == "claimed_by_another"


def test_the_second_four_eyes_approval_by_the_same_reviewer_is_403(reviewer, items, queue):
    queue.required_approvals = 2
    queue.save()
    client = token_client(reviewer)
    body = {"action": "approve", "justification": "ok"}
    assert client.post(decide_url(items[0]), body).status_code == 201
    response = client.post(decide_url(items[0]), body)
    assert response.status_code == 403 and response.json()["code"] == "not_allowed"


@pytest.mark.parametrize("who", ["outsider", "compliance"])
def test_outsiders_and_compliance_cannot_decide(request, who, items):
    response = token_client(request.getfixturevalue(who)).post(
        decide_url(items[0]), {"action": "approve", "justification": "ok"}
    )
    assert response.status_code in (403, 404)
    assert not items[0].decisions.exists()
