"""Feedback exports: every format's exact fields for a small fixture of decisions, the
window (incremental `since`, queue), who may start, read and download one, failures,
the formula guard and the rows counted as they are written."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from metrics import exports
from metrics.exports import start_export, write_export
from metrics.models import FeedbackExport
from reviews import services
from reviews.exceptions import InvalidInput, NotAllowed
from reviews.history import acting_as_system
from reviews.models import Queue, ReviewItem
from tests.factories import (
    GateConditionFactory,
    GateRuleFactory,
    QueueFactory,
    ReasonCodeFactory,
    action_submission,
    submission,
)
from tests.metrics.conftest import clock
from tests.reviews.test_api import ApiClient, token_client

EXPORTS = "/api/v1/exports/"
EDITED_TEXT = {"text": "We open at 9:00, Monday to Friday."}
EDITED_REFUND = {"type": "payment.refund", "params": {"order": "1182", "amount": 200.0, "currency": "EUR"}}


@pytest.fixture(autouse=True)
def exports_dir(tmp_path, monkeypatch) -> Path:
    """Export files go to this test's own folder (the field's storage is built once, at
    model load, from HITL_EXPORTS_DIR)."""
    folder = tmp_path / "exports"
    monkeypatch.setattr(FeedbackExport._meta.get_field("file"), "storage", FileSystemStorage(location=folder))
    return folder


@pytest.fixture(autouse=True)
def _tasks_run_here(eager):
    """The export task runs in this process after the commit, even when REDIS_URL is set."""


@dataclass
class Decided:
    """The fixture's items by name, the time they started at, and the window's end."""

    start: datetime
    end: datetime
    general: Queue
    four_eyes: Queue
    expert: Queue
    items: dict[str, ReviewItem] = field(default_factory=dict)

    def at(self, minutes: float) -> datetime:
        return self.start + timedelta(minutes=minutes)


@pytest.fixture
def decided(integration, queue, reviewer, other_reviewer, superuser) -> Decided:
    """Decisions made through the services at known times (T = two hours ago):

    A   general, approved T+10 by reviewer
    E   general, edited T+20 by other_reviewer (factual_error)
    R   general, rejected T+30 by reviewer (factual_error)
    FE  four-eyes, edited T+40 by reviewer (tone), approved T+50 by other_reviewer
    FA  four-eyes action, approved T+55 by reviewer and T+65 by other_reviewer
    X   general action, escalated T+60 by reviewer; its action edited in expert T+80 by
        other_reviewer (factual_error, tone)
    G   a gold copy of A in general, approved T+90 by reviewer: never exported
    P   general, pending
    """
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    expert = QueueFactory(slug="expert", name="Expert review")
    expert_group = Group.objects.create(name="expert-reviewers")
    expert.reviewer_groups.add(expert_group)
    other_reviewer.groups.add(expert_group)
    queue.escalation_queue = expert
    queue.save()
    four_eyes = QueueFactory(slug="four-eyes", name="Four eyes", required_approvals=2)
    four_eyes.reviewer_groups.add(*queue.reviewer_groups.all())
    for name, priority, target, category in (
        ("Finance", 10, four_eyes, "finance"),
        ("General", 20, queue, "general"),
    ):
        rule = GateRuleFactory(name=name, priority=priority, queue=target)
        GateConditionFactory(rule=rule, field="signals.category", op="eq", value=category)
    ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"])
    ReasonCodeFactory(code="tone", applies_to=["edit"])
    story = Decided(start=start, end=start + timedelta(minutes=100), general=queue, four_eyes=four_eyes,
                    expert=expert)  # fmt: skip
    items = story.items

    def submit(name: str, minutes: float, body: dict) -> None:
        with clock(story.at(minutes)):
            items[name] = services.submit_item(integration=integration, payload=body).item

    def decide(name: str, user, action: str, minutes: float, **extra) -> None:
        with clock(story.at(minutes)):
            services.decide(
                item=items[name], user=user, action=action, justification=f"{name} {action}.", **extra
            )

    general = {"signals": {"category": "general"}}
    finance = {"signals": {"category": "finance"}}
    submit("A", 0, submission(external_id="conv-a", **general))
    messages = {"messages": [{"role": "user", "content": "Hours?"}]}
    submit("E", 0, submission(external_id="conv-e", input=messages, **general))
    submit("R", 0, submission(external_id="conv-r", **general))
    submit("FE", 0, submission(external_id="conv-fe", **finance))
    submit("FA", 0, action_submission(external_id="conv-fa"))
    submit("X", 0, action_submission(external_id="conv-x", **general))
    decide("A", reviewer, "approve", 10)
    decide("E", other_reviewer, "edit", 20, reason_codes=["factual_error"], edited_output=EDITED_TEXT)
    decide("R", reviewer, "reject", 30, reason_codes=["factual_error"])
    decide("FE", reviewer, "edit", 40, reason_codes=["tone"], edited_output=EDITED_TEXT)
    decide("FE", other_reviewer, "approve", 50)
    decide("FA", reviewer, "approve", 55)
    decide("X", reviewer, "escalate", 60)
    decide("FA", other_reviewer, "approve", 65)
    decide(
        "X", other_reviewer, "edit", 80, reason_codes=["factual_error", "tone"], edited_action=EDITED_REFUND
    )
    with clock(story.at(85)):
        items["G"] = services.seed_gold_item(item=items["A"], queue=queue, answer="approve", user=superuser)
    decide("G", reviewer, "approve", 90)
    submit("P", 95, submission(external_id="conv-p", **general))
    for item in items.values():
        item.refresh_from_db()
    return story


def moment(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def expected_jsonl(story: Decided) -> list[dict]:
    """Worked out by hand from the fixture, in decision order."""
    items = story.items
    hours = submission()["input"]
    text = submission()["output"]
    refund = action_submission()
    rows = [
        ("A", "general", hours, text, None, text, None, "approve", "reviewer", [], 10),
        ("E", "general", items["E"].input, text, None, EDITED_TEXT, None, "edit", "other_reviewer",
         ["factual_error"], 20),
        ("R", "general", hours, text, None, None, None, "reject", "reviewer", ["factual_error"], 30),
        ("FE", "four-eyes", hours, text, None, EDITED_TEXT, None, "edit", "other_reviewer", ["tone"], 50),
        ("FA", "four-eyes", refund["input"], refund["output"], refund["action"], refund["output"],
         refund["action"], "approve", "other_reviewer", [], 65),
        ("X", "expert", refund["input"], refund["output"], refund["action"], refund["output"], EDITED_REFUND,
         "edit", "other_reviewer", ["factual_error", "tone"], 80),
    ]  # fmt: skip
    last_action = {"A": "approve", "E": "edit", "R": "reject", "FE": "approve", "FA": "approve", "X": "edit"}
    return [
        {
            "item_id": str(items[name].pk),
            "external_id": f"conv-{name.lower()}",
            "kind": "action" if action else "output",
            "queue": queue_slug,
            "input": item_input,
            "original_output": output,
            "original_action": action,
            "final_output": final_output,
            "final_action": final_action,
            "decision": decision,
            "justification": f"{name} {last_action[name]}.",
            "reason_codes": codes,
            "reviewer": reviewer,
            "submitted_at": moment(story.start),
            "decided_at": moment(story.at(minutes)),
            "matched_rules": items[name].matched_rules,
        }
        for (name, queue_slug, item_input, output, action, final_output, final_action, decision, reviewer,
             codes, minutes) in rows
    ]  # fmt: skip


def run(user, **options) -> FeedbackExport:
    """Start an export and run its task (eagerly, after the commit, as under `make run`)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        export = start_export(user=user, **options)
    export.refresh_from_db()
    return export


def content(export: FeedbackExport) -> str:
    with export.file.open("rb") as handle:
        return handle.read().decode()


def json_lines(export: FeedbackExport) -> list[dict]:
    return [json.loads(line) for line in content(export).splitlines()]


# --- Formats ---------------------------------------------------------------------------------


def test_jsonl_has_one_final_decision_a_line_with_every_field(decided, compliance):
    export = run(compliance, format="jsonl")
    assert export.status == "succeeded", export.error
    lines = json_lines(export)
    assert lines == expected_jsonl(decided)
    assert list(lines[0]) == list(exports.JSONL_FIELDS)
    assert export.rows == 6
    assert {rule["name"] for line in lines for rule in line["matched_rules"]} == {"General", "Finance"}


def test_gold_items_and_open_items_are_never_exported(decided, compliance):
    lines = json_lines(run(compliance, format="jsonl"))
    exported = {line["item_id"] for line in lines}
    assert str(decided.items["G"].pk) not in exported
    assert str(decided.items["P"].pk) not in exported
    assert decided.items["G"].decisions.filter(is_final=True).exists()


def test_preference_pairs_are_the_edits_with_their_prompt(decided, compliance):
    export = run(compliance, format="preference_pairs")
    refund = action_submission()
    assert json_lines(export) == [
        {
            "prompt": [{"role": "user", "content": "Hours?"}],  # no input.prompt: the messages
            "chosen": EDITED_TEXT,
            "rejected": submission()["output"],
            "reason_codes": ["factual_error"],
        },
        {  # edited by the first of two reviewers: the edit's codes
            "prompt": "What are your opening hours?",
            "chosen": EDITED_TEXT,
            "rejected": submission()["output"],
            "reason_codes": ["tone"],
        },
        {  # an action item's action edited: the actions
            "prompt": "Refund order 1182",
            "chosen": EDITED_REFUND,
            "rejected": refund["action"],
            "reason_codes": ["factual_error", "tone"],
        },
    ]
    assert export.rows == 3


def test_the_prompt_is_the_whole_input_without_prompt_or_messages():
    assert exports.prompt_of({"question": "Why?"}) == {"question": "Why?"}
    assert exports.prompt_of({"prompt": "", "messages": [{"role": "user"}]}) == [{"role": "user"}]
    assert exports.prompt_of({"prompt": "Hi", "messages": [{"role": "user"}]}) == "Hi"


def test_csv_flattens_the_jsonl_fields_with_nested_values_as_json(decided, compliance):
    export = run(compliance, format="csv")
    header, *rows = list(csv.reader(io.StringIO(content(export), newline="")))
    assert header == list(exports.JSONL_FIELDS)
    assert export.rows == len(rows) == 6
    for row, record in zip(rows, expected_jsonl(decided), strict=True):
        cells = dict(zip(header, row, strict=True))
        for name in header:
            value = record[name]
            if name in exports.JSON_FIELDS:
                assert (json.loads(cells[name]) if cells[name] else None) == value, name
            else:
                assert cells[name] == ("" if value is None else value), name
    assert rows[2][header.index("final_output")] == ""  # rejected: no final version


def test_csv_cells_that_would_run_as_formulas_get_a_quote(compliance, integration, queue, reviewer):
    GateRuleFactory(name="Review everything", queue=queue)
    body = submission(external_id='=HYPERLINK("http://evil")', output={"text": "fine"})
    item = services.submit_item(integration=integration, payload=body).item
    services.decide(item=item, user=reviewer, action="approve", justification="+SUM(A1:A9)")
    export = run(compliance, format="csv")
    header, row = list(csv.reader(io.StringIO(content(export), newline="")))
    cells = dict(zip(header, row, strict=True))
    assert cells["external_id"] == '\'=HYPERLINK("http://evil")'
    assert cells["justification"] == "'+SUM(A1:A9)"
    jsonl = json_lines(run(compliance, format="jsonl"))
    assert jsonl[0]["external_id"] == '=HYPERLINK("http://evil")'  # JSON Lines keep values exactly


# --- The window -------------------------------------------------------------------------------


def test_a_queue_narrows_the_export_to_what_was_decided_there(decided, compliance):
    lines = json_lines(run(compliance, format="jsonl", queue="four-eyes"))
    assert [line["external_id"] for line in lines] == ["conv-fe", "conv-fa"]
    lines = json_lines(run(compliance, format="jsonl", queue=decided.expert))
    assert [line["external_id"] for line in lines] == ["conv-x"]  # escalated: where it was decided


def test_since_and_until_bound_the_window_by_decision_time(decided, compliance):
    export = run(compliance, format="jsonl", since=decided.at(20), until=decided.at(65))
    assert [line["external_id"] for line in json_lines(export)] == ["conv-e", "conv-r", "conv-fe"]


def test_since_defaults_to_where_the_last_succeeded_export_ended(decided, compliance, policy_admin, reviewer):
    first = run(compliance, format="jsonl", until=decided.at(30))
    assert first.since is None
    assert [line["external_id"] for line in json_lines(first)] == ["conv-a", "conv-e"]

    second = run(policy_admin, format="jsonl")
    assert second.since == decided.at(30)
    assert [line["external_id"] for line in json_lines(second)] == ["conv-r", "conv-fe", "conv-fa", "conv-x"]

    # A new decision after the second export: the third has only it.
    body = submission(external_id="conv-late", signals={"category": "general"})
    later = services.submit_item(integration=decided.items["A"].integration, payload=body).item
    services.decide(item=later, user=reviewer, action="approve", justification="Fine.")
    third = run(compliance, format="jsonl")
    assert third.since == second.until
    assert [line["external_id"] for line in json_lines(third)] == ["conv-late"]

    # Each format and queue has its own chain; failed exports do not move it.
    assert run(compliance, format="csv").since is None
    assert run(compliance, format="jsonl", queue="general").since is None
    FeedbackExport.objects.create(
        format="jsonl", status="failed", until=timezone.now(), requested_by=compliance
    )
    assert run(compliance, format="jsonl").since == third.until


def test_until_is_never_later_than_now(decided, compliance):
    export = run(compliance, format="jsonl", until=timezone.now() + timedelta(days=3))
    assert export.until <= timezone.now()
    assert export.rows == 6


@pytest.mark.parametrize(
    ("options", "field_name"),
    [
        ({"format": "parquet"}, "format"),
        ({"format": "jsonl", "queue": "nope"}, "queue"),
        ({"format": "jsonl", "since": datetime(2030, 1, 1, tzinfo=UTC),
          "until": datetime(2029, 1, 1, tzinfo=UTC)}, "since"),
        ({"format": "jsonl", "since": datetime(2020, 1, 1)}, "since"),  # naive
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field(compliance, options, field_name):
    with pytest.raises(InvalidInput) as caught:
        start_export(user=compliance, **options)
    assert field_name in caught.value.errors
    assert not FeedbackExport.objects.exists()


# --- Writing: progress, failures, twice -----------------------------------------------------------


def test_rows_are_counted_a_chunk_at_a_time_without_history_rows(decided, compliance, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 4)
    seen = []
    original = FeedbackExport.save

    def spy(self, *args, **kwargs):
        if kwargs.get("update_fields") == ["rows"]:
            seen.append(self.rows)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FeedbackExport, "save", spy)
    export = run(compliance, format="jsonl")
    assert seen == [4, 6]
    assert export.rows == 6 and export.status == "succeeded"
    assert [h.status for h in export.history.order_by("history_id")] == ["pending", "running", "succeeded"]
    assert {h.history_actor for h in export.history.exclude(status="pending")} == {"feedback-export"}


def test_a_failed_export_says_why_and_leaves_no_file(decided, compliance, monkeypatch, exports_dir):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    calls = []

    def breaks_on_the_fifth(row):
        calls.append(row)
        if len(calls) == 5:
            raise OSError("No space left on device")
        return f"{len(calls)}\n"

    monkeypatch.setattr(exports, "jsonl_line", breaks_on_the_fifth)
    export = run(compliance, format="jsonl")
    assert export.status == "failed"
    assert export.error == "OSError: No space left on device"
    assert export.rows == 4 and export.finished_at is not None
    assert not export.file
    assert [path for path in exports_dir.rglob("*") if path.is_file()] == []


def test_a_failed_export_answers_no_download(decided, compliance, monkeypatch):
    monkeypatch.setattr(exports, "final_decisions", lambda **kwargs: 1 / 0)
    export = run(compliance, format="jsonl")
    assert export.status == "failed" and export.error == "ZeroDivisionError: division by zero"
    client = token_client(compliance)
    body = client.get(f"{EXPORTS}{export.pk}/").json()
    assert body["status"] == "failed" and body["download_url"] is None and body["error"] == export.error
    response = client.get(f"{EXPORTS}{export.pk}/download/")
    assert response.status_code == 409 and response.json()["code"] == "export_not_ready"


def test_running_the_task_twice_rewrites_nothing(decided, compliance, exports_dir):
    export = run(compliance, format="jsonl")
    path = Path(export.file.path)
    written = path.stat().st_mtime_ns
    with acting_as_system("feedback-export"):
        assert write_export(export.pk) == "succeeded"
    assert path.stat().st_mtime_ns == written
    running = FeedbackExport.objects.create(format="csv", status="running", until=timezone.now(),
                                            requested_by=compliance)  # fmt: skip
    assert write_export(running.pk) == "running"
    running.refresh_from_db()
    assert running.status == "running" and not running.file
    assert len([p for p in exports_dir.rglob("*") if p.is_file()]) == 1


def test_the_export_reads_in_a_constant_number_of_queries(decided, compliance):
    def queries(**options) -> int:
        export = FeedbackExport.objects.create(requested_by=compliance, until=timezone.now(), **options)
        with CaptureQueriesContext(connection) as captured:
            write_export(export.pk)
        export.refresh_from_db()
        assert export.status == "succeeded"
        return len(captured), export.rows

    assert queries(format="jsonl", queue=decided.expert)[1] == 1
    assert queries(format="jsonl")[1] == 6
    assert queries(format="jsonl", queue=decided.expert)[0] == queries(format="jsonl")[0]


# --- The API ---------------------------------------------------------------------------------------


def test_starting_an_export_over_the_api_answers_202_then_its_status(
    decided, compliance, django_capture_on_commit_callbacks
):
    client = token_client(compliance)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(EXPORTS, {"format": "jsonl", "queue": "general"})
    assert response.status_code == 202
    body = response.json()
    export = FeedbackExport.objects.get()
    assert body == {
        "id": str(export.pk),
        "status": "pending",
        "format": "jsonl",
        "rows": 0,
        "download_url": None,
        "queue": "general",
        "since": None,
        "until": body["until"],
        "error": "",
    }
    assert client.get(f"{EXPORTS}{export.pk}/").json()["status"] == "pending"
    for callback in callbacks:
        callback()
    body = client.get(f"{EXPORTS}{export.pk}/").json()
    assert body["status"] == "succeeded" and body["rows"] == 3
    assert body["download_url"] == f"http://testserver{EXPORTS}{export.pk}/download/"


def test_the_download_is_an_attachment_of_the_file(decided, compliance):
    export = run(compliance, format="csv", queue="four-eyes")
    response = token_client(compliance).get(f"{EXPORTS}{export.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;") and "feedback-csv-four-eyes-" in disposition
    assert b"".join(response.streaming_content).decode() == content(export)


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({}, "format"),
        ({"format": "xml"}, "format"),
        ({"format": "jsonl", "since": "yesterday"}, "since"),
        ({"format": "jsonl", "until": 12}, "until"),
        ({"format": "jsonl", "queue": "nope"}, "queue"),
        ({"format": "jsonl", "since": "2030-01-02", "until": "2030-01-01"}, "since"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(compliance, body, field_name):
    response = token_client(compliance).post(EXPORTS, body)
    assert response.status_code == 400
    answer = response.json()
    assert field_name in answer or field_name in answer.get("errors", {})
    assert not FeedbackExport.objects.exists()


def test_exports_are_not_found_by_a_made_up_id(compliance):
    client = token_client(compliance)
    assert client.get(f"{EXPORTS}00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get(f"{EXPORTS}00000000-0000-0000-0000-000000000000/download/").status_code == 404
    assert client.get(f"{EXPORTS}not-a-uuid/").status_code == 404


@pytest.mark.parametrize("persona", ["compliance", "policy_admin", "superuser"])
def test_compliance_policy_admins_and_superusers_start_read_and_download(decided, persona, request):
    user = request.getfixturevalue(persona)
    client = token_client(user)
    assert client.post(EXPORTS, {"format": "jsonl"}).status_code == 202
    export = FeedbackExport.objects.get()
    with acting_as_system("feedback-export"):
        write_export(export.pk)
    assert client.get(f"{EXPORTS}{export.pk}/").status_code == 200
    assert client.get(f"{EXPORTS}{export.pk}/download/").status_code == 200


@pytest.fixture
def finished(decided, compliance) -> FeedbackExport:
    return run(compliance, format="jsonl")


@pytest.mark.parametrize(
    ("who", "status"),
    [("reviewer", 403), ("outsider", 403), ("integration", 403), ("anonymous", 401)],
)
def test_reviewers_integrations_and_anonymous_callers_get_nothing(finished, who, status, request):
    if who == "anonymous":
        client = ApiClient()
    elif who == "integration":
        client = ApiClient(
            f"Api-Key {services.issue_api_key(integration=request.getfixturevalue('integration'))}"
        )
    else:
        client = token_client(request.getfixturevalue(who))
    assert client.post(EXPORTS, {"format": "jsonl"}).status_code == status
    assert client.get(f"{EXPORTS}{finished.pk}/").status_code == status
    assert client.get(f"{EXPORTS}{finished.pk}/download/").status_code == status
    assert FeedbackExport.objects.count() == 1


def test_reviewers_cannot_start_one_through_the_service_either(reviewer):
    with pytest.raises(NotAllowed):
        start_export(user=reviewer, format="jsonl")


def test_the_file_is_kept_outside_every_public_url(finished, client, settings):
    path = Path(finished.file.path)
    assert path.is_relative_to(FeedbackExport._meta.get_field("file").storage.location)
    assert finished.file.name.startswith("feedback/") and str(finished.pk) in finished.file.name
    for prefix in ("/static/", "/media/", "/exports/", "/"):
        assert client.get(f"{prefix}{finished.file.name}").status_code == 404


# --- The admin --------------------------------------------------------------------------------------

CHANGELIST = "/admin/metrics/feedbackexport/"


@pytest.mark.parametrize("persona", ["compliance", "policy_admin", "superuser"])
def test_the_admin_page_lists_exports_with_their_download_link_or_error(finished, persona, request, client):
    failed = FeedbackExport.objects.create(
        format="csv",
        status="failed",
        error="OSError: <disk> full",
        until=timezone.now(),
        requested_by=finished.requested_by,
    )
    client.force_login(request.getfixturevalue(persona))
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="start-export"' in page
    assert reverse("api:export-download", args=[finished.pk]) in page
    assert "OSError: &lt;disk&gt; full" in page
    assert 'http-equiv="refresh"' not in page  # nothing under way
    assert client.get(f"{CHANGELIST}{failed.pk}/change/").status_code == 200


def test_the_admin_page_reloads_while_an_export_runs(compliance, client):
    FeedbackExport.objects.create(format="jsonl", status="running", rows=4000, until=timezone.now(),
                                  requested_by=compliance)  # fmt: skip
    client.force_login(compliance)
    page = client.get(CHANGELIST).content.decode()
    assert '<meta http-equiv="refresh" content="3">' in page
    assert "4000" in page or "4,000" in page
    assert "<script>" not in page and "style=" not in page


def test_starting_an_export_from_the_admin(decided, compliance, client, django_capture_on_commit_callbacks):
    client.force_login(compliance)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{CHANGELIST}start/", {"format": "preference_pairs", "queue": "general"})
    assert response.status_code == 302 and response["Location"] == CHANGELIST
    export = FeedbackExport.objects.get()
    assert (export.format, export.queue, export.status, export.rows) == ("preference_pairs", decided.general,
                                                                          "succeeded", 1)  # fmt: skip
    response = client.post(
        f"{CHANGELIST}start/", {"format": "jsonl", "since": "2030-01-01T00:00"}, follow=True
    )
    assert "The window must start before it ends" in response.content.decode()
    assert FeedbackExport.objects.count() == 1


@pytest.mark.parametrize("persona", ["reviewer", "outsider"])
def test_reviewers_have_no_admin_page(db, persona, request, client):
    user = request.getfixturevalue(persona)
    user.is_staff = True
    user.save()
    client.force_login(user)
    assert client.get(CHANGELIST).status_code == 403
    assert client.post(f"{CHANGELIST}start/", {"format": "jsonl"}).status_code == 403
    assert not FeedbackExport.objects.exists()
