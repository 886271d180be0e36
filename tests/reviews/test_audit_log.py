"""The audit log: every history event newest first, filtered, in keyset pages
(`reviews.audit.audit_events`), and its admin page at /admin/audit-log/."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews import services
from reviews.audit import AuditFilterForm, AuditPosition, audit_events, history_sources, source_for
from reviews.history import acting_as_system
from reviews.models import DeliveryAttempt, OutboxMessage, Queue, ReviewItem
from tests.factories import GateRuleFactory, QueueFactory, ReasonCodeFactory, submission
from tests.reviews.test_api import ApiClient, token_client

AUDIT_LOG = "/admin/audit-log/"


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()


@pytest.fixture
def story(integration, queue, reviewer):
    return tell_story(integration, queue, reviewer)


def tell_story(integration, queue, reviewer) -> dict:
    """Two queues; an integration submits two items over the API, the reviewer rejects
    the first one over the API, a task edits the other queue; the first item has an
    incident, an outbox message and a delivery attempt."""
    other = QueueFactory(slug="other", name="Other queue")
    GateRuleFactory(name="Review everything", queue=queue, priority=10)
    GateRuleFactory(name="Never matches", queue=other, priority=20, enabled=False)
    ReasonCodeFactory(code="factual_error", creates_backlog_item=True)
    api = ApiClient(f"Api-Key {services.issue_api_key(integration=integration)}")
    first = api.post("/api/v1/items/", submission(external_id="first")).json()["id"]
    second = api.post("/api/v1/items/", submission(external_id="second")).json()["id"]
    decided = token_client(reviewer).post(
        f"/api/v1/items/{first}/decisions/",
        {"action": "reject", "justification": "Wrong hours.", "reason_codes": ["factual_error"]},
    )
    assert decided.status_code == 201, decided.content
    with acting_as_system("seed"):
        other.description = "Edited by a task."
        other.save()
    item = ReviewItem.objects.get(pk=first)
    services.report_incident(item=item, severity="low", description="Noticed later.", user=reviewer)
    message = OutboxMessage.objects.create(
        item=item, kind="callback", url="https://example.com/cb", payload={}
    )
    DeliveryAttempt.objects.create(message=message, number=1, started_at=timezone.now(), status_code=200)
    return {"first": first, "second": second, "queue": queue, "other": other, "message": message}


def everything(**filters) -> list[dict]:
    events, cursor = audit_events(**filters, limit=10_000)
    assert cursor is None
    return events


def keys(events) -> list[tuple]:
    return [(e["model"], e["object_id"], e["at"], e["event"]) for e in events]


# --- The selector --------------------------------------------------------------------------------


def test_events_carry_the_spec_fields_newest_first(story):
    events = everything()
    assert events
    for event in events:
        assert set(event) == {"at", "actor", "model", "object_id", "item", "event", "changes", "reason"}
        assert set(event["actor"]) == {"kind", "name"}
        assert event["event"] in {"created", "changed", "deleted"}
    moments = [datetime.fromisoformat(e["at"]) for e in events]
    assert moments == sorted(moments, reverse=True)


def test_a_change_lists_only_what_changed_against_the_version_before(story):
    queue_events = everything(model="reviews.queue")
    [edit] = [e for e in queue_events if e["event"] == "changed" and e["object_id"] == str(story["other"].pk)]
    assert edit["changes"]["description"] == ["", "Edited by a task."]
    assert "slug" not in edit["changes"]


def test_the_model_filter_keeps_that_model_only(story):
    events = everything(model="reviews.decision")
    assert [e["model"] for e in events] == ["reviews.decision"]
    assert events[0]["item"] == story["first"]


def test_the_actor_filters_narrow_to_who_acted(story):
    by_reviewer = everything(actor="reviewer")
    assert by_reviewer and all(e["actor"] == {"kind": "user", "name": "reviewer"} for e in by_reviewer)
    assert "reviews.decision" in {e["model"] for e in by_reviewer}

    by_integration = everything(actor_kind="integration")
    assert by_integration and all(
        e["actor"] == {"kind": "integration", "name": "support-bot"} for e in by_integration
    )
    assert {e["item"] for e in by_integration if e["model"] == "reviews.reviewitem"} == {
        story["first"],
        story["second"],
    }

    by_task = everything(actor="system:seed")
    assert [(e["model"], e["actor"]) for e in by_task] == [
        ("reviews.queue", {"kind": "system", "name": "seed"})
    ]
    assert everything(actor="system:reviewer") == []  # a person's name is not a system actor


def test_the_item_filter_takes_the_items_rows_and_what_belongs_to_it(story):
    events = everything(item=uuid.UUID(story["first"]))
    assert {e["item"] for e in events} == {story["first"]}
    models = {e["model"] for e in events}
    assert models == {
        "reviews.reviewitem",
        "reviews.decision",
        "reviews.incident",
        "reviews.outboxmessage",
        "reviews.deliveryattempt",
    }
    [attempt] = [e for e in events if e["model"] == "reviews.deliveryattempt"]
    assert attempt["item"] == story["first"]  # through its outbox message
    assert attempt["changes"]["status_code"] == [None, 200]
    # Without the filter, events still name their item.
    assert {e["item"] for e in everything(model="reviews.deliveryattempt")} == {story["first"]}


def test_the_queue_filter_takes_its_items_decisions_rules_and_the_queue(story):
    queue, other = story["queue"], story["other"]
    events = everything(queue=queue.slug)
    assert events == everything(queue=str(queue.pk)) == everything(queue=queue)
    seen = {(e["model"], e["object_id"]) for e in events}
    assert ("reviews.queue", str(queue.pk)) in seen
    assert ("reviews.reviewitem", story["first"]) in seen
    assert ("reviews.decision", str(ReviewItem.objects.get(pk=story["first"]).decisions.get().pk)) in seen
    assert ("policies.gaterule", str(queue.gate_rules.get().pk)) in seen
    assert ("reviews.queue", str(other.pk)) not in seen
    assert {e["model"] for e in events} <= {
        "reviews.reviewitem",
        "reviews.decision",
        "reviews.queue",
        "reviews.backlogitem",
        "policies.gaterule",
    }
    other_events = everything(queue="other")
    assert {(e["model"], e["object_id"]) for e in other_events} == {
        ("reviews.queue", str(other.pk)),
        ("policies.gaterule", str(other.gate_rules.get().pk)),
    }
    assert everything(queue="no-such-queue") == []


def test_since_and_until_cut_the_log_at_a_moment(story):
    events = everything()
    middle = datetime.fromisoformat(events[len(events) // 2]["at"])
    later = everything(since=middle)
    earlier = everything(until=middle)
    assert later and earlier
    assert all(datetime.fromisoformat(e["at"]) >= middle for e in later)
    assert all(datetime.fromisoformat(e["at"]) < middle for e in earlier)
    assert keys(later) + keys(earlier) == keys(events)


# --- Keyset pages ----------------------------------------------------------------------------------


def clone_history(source_label: str, count: int, *, at, step=timedelta(0), actor="bulk", batch="", **fields):
    """`count` copies of the model's newest history row, as changes by `actor`, `step` apart
    from `at` (history rows are append-only: new rows are the only way to add events)."""
    source = source_for(source_label)
    template = source.history._default_manager.order_by("-history_id").first()
    data = {f.attname: getattr(template, f.attname) for f in source.history._meta.concrete_fields}
    del data["history_id"]
    rows = [
        source.history(
            **{
                **data,
                "history_date": at + step * i,
                "history_type": "~",
                "history_actor_kind": "system",
                "history_actor": actor,
                "history_change_reason": f"clone {batch}{i}",
                **fields,
            }
        )
        for i in range(count)
    ]
    source.history._default_manager.bulk_create(rows)


@pytest.fixture
def crowded(queue):
    """Three tables' rows, many of them written in the very same microsecond."""
    GateRuleFactory(name="Review everything", queue=queue)
    at = timezone.now().replace(microsecond=0)
    for slug in ("a", "b"):
        QueueFactory(slug=slug)
    for step in (timedelta(0), timedelta(seconds=1)):
        clone_history("reviews.queue", 15, at=at, step=step, batch=f"{step.seconds}/")
        clone_history("policies.gaterule", 15, at=at, step=step, batch=f"{step.seconds}/")
    return at


def test_pages_have_no_gaps_or_duplicates_even_within_one_microsecond(crowded):
    whole = everything()
    assert len(whole) > 60
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = audit_events(before=cursor, limit=7)
        seen.extend(page)
        pages += 1
        if cursor is None:
            break
    assert pages == -(-len(whole) // 7)
    assert seen == whole
    # The clones differ only by their place: their reason says which.
    places = [(e["model"], e["at"], e["reason"]) for e in seen]
    assert len(set(places)) == len(places)


def test_a_cursor_round_trips_its_position_exactly(crowded):
    _, cursor = audit_events(limit=3)
    position = AuditPosition.decode(cursor)
    assert position.at.tzinfo is not None and position.label in {"reviews.queue", "policies.gaterule"}
    assert AuditPosition.decode(position.encode()) == position


@pytest.mark.parametrize(
    "cursor", ["", "x", "!!!", "YQ", "MjAyNXxub3xt", "MjAyNS0wMS0wMVQwMDowMDowMCswMDowMHxhdXRoLnVzZXJ8MA"]
)
def test_a_broken_cursor_is_refused(db, cursor):
    with pytest.raises(ValueError):
        AuditPosition.decode(cursor)


def add_events(count: int) -> None:
    """`count` more events, in two tables, all of them changes (so diffs are fetched)."""
    at = timezone.now() - timedelta(days=1)
    clone_history("reviews.queue", count - count // 2, at=at, step=timedelta(milliseconds=3))
    clone_history("policies.gaterule", count // 2, at=at, step=timedelta(milliseconds=5))


def test_the_page_costs_the_same_queries_at_5_and_at_500_events(client, compliance, queue):
    GateRuleFactory(name="Review everything", queue=queue)
    client.force_login(compliance)
    client.get(AUDIT_LOG)  # the session and the content types, once
    counts = []
    for more in (5, 495):
        add_events(more)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(AUDIT_LOG)
        assert response.status_code == 200
        counts.append(len(captured.captured_queries))
    assert len(response.context["rows"]) == 50
    assert counts[0] == counts[1], counts


def test_the_selector_costs_a_query_per_table_and_one_per_table_with_changes(queue):
    GateRuleFactory(name="Review everything", queue=queue)
    counts = []
    for more in (5, 495):
        add_events(more)
        with CaptureQueriesContext(connection) as captured:
            events, _ = audit_events()
        counts.append(len(captured.captured_queries))
    assert len(events) == 50
    # Every table once; the queue and rule tables once more for the versions before.
    assert counts == [len(history_sources()) + 2] * 2


# --- The admin page ------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["compliance", "superuser"])
def test_compliance_and_superusers_read_the_audit_log(client, story, persona, request):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(reverse("admin:audit_log"))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="audit-events"' in page
    assert "support-bot" in page and "system:seed" in page
    assert response.context["rows"][0].at >= response.context["rows"][-1].at
    index = client.get(reverse("admin:index")).content.decode()
    assert 'id="audit-log-link"' in index


@pytest.mark.parametrize("persona", ["reviewer", "policy_admin"])
def test_other_staff_get_a_403_and_no_link(client, story, persona, request):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(AUDIT_LOG).status_code == 403
    assert 'id="audit-log-link"' not in client.get(reverse("admin:index")).content.decode()


def test_anonymous_visitors_are_sent_to_the_login(client, db):
    response = client.get(AUDIT_LOG)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_page_filters_and_links_the_download_with_the_same_filters(client, compliance, story):
    client.force_login(compliance)
    response = client.get(AUDIT_LOG, {"model": "reviews.decision", "actor": "reviewer"})
    rows = response.context["rows"]
    assert [row.model for row in rows] == ["reviews.decision"]
    downloads = dict(response.context["downloads"])
    assert downloads["CSV"] == "/api/v1/audit/events/?actor=reviewer&model=reviews.decision&format=csv"
    assert downloads["JSON Lines"].endswith("format=jsonl")
    assert f"/admin/reviews/decision/{rows[0].object_id}/change/" in response.content.decode()


def test_older_walks_back_a_page_at_a_time(client, compliance, crowded):
    client.force_login(compliance)
    first = client.get(AUDIT_LOG, {"actor": "bulk"})
    older = first.context["older_url"]
    assert older and "actor=bulk" in older and first.context["newest_url"] is None
    second = client.get(AUDIT_LOG + older)
    assert second.context["newest_url"] == "?actor=bulk"
    firsts = {(r.model, r.at, tuple(r.reason)) for r in first.context["rows"]}
    seconds = {(r.model, r.at, tuple(r.reason)) for r in second.context["rows"]}
    assert len(firsts) == 50 and seconds and not firsts & seconds
    assert max(r.at for r in second.context["rows"]) <= min(r.at for r in first.context["rows"])


def test_long_values_are_cut_behind_an_expand_and_nothing_is_unescaped(client, compliance, queue):
    hostile = "<script>alert(1)</script>\u202e" + "x" * 500
    with acting_as_system("seed", reason="<b>why</b>"):
        queue.description = hostile
        queue.save()
    client.force_login(compliance)
    page = client.get(AUDIT_LOG, {"model": "reviews.queue"}).content.decode()
    assert "<script>alert(1)" not in page and "<b>why</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;why&lt;/b&gt;" in page
    assert "⟨U+202E⟩" in page and "\u202e" not in page
    assert '<details class="long-value">' in page
    assert "(526 characters)" in page


GARBAGE = [
    {"item": "not-a-uuid"},
    {"item": "\x00"},
    {"since": "2025-13-45"},
    {"since": "yesterday"},
    {"until": "0001-01-01T00:00:00+05:00"},
    {"since": "9999-12-31T23:59:59-05:00"},
    {"since": "2025-01-02", "until": "2025-01-01"},
    {"queue": "no-such-queue"},
    {"queue": "99999999999999999999999999"},
    {"model": "auth.permission"},
    {"model": ["reviews.queue", "nonsense"]},
    {"actor_kind": "robot"},
    {"actor": "x" * 1000},
    {"actor": "a\x00b"},
    {"actor": "system:seed", "actor_kind": "user"},
    {"before": "garbage"},
    {"before": "MjAyNS0wMS0wMVQwMDowMDowMHxyZXZpZXdzLnF1ZXVlfDE"},  # no time zone
    {"before": "MDAwMS0wMS0wMVQwMDowMDowMCswNTowMHxyZXZpZXdzLnF1ZXVlfDE"},  # before year 1 in UTC
]


@pytest.mark.parametrize("params", GARBAGE)
def test_garbage_filters_are_form_errors_not_500s(client, compliance, story, params):
    client.force_login(compliance)
    response = client.get(AUDIT_LOG, params)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert 'id="audit-form-error"' in response.content.decode()
    assert response.context["rows"] == []


def test_the_form_reads_dates_times_and_queues(story):
    form = AuditFilterForm(
        {"since": "2025-06-30", "until": "2025-06-30", "queue": str(story["queue"].pk), "actor": " reviewer "}
    )
    assert form.is_valid(), form.errors
    filters = form.filters()
    assert filters["since"].isoformat() == "2025-06-30T00:00:00+00:00"
    assert filters["until"].isoformat() == "2025-07-01T00:00:00+00:00"  # through the end of the day
    assert filters["queue"] == story["queue"] and isinstance(filters["queue"], Queue)
    assert filters["actor"] == "reviewer"
    exact = AuditFilterForm({"since": "2025-06-30T14:05:01.123456+02:00"})
    assert exact.is_valid() and exact.filters()["since"].isoformat() == "2025-06-30T14:05:01.123456+02:00"
