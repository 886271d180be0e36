"""`review_url`: every item representation links to the item's review page in the
admin (SPEC section 10 amendments), so a client can say "waiting for review: <link>".

API answers build it from the request; webhook bodies, written without one, from
HITL_PUBLIC_URL, or as a path when that is unset.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from reviews import services
from reviews.models import ReviewItem
from reviews.representation import item_representation
from tests.factories import GateRuleFactory, submission
from tests.reviews.test_api import ITEMS, ApiClient, token_client

QUEUES = "/api/v1/queues/"


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(name="Review everything", queue=queue)


@pytest.fixture
def api(integration):
    return ApiClient(f"Api-Key {services.issue_api_key(integration=integration)}")


def page_of(item_id) -> str:
    return f"http://testserver/admin/reviews/reviewitem/{item_id}/review/"


def test_the_review_page_path_is_the_workspaces(db):
    item_id = "5f0c2a8e-3b1d-4c3e-9a55-0e6f1d2b7c41"
    assert reverse("admin:reviews_review", args=[item_id]) == f"/admin/reviews/reviewitem/{item_id}/review/"


def test_submit_detail_list_and_cancel_answers_carry_the_absolute_review_url(api, review_all):
    submitted = api.post(ITEMS, submission()).json()
    item_id = submitted["id"]
    assert submitted["review_url"] == page_of(item_id)
    assert api.get(f"{ITEMS}{item_id}/").json()["review_url"] == page_of(item_id)
    [row] = api.get(ITEMS).json()["results"]
    assert row["review_url"] == page_of(item_id)
    assert api.post(f"{ITEMS}{item_id}/cancel/").json()["review_url"] == page_of(item_id)


def test_replayed_submissions_answer_the_same_review_url(api, review_all):
    first = api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="turn-1").json()
    replay = api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="turn-1").json()
    assert replay["review_url"] == first["review_url"] == page_of(first["id"])


def test_claim_and_decision_answers_carry_it_for_reviewers(api, review_all, reviewer):
    item_id = api.post(ITEMS, submission()).json()["id"]
    client = token_client(reviewer)
    assert client.post(f"{QUEUES}general/claim-next/").json()["review_url"] == page_of(item_id)
    decision = client.post(f"{ITEMS}{item_id}/decisions/", {"action": "approve", "justification": "Fine."})
    assert decision.json()["item"]["review_url"] == page_of(item_id)


def test_webhook_bodies_use_the_public_url(integration, review_all, settings):
    settings.HITL_PUBLIC_URL = "https://hitl.example.com"
    item = services.submit_item(integration=integration, payload=submission()).item
    assert item_representation(item)["review_url"] == (
        f"https://hitl.example.com/admin/reviews/reviewitem/{item.pk}/review/"
    )


def test_without_a_public_url_webhook_bodies_carry_the_path(integration, review_all, settings):
    settings.HITL_PUBLIC_URL = ""
    item = services.submit_item(integration=integration, payload=submission()).item
    assert item_representation(ReviewItem.objects.get(pk=item.pk))["review_url"] == (
        f"/admin/reviews/reviewitem/{item.pk}/review/"
    )
