"""The integration API over HTTP (Django's test client): statuses, scoping, bad input."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.authtoken.models import Token

from reviews import services
from reviews.models import ApiKey, Decision, Incident, ItemStatus, ReviewItem
from tests.factories import GateRuleFactory, action_submission, submission

ITEMS = "/api/v1/items/"
EVALUATE = "/api/v1/evaluate/"


class ApiClient:
    """A thin JSON client carrying an Authorization header."""

    def __init__(self, authorization: str = ""):
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    def get(self, path, data=None, **extra):
        return self.client.get(path, data, **self.headers, **extra)

    def post(self, path, body=None, content_type="application/json", **extra):
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body if body is not None else {})
        return self.client.post(path, raw, content_type=content_type, **self.headers, **extra)


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(name="Review everything", queue=queue)


@pytest.fixture
def api(integration):
    return ApiClient(f"Api-Key {services.issue_api_key(integration=integration)}")


@pytest.fixture
def other_api(other_integration):
    return ApiClient(f"Api-Key {services.issue_api_key(integration=other_integration)}")


def token_client(user) -> ApiClient:
    return ApiClient(f"Token {Token.objects.get_or_create(user=user)[0].key}")


# --- Authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    ["", "Api-Key nope", "Api-Key hitl_000000000000.secret", "Bearer x", "Api-Key "],
)
def test_requests_without_a_valid_key_are_401(db, authorization):
    response = ApiClient(authorization).post(ITEMS, submission())
    assert response.status_code == 401
    assert response.json()["code"] in {"not_authenticated", "authentication_failed"}


def test_a_revoked_key_is_refused(integration):
    key = services.issue_api_key(integration=integration)
    ApiKey.objects.update(revoked_at="2020-01-01T00:00:00Z")
    assert ApiClient(f"Api-Key {key}").post(ITEMS, submission()).status_code == 401


def test_a_deactivated_integration_is_refused(integration, api):
    integration.is_active = False
    integration.save()
    assert api.post(ITEMS, submission()).status_code == 401


def test_several_keys_work_side_by_side_for_rotation(integration):
    first = ApiClient(f"Api-Key {services.issue_api_key(integration=integration)}")
    second = ApiClient(f"Api-Key {services.issue_api_key(integration=integration, name='next')}")
    assert first.post(ITEMS, submission()).status_code == 201
    assert second.post(ITEMS, submission()).status_code == 201


def test_reviewers_cannot_submit(reviewer):
    assert token_client(reviewer).post(ITEMS, submission()).status_code == 403


# --- Submission ------------------------------------------------------------------------------


def test_submit_held_for_review_answers_201_with_the_queue(api, review_all):
    response = api.post(ITEMS, submission())
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "status", "queue", "matched_rules", "due_at", "url", "review_url"}
    assert body["status"] == "pending" and body["queue"] == "general"
    assert body["matched_rules"] == [{"id": review_all.pk, "name": "Review everything", "outcome": "review"}]
    assert body["due_at"] and body["url"].endswith(f"/api/v1/items/{body['id']}/")


def test_submit_no_rule_is_auto_approved(api):
    body = api.post(ITEMS, submission()).json()
    assert body["status"] == "auto_approved" and body["queue"] is None and body["due_at"] is None


def test_submitted_item_is_readable_with_its_representation(api, review_all):
    item_id = api.post(ITEMS, action_submission()).json()["id"]
    response = api.get(f"{ITEMS}{item_id}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id", "external_id", "kind", "status", "queue", "input", "output", "action", "context", "signals",
        "metadata", "matched_rules", "due_at", "claimed_by", "claim_expires_at", "final_output",
        "final_action", "execution_status", "decisions", "created_at", "decided_at", "review_url",
    }  # fmt: skip
    assert body["action"]["type"] == "payment.refund"
    assert body["final_action"] is None and body["decisions"] == []


def test_decisions_and_final_version_appear_on_the_item(api, review_all, reviewer):
    item_id = api.post(ITEMS, submission()).json()["id"]
    item = ReviewItem.objects.get(pk=item_id)
    services.decide(
        item=item, user=reviewer, action="approve", justification="Checked the hours page.", reason_codes=[]
    )
    body = api.get(f"{ITEMS}{item_id}/").json()
    assert body["status"] == "approved" and body["final_output"] == body["output"]
    assert body["decisions"] == [
        {
            "action": "approve",
            "reviewer": "reviewer",
            "justification": "Checked the hours page.",
            "reason_codes": [],
            "created_at": body["decisions"][0]["created_at"],
        }
    ]
    assert body["decided_at"]


def test_callback_url_defaults_to_the_integrations(api, integration, review_all):
    integration.callback_url = "https://bot.example/hitl"
    integration.save()
    item_id = api.post(ITEMS, submission()).json()["id"]
    assert ReviewItem.objects.get(pk=item_id).callback_url == "https://bot.example/hitl"


# --- Idempotency ---------------------------------------------------------------------------------


def test_replay_with_the_same_key_returns_the_first_response(api, review_all):
    first = api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="conv-1")
    again = api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="conv-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert ReviewItem.objects.count() == 1


def test_a_replay_answers_as_first_answered_even_after_a_decision(api, review_all, reviewer):
    first = api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="conv-1").json()
    item = ReviewItem.objects.get(pk=first["id"])
    services.decide(item=item, user=reviewer, action="approve", justification="ok")
    again = api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="conv-1")
    assert again.status_code == 200 and again.json() == first


def test_same_key_with_another_callback_url_is_422(api, review_all, settings):
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = True
    first = submission(callback_url="http://127.0.0.1:9000/a")
    api.post(ITEMS, first, HTTP_IDEMPOTENCY_KEY="conv-1")
    other = submission(callback_url="http://127.0.0.1:9000/b")
    response = api.post(ITEMS, other, HTTP_IDEMPOTENCY_KEY="conv-1")
    assert response.status_code == 422


def test_same_key_with_another_body_is_422(api, review_all):
    api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="conv-1")
    response = api.post(ITEMS, submission(external_id="x"), HTTP_IDEMPOTENCY_KEY="conv-1")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_integration(api, other_api, review_all):
    mine = api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="conv-1").json()["id"]
    theirs = other_api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="conv-1")
    assert theirs.status_code == 201 and theirs.json()["id"] != mine


def test_an_overlong_idempotency_key_is_400(api):
    assert api.post(ITEMS, submission(), HTTP_IDEMPOTENCY_KEY="k" * 256).status_code == 400


# --- Bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"output": {"text": "x"}}, "kind"),
        ({"kind": "poem", "output": {"text": "x"}}, "kind"),
        ({"kind": "output"}, "output"),
        ({"kind": "output", "output": "just text"}, "output"),
        ({"kind": "action", "output": {"text": "x"}}, "action"),
        ({"kind": "action", "action": {"params": {}}}, "action"),
        ({"kind": "action", "action": {"type": "x" * 101}}, "action"),
        ({"kind": "action", "action": ["payment.refund"]}, "action"),
        ({"kind": "action", "action": {"type": "a", "params": [1]}}, "action"),
        ({"kind": "output", "output": {}, "action": {"type": "a"}}, "action"),
        ({"kind": "output", "output": {}, "signals": [0.4]}, "signals"),
        ({"kind": "output", "output": {}, "metadata": "x"}, "metadata"),
        ({"kind": "output", "output": {}, "external_id": "x" * 256}, "external_id"),
        ({"kind": "output", "output": {}, "signal": {}}, "signal"),
        ({"kind": "output", "output": {}, "callback_url": "ftp://bot.example/"}, "callback_url"),
        ({"kind": "output", "output": {}, "callback_url": "not a url"}, "callback_url"),
    ],
)
def test_invalid_submissions_are_400_with_the_field_named(api, body, field):
    response = api.post(ITEMS, body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not ReviewItem.objects.exists()


@pytest.mark.parametrize(
    ("signals", "field"),
    [
        ({"confidence": "0.1"}, "confidence"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"confidence": None}, "confidence"),
        ({"rubric_score": "2"}, "rubric_score"),
        ({"evaluator_disagreement": [0.4]}, "evaluator_disagreement"),
        ({"category": 7}, "category"),
        ({"filter_flags": "pii"}, "filter_flags"),
        ({"filter_flags": ["pii", 3]}, "filter_flags"),
    ],
)
def test_a_documented_signal_of_the_wrong_type_is_a_400_naming_it(api, review_all, signals, field):
    """A string confidence used to make `confidence lt 0.7` false, and the item passed unreviewed."""
    response = api.post(ITEMS, submission(signals=signals))
    assert response.status_code == 400, response.content
    assert field in response.json()["signals"]
    assert not ReviewItem.objects.exists()
    assert api.post(EVALUATE, submission(signals=signals)).status_code == 400


def test_documented_signals_of_the_right_type_and_free_keys_are_accepted(api):
    signals = {
        "confidence": 0,
        "rubric_score": -2.5,
        "evaluator_disagreement": 1,
        "category": "finance",
        "filter_flags": [],
        "model": {"name": "gpt", "temperature": "0.2"},
    }
    response = api.post(ITEMS, submission(signals=signals))
    assert response.status_code == 201, response.content
    assert ReviewItem.objects.get().signals == signals


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://192.168.1.1/hook",
    ],
)
def test_callback_urls_on_private_addresses_are_refused(api, settings, url):
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = False
    response = api.post(ITEMS, submission(callback_url=url))
    assert response.status_code == 400 and "callback_url" in response.json()


def test_private_callback_urls_are_allowed_when_configured(api, settings):
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = True
    assert api.post(ITEMS, submission(callback_url="http://127.0.0.1:9000/hook")).status_code == 201


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2, 3]",
        b'"just a string"',
        b'{"kind": "output", "output": {"score": NaN}}',
        b'{"kind": "output", "output": {"score": Infinity}}',
        b'{"kind": "output", "output": {"text": "a\\u0000b"}}',
        b'{"kind": "output", "output": {"text": "\\ud800"}}',
        b'{"kind": "output", "output": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
        b'{"kind": "output", "output": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"\xff\xfe",
        b"",
    ],
)
def test_malformed_bodies_are_400_never_500(api, raw):
    response = api.post(ITEMS, raw)
    assert response.status_code == 400, response.content
    assert not ReviewItem.objects.exists()


def test_a_body_over_the_limit_is_413(api, settings):
    settings.HITL_MAX_SUBMISSION_BYTES = 2000
    response = api.post(ITEMS, submission(output={"text": "x" * 3000}))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_a_body_just_under_the_limit_is_accepted(api, settings):
    settings.HITL_MAX_SUBMISSION_BYTES = 5000
    body = json.dumps(submission(output={"text": "x" * 4000}))
    assert len(body) < 5000
    assert api.post(ITEMS, body).status_code == 201


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_other_content_types_are_415(api, content_type):
    response = api.post(ITEMS, json.dumps(submission()), content_type=content_type)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


# --- Listing and scoping -----------------------------------------------------------------------------


def test_list_shows_only_the_callers_items(api, other_api, review_all):
    mine = {api.post(ITEMS, submission()).json()["id"] for _ in range(2)}
    other_api.post(ITEMS, submission())
    body = api.get(ITEMS).json()
    assert {row["id"] for row in body["results"]} == mine


def test_the_list_is_a_summary_and_the_detail_is_whole(api, review_all):
    big = "x" * 200_000
    for index in range(3):
        api.post(ITEMS, submission(external_id=str(index), output={"text": big}, input={"prompt": big}))
    response = api.get(ITEMS)
    assert len(response.content) < 20_000  # three items of 400 kB each
    rows = response.json()["results"]
    assert len(rows) == 3
    for row in rows:
        assert not {"input", "output", "action", "context", "final_output", "final_action"} & set(row)
        assert {"id", "status", "queue", "signals", "matched_rules", "execution_status"} <= set(row)
    whole = api.get(f"{ITEMS}{rows[0]['id']}/").json()
    assert whole["output"] == {"text": big} and whole["input"] == {"prompt": big}


def test_list_filters(api, review_all):
    api.post(ITEMS, submission(external_id="a"))
    api.post(ITEMS, action_submission(external_id="b"))
    assert [r["external_id"] for r in api.get(ITEMS, {"kind": "action"}).json()["results"]] == ["b"]
    assert [r["external_id"] for r in api.get(ITEMS, {"external_id": "a"}).json()["results"]] == ["a"]
    assert len(api.get(ITEMS, {"status": "pending", "queue": "general"}).json()["results"]) == 2
    assert api.get(ITEMS, {"queue": "other"}).json()["results"] == []
    assert len(api.get(ITEMS, {"created_after": "2000-01-01T00:00:00Z"}).json()["results"]) == 2
    assert api.get(ITEMS, {"created_before": "2000-01-01T00:00:00Z"}).json()["results"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"status": "nope"},
        {"created_after": "yesterday"},
        {"kind": "poem"},
        {"created_after": "0001-01-01T00:00:00+01:00"},
        {"created_before": "9999-12-31T23:59:59-01:00"},
    ],
)
def test_bad_filters_are_400(api, params):
    response = api.get(ITEMS, params)
    assert response.status_code == 400
    assert set(response.json()) <= {"status", "created_after", "created_before", "kind"}


def test_an_invalid_cursor_is_404_with_a_code(api):
    response = api.get(ITEMS, {"cursor": "garbage"})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_offsets_postgresql_refuses_are_normalised_to_utc(api, review_all):
    api.post(ITEMS, submission())
    response = api.get(ITEMS, {"created_before": "2999-06-01T12:00:00-19:03"})
    assert response.status_code == 200 and len(response.json()["results"]) == 1


def test_missing_items_do_not_name_the_model(api):
    body = api.get(f"{ITEMS}{uuid.uuid4()}/").json()
    assert body == {"detail": "Not found.", "code": "not_found"}


def test_list_paginates_with_a_cursor(api, review_all):
    for index in range(5):
        api.post(ITEMS, submission(external_id=str(index)))
    first = api.get(ITEMS, {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    seen = [row["external_id"] for row in first["results"]]
    page = first
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [row["external_id"] for row in page["results"]]
    assert sorted(seen) == ["0", "1", "2", "3", "4"]


def test_list_query_count_does_not_grow_with_items(api, review_all, reviewer, django_assert_max_num_queries):
    for _ in range(3):
        item = ReviewItem.objects.get(pk=api.post(ITEMS, submission()).json()["id"])
        services.decide(item=item, user=reviewer, action="approve", justification="ok")
    with django_assert_max_num_queries(8) as small:
        api.get(ITEMS)
    queries_for_three = len(small)
    for _ in range(12):
        item = ReviewItem.objects.get(pk=api.post(ITEMS, submission()).json()["id"])
        services.decide(item=item, user=reviewer, action="approve", justification="ok")
    with django_assert_max_num_queries(queries_for_three):
        api.get(ITEMS)


def test_spot_check_copies_stay_out_of_the_integrations_list(api, queue):
    GateRuleFactory(name="Sample", outcome="spot_check", queue=queue)
    item_id = api.post(ITEMS, submission()).json()["id"]
    assert [row["id"] for row in api.get(ITEMS).json()["results"]] == [item_id]
    copy = ReviewItem.objects.get(spot_check_of_id=item_id)
    assert api.get(f"{ITEMS}{copy.pk}/").status_code == 404


def test_another_integrations_item_is_404(api, other_api, review_all):
    item_id = api.post(ITEMS, submission()).json()["id"]
    assert other_api.get(f"{ITEMS}{item_id}/").status_code == 404
    assert other_api.post(f"{ITEMS}{item_id}/cancel/").status_code == 404
    assert ReviewItem.objects.get(pk=item_id).status == ItemStatus.PENDING


@pytest.mark.parametrize("item_id", ["not-a-uuid", str(uuid.uuid4())], ids=["not-a-uuid", "unknown-uuid"])
def test_unknown_item_is_404(api, item_id):
    response = api.get(f"{ITEMS}{item_id}/")
    assert response.status_code == 404


def test_reviewers_read_only_their_queues_items(api, review_all, reviewer, outsider):
    item_id = api.post(ITEMS, submission()).json()["id"]
    api.post(ITEMS, submission(signals={}))  # also held, same queue
    assert token_client(reviewer).get(f"{ITEMS}{item_id}/").status_code == 200
    assert len(token_client(reviewer).get(ITEMS).json()["results"]) == 2
    assert token_client(outsider).get(f"{ITEMS}{item_id}/").status_code == 404
    assert token_client(outsider).get(ITEMS).json()["results"] == []


def test_a_decision_on_an_item_the_reviewer_may_not_see_is_404(api, review_all, reviewer, outsider):
    item_id = api.post(ITEMS, submission()).json()["id"]
    body = {"action": "approve", "justification": "Looks right."}
    for target in (item_id, str(uuid.uuid4())):
        response = token_client(outsider).post(f"{ITEMS}{target}/decisions/", body)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert not Decision.objects.exists()
    assert ReviewItem.objects.get(pk=item_id).status == ItemStatus.PENDING
    assert token_client(reviewer).post(f"{ITEMS}{item_id}/decisions/", body).status_code == 201


def test_compliance_reads_everything(api, other_api, compliance, reviewer, review_all):
    api.post(ITEMS, submission())
    review_all.enabled = False
    review_all.save()
    other_api.post(ITEMS, submission())  # auto-approved: in no queue
    assert len(token_client(compliance).get(ITEMS).json()["results"]) == 2
    assert len(token_client(reviewer).get(ITEMS).json()["results"]) == 1


def test_session_users_can_read(client, api, reviewer, review_all):
    item_id = api.post(ITEMS, submission()).json()["id"]
    client.force_login(reviewer)
    assert client.get(f"{ITEMS}{item_id}/").status_code == 200


def test_anonymous_and_plain_users_cannot_read(api, review_all):
    from tests.factories import UserFactory

    item_id = api.post(ITEMS, submission()).json()["id"]
    assert ApiClient().get(f"{ITEMS}{item_id}/").status_code == 401
    assert token_client(UserFactory(username="nobody")).get(ITEMS).status_code == 403


# --- Cancel -------------------------------------------------------------------------------------------


def test_cancel_a_pending_item(api, review_all):
    item_id = api.post(ITEMS, submission()).json()["id"]
    response = api.post(f"{ITEMS}{item_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_cancel_a_decided_item_is_409(api, review_all, reviewer):
    item_id = api.post(ITEMS, submission()).json()["id"]
    services.decide(
        item=ReviewItem.objects.get(pk=item_id), user=reviewer, action="approve", justification="ok"
    )
    response = api.post(f"{ITEMS}{item_id}/cancel/")
    assert response.status_code == 409
    assert response.json() == {"detail": "This item is already approved.", "code": "already_decided"}


def test_reviewers_cannot_cancel(api, review_all, reviewer):
    item_id = api.post(ITEMS, submission()).json()["id"]
    assert token_client(reviewer).post(f"{ITEMS}{item_id}/cancel/").status_code == 403


# --- Evaluate -------------------------------------------------------------------------------------------


def test_evaluate_answers_what_would_happen_and_stores_nothing(api, review_all):
    response = api.post("/api/v1/evaluate/", submission())
    assert response.status_code == 200
    assert response.json() == {
        "status": "pending",
        "queue": "general",
        "matched_rules": [{"id": review_all.pk, "name": "Review everything", "outcome": "review"}],
    }
    assert not ReviewItem.objects.exists()


def test_evaluate_validates_like_submit(api):
    assert api.post("/api/v1/evaluate/", {"kind": "output"}).status_code == 400


# --- Incidents ------------------------------------------------------------------------------------------


def test_integration_reports_an_incident_on_its_item(api, review_all):
    item_id = api.post(ITEMS, submission()).json()["id"]
    response = api.post(
        "/api/v1/incidents/",
        {"item": item_id, "severity": "high", "description": "Customer got wrong hours."},
    )
    assert response.status_code == 201
    assert response.json()["source"] == "integration"
    assert Incident.objects.get().item_id == uuid.UUID(item_id)


def test_incident_on_another_integrations_item_is_404(api, other_api, review_all):
    item_id = api.post(ITEMS, submission()).json()["id"]
    body = {"item": item_id, "severity": "high", "description": "x"}
    assert other_api.post("/api/v1/incidents/", body).status_code == 404


def test_reviewer_reports_an_incident_in_their_queue(api, review_all, reviewer, outsider):
    item_id = api.post(ITEMS, submission()).json()["id"]
    body = {"item": item_id, "severity": "low", "description": "Slipped through."}
    assert token_client(outsider).post("/api/v1/incidents/", body).status_code == 404
    response = token_client(reviewer).post("/api/v1/incidents/", body)
    assert response.status_code == 201 and response.json()["source"] == "reviewer"


@pytest.mark.parametrize(
    "body", [{"severity": "high", "description": "x"}, {"item": "x", "severity": "high", "description": "x"}]
)
def test_invalid_incident_is_400(api, body):
    assert api.post("/api/v1/incidents/", body).status_code == 400


def test_compliance_cannot_report_incidents(api, review_all, compliance):
    item_id = api.post(ITEMS, submission()).json()["id"]
    body = {"item": item_id, "severity": "low", "description": "x"}
    assert token_client(compliance).post("/api/v1/incidents/", body).status_code == 403


# --- Throttling, health and schema ----------------------------------------------------------------------


def test_integrations_are_throttled_with_retry_after(api, other_api, settings):
    settings.HITL_INTEGRATION_RATE = "3/minute"
    statuses = [api.get(ITEMS).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api.get(ITEMS)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert response.json()["code"] == "throttled"
    assert other_api.get(ITEMS).status_code == 200


def test_healthz(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["database"] == "ok"


def test_schema_and_docs_are_served_without_a_cdn(client, db):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {
        "/api/v1/items/",
        "/api/v1/items/{id}/",
        "/api/v1/items/{id}/cancel/",
        "/api/v1/evaluate/",
    } <= set(paths)
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn" not in html.lower() and "/static/drf_spectacular_sidecar/" in html


def test_an_expired_key_is_refused(integration):
    key = services.issue_api_key(integration=integration)
    ApiKey.objects.update(expires_at="2020-01-01T00:00:00Z")
    assert ApiClient(f"Api-Key {key}").post(ITEMS, submission()).status_code == 401


def test_a_key_revoked_in_the_admin_stops_working(client, integration, policy_admin):
    key = services.issue_api_key(integration=integration)
    api = ApiClient(f"Api-Key {key}")
    assert api.get(ITEMS).status_code == 200
    client.force_login(policy_admin)
    selected = list(ApiKey.objects.values_list("pk", flat=True))
    data = {"action": "revoke", "index": 0, "select_across": 0, "_selected_action": selected}
    assert client.post("/admin/reviews/apikey/", data).status_code == 302
    assert api.get(ITEMS).status_code == 401


def test_people_are_throttled_too(reviewer, settings):
    settings.HITL_STAFF_RATE = "2/minute"
    client = token_client(reviewer)
    assert [client.get(ITEMS).status_code for _ in range(3)] == [200, 200, 429]
