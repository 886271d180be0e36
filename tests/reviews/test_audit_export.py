"""The audit export, GET /api/v1/audit/events/ (SPEC section 10): JSON Lines or CSV,
streamed, with the audit log's filters, for Compliance and superusers only."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.cache import cache
from django.utils import timezone

from reviews import audit, services
from reviews.audit import audit_events
from tests.reviews.test_api import ApiClient, token_client
from tests.reviews.test_audit_log import tell_story

EXPORT = "/api/v1/audit/events/"
SPEC_KEYS = {"at", "actor", "model", "object_id", "item", "event", "changes", "reason"}
CSV_HEADER = ["at", "actor_kind", "actor", "model", "object_id", "item", "event", "changes", "reason"]


def body(response) -> str:
    assert response.streaming is True
    return b"".join(response.streaming_content).decode()


def jsonl(response) -> list[dict]:
    return [json.loads(line) for line in body(response).splitlines()]


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()


@pytest.fixture
def story(integration, queue, reviewer):
    return tell_story(integration, queue, reviewer)


@pytest.fixture
def compliance_client(client, compliance):
    client.force_login(compliance)
    return client


def test_jsonl_is_the_default_one_event_a_line_as_the_spec_says(compliance_client, story):
    response = compliance_client.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/x-ndjson")
    today = timezone.now().strftime("%Y-%m-%d")
    assert response["Content-Disposition"] == f'attachment; filename="audit-events-{today}.jsonl"'
    events = jsonl(response)
    assert events == audit_events(limit=10_000)[0]
    for event in events:
        assert set(event) == SPEC_KEYS
        assert event["actor"]["kind"] in {"user", "integration", "system"} and event["actor"]["name"]
        assert event["event"] in {"created", "changed", "deleted"}
        assert all(isinstance(pair, list) and len(pair) == 2 for pair in event["changes"].values())
    [decision] = [e for e in events if e["model"] == "reviews.decision"]
    assert decision["actor"] == {"kind": "user", "name": "reviewer"}
    assert decision["item"] == story["first"]
    assert decision["changes"]["justification"] == [None, "Wrong hours."]


def test_csv_has_the_spec_columns_and_changes_as_json(compliance_client, story):
    response = compliance_client.get(EXPORT, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.reader(io.StringIO(body(response))))
    assert rows[0] == CSV_HEADER
    events = audit_events(limit=10_000)[0]
    assert len(rows) == len(events) + 1
    for row, event in zip(rows[1:], events, strict=True):
        record = dict(zip(CSV_HEADER, row, strict=True))
        assert record["at"] == event["at"] and record["model"] == event["model"]
        assert (record["actor_kind"], record["actor"]) == (event["actor"]["kind"], event["actor"]["name"])
        assert record["item"] == (event["item"] or "")
        assert json.loads(record["changes"]) == event["changes"]
        assert record["reason"] == (event["reason"] or "")


def test_a_csv_cell_a_spreadsheet_would_run_is_defused_and_jsonl_keeps_it(
    compliance_client, integration, queue, reviewer
):
    queue.name = '=HYPERLINK("https://evil.example","open")'
    queue._change_reason = "@SUM(A1)"
    queue.save()
    rows = list(
        csv.reader(
            io.StringIO(body(compliance_client.get(EXPORT, {"format": "csv", "model": "reviews.queue"})))
        )
    )
    record = dict(zip(CSV_HEADER, rows[1], strict=True))
    assert record["reason"] == "'@SUM(A1)"
    assert json.loads(record["changes"])["name"][1].startswith(
        "=HYPERLINK"
    )  # inside JSON: not a formula cell
    [latest, *_] = jsonl(compliance_client.get(EXPORT, {"model": "reviews.queue"}))
    assert latest["reason"] == "@SUM(A1)"


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"model": "reviews.decision"}, lambda e: e["model"] == "reviews.decision"),
        ({"actor": "reviewer"}, lambda e: e["actor"] == {"kind": "user", "name": "reviewer"}),
        ({"actor": "system:seed"}, lambda e: e["actor"] == {"kind": "system", "name": "seed"}),
        ({"actor_kind": "integration"}, lambda e: e["actor"]["kind"] == "integration"),
        ({"queue": "other"}, lambda e: e["model"] in {"reviews.queue", "policies.gaterule"}),
    ],
)
def test_filters_narrow_the_export(compliance_client, story, params, expected):
    events = jsonl(compliance_client.get(EXPORT, params))
    assert events and all(expected(e) for e in events)
    assert len(events) < len(audit_events(limit=10_000)[0])


def test_the_item_and_date_filters(compliance_client, story):
    events = jsonl(compliance_client.get(EXPORT, {"item": story["first"]}))
    assert {e["item"] for e in events} == {story["first"]}
    assert "reviews.deliveryattempt" in {e["model"] for e in events}
    everything = audit_events(limit=10_000)[0]
    moment = everything[len(everything) // 2]["at"]
    since = jsonl(compliance_client.get(EXPORT, {"since": moment}))
    until = jsonl(compliance_client.get(EXPORT, {"until": moment}))
    assert since + until == everything
    assert since[-1]["at"] >= moment > until[0]["at"]


def test_the_export_streams_every_page(compliance_client, story, monkeypatch):
    monkeypatch.setattr(audit, "EXPORT_PAGE_SIZE", 2)
    events = jsonl(compliance_client.get(EXPORT))
    assert len(events) > 6
    assert events == audit_events(limit=10_000)[0]


@pytest.mark.parametrize("persona", ["compliance", "superuser"])
def test_compliance_and_superusers_may_export_with_a_token(story, persona, request):
    response = token_client(request.getfixturevalue(persona)).get(EXPORT, {"format": "csv"})
    assert response.status_code == 200
    assert response.streaming is True


@pytest.mark.parametrize("persona", ["reviewer", "policy_admin", "outsider"])
def test_other_people_get_a_403(client, story, persona, request):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(EXPORT)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_integrations_get_a_403(integration, story):
    api = ApiClient(f"Api-Key {services.issue_api_key(integration=integration, name='auditor?')}")
    response = api.get(EXPORT)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"


def test_anonymous_callers_get_a_401(client, db):
    assert client.get(EXPORT).status_code == 401


@pytest.mark.parametrize(
    "params, field",
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2025-02-30"}, "since"),
        ({"until": "0001-01-01T00:00:00+05:00"}, "until"),
        ({"item": "nope"}, "item"),
        ({"model": "auth.permission"}, "model"),
        ({"queue": "no-such-queue"}, "queue"),
        ({"actor_kind": "robot"}, "actor_kind"),
        ({"format": "xlsx"}, "format"),
        ({"format": "csv", "since": "\x00"}, "since"),
    ],
)
def test_bad_filters_are_400s_naming_the_field(compliance_client, story, params, field):
    response = compliance_client.get(EXPORT, params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(response.json()) == [field]


def test_a_cursor_is_not_a_filter_of_the_export(compliance_client, story):
    events = jsonl(compliance_client.get(EXPORT, {"before": "garbage"}))
    assert events == audit_events(limit=10_000)[0]
