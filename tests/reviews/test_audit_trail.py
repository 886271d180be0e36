"""The audit trail: every write attributed to its actor, append-only everywhere, and
what compliance staff may and may not do."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from metrics.models import FeedbackExport
from policies.models import GateRule
from reviews import services, tasks
from reviews.audit import history_sources
from reviews.models import ActorKind, Decision, Integration, ItemStatus, OutboxMessage, ReviewItem
from tests.factories import GateConditionFactory, GateRuleFactory, ReasonCodeFactory, submission
from tests.reviews.test_api import ApiClient, token_client

User = get_user_model()


def admin_url(model, view, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def actors(rows) -> list[tuple[str, str]]:
    return [(row.history_actor_kind, row.history_actor) for row in rows]


@pytest.fixture
def gated(queue):
    ReasonCodeFactory(code="wrong", label="Wrong", applies_to=["reject", "edit"])
    return GateRuleFactory(name="Review everything", queue=queue)


def reject(item, user, justification: str):
    return services.decide(
        item=item, user=user, action="reject", justification=justification, reason_codes=["wrong"]
    )


# --- Who acted -------------------------------------------------------------------------------


def test_an_api_key_submission_is_attributed_to_the_integration(integration, gated):
    api = ApiClient(f"Api-Key {services.issue_api_key(integration=integration)}")
    response = api.post("/api/v1/items/", submission())
    assert response.status_code == 201
    item = ReviewItem.objects.get(pk=response.json()["id"])
    created = item.history.earliest("history_date")
    assert (created.history_actor_kind, created.history_actor) == (ActorKind.INTEGRATION, "support-bot")
    assert created.history_user_id is None
    assert created.history_change_reason == "submitted: review"


def test_an_api_reviewer_is_attributed_by_name(integration, gated, reviewer):
    item = services.submit_item(integration=integration, payload=submission()).item
    api = token_client(reviewer)
    response = api.post(
        f"/api/v1/items/{item.pk}/decisions/",
        {"action": "reject", "justification": "Off topic.", "reason_codes": ["wrong"]},
    )
    assert response.status_code == 201, response.json()
    decision = Decision.objects.get(item=item)
    assert actors(decision.history.all()) == [(ActorKind.USER, "reviewer")]
    assert item.history.latest("history_id").history_actor == "reviewer"


def test_an_admin_change_is_attributed_to_the_admin(client, policy_admin, queue):
    client.force_login(policy_admin)
    client.post(
        admin_url(type(queue), "change", queue.pk),
        {
            "name": "Renamed",
            "slug": queue.slug,
            "description": "",
            "required_approvals": 1,
            "checklist": "[]",
            "reviewer_groups": [g.pk for g in queue.reviewer_groups.all()],
            "sla_minutes": 60,
            "timeout_outcome": "escalate",
            "escalation_queue": "",
        },
    )
    latest = queue.history.latest("history_id")
    assert (latest.history_actor_kind, latest.history_actor, latest.name) == (
        ActorKind.USER,
        "policy_admin",
        "Renamed",
    )


def test_celery_tasks_are_attributed_to_named_system_actors(integration, queue, gated, reviewer, settings):
    item = services.submit_item(integration=integration, payload=submission()).item
    services.claim(item=item, user=reviewer)
    ReviewItem.objects.filter(pk=item.pk).update(claim_expires_at="2000-01-01T00:00:00Z")
    assert tasks.expire_claims() == 1
    expired = item.history.latest("history_id")
    assert (expired.history_actor_kind, expired.history_actor) == (ActorKind.SYSTEM, "claim-expiry")
    assert expired.actor_label == "system:claim-expiry"
    assert expired.history_user_id is None

    ReviewItem.objects.filter(pk=item.pk).update(due_at="2000-01-01T00:00:00Z")
    tasks.apply_sla_timeouts()
    timed_out = item.history.latest("history_id")
    assert timed_out.actor_label == "system:sla-sweep"


def test_delivery_is_attributed_to_the_delivery_task_even_inside_a_reviewers_request(
    integration, queue, gated, reviewer, receiver, rf
):
    """Eager tasks (`make run`) deliver inside the reviewer's request: still the task's doing."""
    from simple_history.models import HistoricalRecords

    integration.callback_url = receiver.url
    integration.save()
    item = services.submit_item(integration=integration, payload=submission()).item
    services.decide(item=item, user=reviewer, action="approve", justification="Fine.")
    message = OutboxMessage.objects.get(item=item)
    request = rf.post("/")
    request.user = reviewer
    HistoricalRecords.context.request = request
    try:
        assert tasks.deliver_message(message.pk) == "delivered"
    finally:
        del HistoricalRecords.context.request
    delivered = message.history.latest("history_id")
    assert delivered.status == OutboxMessage.Status.DELIVERED
    assert delivered.actor_label == "system:delivery" and delivered.history_user_id is None
    attempt = message.delivery_attempts.get()
    assert {row.actor_label for row in attempt.history.all()} == {"system:delivery"}


def test_management_commands_are_attributed_to_the_command(db):
    call_command("create_integration", "Reporting", "--slug", "reporting", stdout=StringIO())
    created = Integration.objects.get(slug="reporting").history.get()
    assert created.actor_label == "system:create_integration"


def test_import_policy_is_attributed_and_gives_each_rule_one_version(db, tmp_path, settings):
    call_command(
        "import_policy",
        str(Path(settings.BASE_DIR) / "demo" / "policy.json"),
        stdout=StringIO(),
    )
    rule = GateRule.objects.filter(conditions__isnull=False).first()
    versions = list(rule.history.all())
    assert len(versions) == 1
    assert versions[0].actor_label == "system:import_policy"
    assert versions[0].conditions == [c.as_version() for c in rule.conditions.all()]


def test_every_history_row_the_demo_writes_names_its_actor(db, tmp_path):
    call_command("seed_demo", stdout=StringIO())
    for source in history_sources():
        unnamed = source.history.objects.filter(history_actor="").count()
        assert unnamed == 0, source.label
        assert not source.history.objects.filter(history_actor="unattributed").exists(), source.label


def test_granting_a_role_is_in_the_users_history(client, superuser, queue):
    newcomer = User.objects.create_user("newcomer", password="x")
    client.force_login(superuser)
    response = client.post(
        admin_url(User, "change", newcomer.pk),
        {
            "username": "newcomer",
            "is_active": "on",
            "is_staff": "on",
            "groups": [g.pk for g in queue.reviewer_groups.all()],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    latest = newcomer.history.latest("history_id")
    assert latest.actor_label == "root"
    assert set(latest.groups.values_list("group__name", flat=True)) == {"general-reviewers"}
    assert not hasattr(latest, "password")


# --- Rule versions carry their conditions ---------------------------------------------------


def test_changing_one_condition_in_the_admin_is_one_version_that_shows_the_change(
    client, policy_admin, queue
):
    rule = GateRuleFactory(name="Low confidence", queue=queue)
    condition = GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.7)
    client.force_login(policy_admin)
    before = rule.history.count()
    response = client.post(
        admin_url(GateRule, "change", rule.pk),
        {
            "name": rule.name,
            "description": "",
            "enabled": "on",
            "mode": "enforce",
            "priority": rule.priority,
            "match": "all",
            "sample_rate": 1.0,
            "outcome": rule.outcome,
            "queue": queue.pk,
            "risk_level": rule.risk_level,
            "conditions-TOTAL_FORMS": 1,
            "conditions-INITIAL_FORMS": 1,
            "conditions-0-id": condition.pk,
            "conditions-0-rule": rule.pk,
            "conditions-0-field": "signals.confidence",
            "conditions-0-op": "lt",
            "conditions-0-value": "0.75",
            "conditions-0-position": 0,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert rule.history.count() == before + 1
    version = rule.history.latest("history_id")
    assert version.version == 2
    assert version.conditions == [{"field": "signals.confidence", "op": "lt", "value": 0.75}]
    page = client.get(admin_url(GateRule, "history", rule.pk)).content.decode()
    assert "signals.confidence lt 0.7" in page and "signals.confidence lt 0.75" in page


def test_a_rule_created_in_the_admin_is_one_version_with_its_conditions(client, policy_admin, queue):
    client.force_login(policy_admin)
    response = client.post(
        admin_url(GateRule, "add"),
        {
            "name": "Refunds",
            "description": "",
            "enabled": "on",
            "mode": "enforce",
            "priority": 10,
            "match": "all",
            "sample_rate": 1.0,
            "outcome": "review",
            "queue": queue.pk,
            "risk_level": "high",
            "conditions-TOTAL_FORMS": 1,
            "conditions-INITIAL_FORMS": 0,
            "conditions-0-field": "action.type",
            "conditions-0-op": "eq",
            "conditions-0-value": "refund",
            "conditions-0-position": 0,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    versions = list(GateRule.objects.get(name="Refunds").history.all())
    assert [(v.history_type, v.version, v.conditions) for v in versions] == [
        ("+", 1, [{"field": "action.type", "op": "eq", "value": "refund"}])
    ]


# --- The history page reads well -----------------------------------------------------------


def test_the_item_history_names_people_shows_whole_values_and_whole_seconds(
    client, compliance, integration, gated, reviewer
):
    long_text = "x" * 500
    item = services.submit_item(integration=integration, payload=submission(output={"text": long_text})).item
    services.claim(item=item, user=reviewer)
    services.release(item=item, user=reviewer)
    client.force_login(compliance)
    page = client.get(admin_url(ReviewItem, "history", item.pk)).content.decode()
    assert "Deleted user" not in page and "pk=None" not in page
    assert "reviewer" in page and "(none)" in page
    assert ".%f" not in page
    times = re.findall(r'<time datetime="[^"]+">([^<]+)</time>', page)
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+", t) for t in times)


def test_json_on_a_decision_page_is_indented(client, compliance, integration, gated, reviewer):
    item = services.submit_item(integration=integration, payload=submission()).item
    decision = services.decide(
        item=item,
        user=reviewer,
        action="edit",
        justification="Tone.",
        reason_codes=["wrong"],
        edited_output={"text": "Better", "tags": ["a"]},
        checklist=[],
    )
    client.force_login(compliance)
    page = client.get(admin_url(Decision, "change", decision.pk)).content.decode()
    assert '<pre class="json" dir="auto">{\n  &quot;' in page
    assert "&quot;tags&quot;: [\n    &quot;a&quot;\n  ]" in page


# --- The decisions list ---------------------------------------------------------------------


def test_the_decision_list_is_newest_first_searchable_and_shows_justifications(
    client, compliance, integration, gated, reviewer
):
    first = services.submit_item(integration=integration, payload=submission(external_id="first")).item
    second = services.submit_item(integration=integration, payload=submission(external_id="second")).item
    reject(first, reviewer, "Invents a refund policy.")
    reject(second, reviewer, "Wrong customer name.")
    client.force_login(compliance)
    page = client.get(admin_url(Decision, "changelist"))
    rows = list(page.context["cl"].result_list)
    assert [d.item.external_id for d in rows] == ["second", "first"]
    html = page.content.decode()
    assert "Invents a refund policy." in html
    for term, expected in [
        ("refund policy", ["first"]),
        ("second", ["second"]),
        ("reviewer", ["second", "first"]),
    ]:
        found = client.get(admin_url(Decision, "changelist"), {"q": term}).context["cl"].result_list
        assert [d.item.external_id for d in found] == expected, term


# --- Compliance reads, never writes ----------------------------------------------------------


def _model_admin_urls():
    from django.contrib import admin

    yield from admin.site._registry.items()


def test_compliance_gets_403_on_every_add_change_delete_and_decision_url(
    client, compliance, integration, gated, reviewer, queue
):
    item = services.submit_item(integration=integration, payload=submission()).item
    decided = services.submit_item(integration=integration, payload=submission()).item
    reject(decided, reviewer, "No.")
    client.force_login(compliance)
    checked = 0
    for model, _ in _model_admin_urls():
        row = model._default_manager.first()
        add = client.post(admin_url(model, "add"), {})
        assert add.status_code == 403, (model, "add", add.status_code)
        if row is None:
            continue
        change = client.post(admin_url(model, "change", row.pk), {})
        delete = client.post(admin_url(model, "delete", row.pk), {"post": "yes"})
        assert change.status_code == 403, (model, "change", change.status_code)
        assert delete.status_code == 403, (model, "delete", delete.status_code)
        assert model._default_manager.filter(pk=row.pk).exists()
        checked += 1
    assert checked >= 8
    review = client.post(
        reverse("admin:reviews_review", args=[item.pk]), {"action": "approve", "justification": "Fine."}
    )
    assert review.status_code == 403
    api = token_client(compliance)
    assert (
        api.post(
            f"/api/v1/items/{item.pk}/decisions/", {"action": "approve", "justification": "x"}
        ).status_code
        == 403
    )
    assert api.post(f"/api/v1/items/{item.pk}/claim/", {}).status_code in (403, 404)
    assert not Decision.objects.filter(item=item).exists()
    assert ReviewItem.objects.get(pk=item.pk).status == ItemStatus.PENDING


def test_a_superuser_cannot_delete_a_decision_in_the_admin(client, superuser, integration, gated, reviewer):
    item = services.submit_item(integration=integration, payload=submission()).item
    decision = reject(item, reviewer, "No.")
    client.force_login(superuser)
    assert client.post(admin_url(Decision, "delete", decision.pk), {"post": "yes"}).status_code == 403
    assert (
        client.post(admin_url(Decision, "change", decision.pk), {"justification": "Yes."}).status_code == 403
    )
    listing = client.post(
        admin_url(Decision, "changelist"),
        {"action": "delete_selected", "_selected_action": [decision.pk], "post": "yes"},
    )
    assert listing.status_code in (200, 302)
    assert Decision.objects.get(pk=decision.pk).justification == "No."


def test_history_cannot_be_reverted_through_the_history_form(client, superuser, queue):
    queue.name = "Renamed"
    queue.save()
    first = queue.history.earliest("history_id")
    client.force_login(superuser)
    url = reverse("admin:reviews_queue_simple_history", args=[queue.pk, first.history_id])
    assert client.post(url, {"name": "General review"}).status_code == 403
    queue.refresh_from_db()
    assert queue.name == "Renamed"


# --- PostgreSQL refuses rewriting, table by table --------------------------------------------


def _append_only_tables() -> list[str]:
    tables = ["reviews_decision", "reviews_decision_reason_codes", "reviews_auditseal", "reviews_auditcheck"]
    for source in history_sources():
        tables.append(source.history._meta.db_table)
        for m2m in getattr(source.history, "_history_m2m_fields", []):
            tables.append(f"{source.history._meta.db_table}_{m2m.name}")
    return tables


@pytest.fixture
def a_row_in_every_table(integration, queue, reviewer, receiver):
    """At least one row in each append-only table, so refusing a change is tested on data."""
    from django.contrib.auth.models import Permission

    from reviews.models import ReasonCode

    integration.callback_url = receiver.url
    integration.save()
    rule = GateRuleFactory(name="Review everything", queue=queue)
    GateConditionFactory(rule=rule, field="kind", op="eq", value="output")
    ReasonCode.objects.create(code="tone", label="Tone", applies_to=["reject"], creates_backlog_item=True)
    group = queue.reviewer_groups.first()
    group.permissions.add(Permission.objects.first())
    rejected = services.submit_item(integration=integration, payload=submission()).item
    services.decide(item=rejected, user=reviewer, action="reject", justification="No.", reason_codes=["tone"])
    approved = services.submit_item(integration=integration, payload=submission()).item
    services.decide(item=approved, user=reviewer, action="approve", justification="Yes.")
    assert tasks.deliver_message(OutboxMessage.objects.get(item=approved).pk) == "delivered"
    services.report_incident(item=approved, severity="low", description="Slipped through.", user=reviewer)
    services.issue_api_key(integration=integration)
    services.run_audit_check()
    FeedbackExport.objects.create(format="jsonl", requested_by=reviewer)
    root = User.objects.create(username="root", is_superuser=True)
    services.seed_gold_item(item=rejected, queue=queue, answer="reject", user=root)


@pytest.mark.postgres
@pytest.mark.parametrize("table", _append_only_tables())
def test_postgres_refuses_update_and_delete_on_every_append_only_table(table, a_row_in_every_table):
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        assert cursor.fetchone()[0] > 0, f"no row in {table} to try"
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary",
            [table],
        )
        key = cursor.fetchone()[0]
        for statement in (f'UPDATE "{table}" SET "{key}" = "{key}" + 1000000000', f'DELETE FROM "{table}"'):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cursor.execute(statement)


def test_a_save_of_only_columns_history_leaves_out_writes_no_row(reviewer, client):
    rows = reviewer.history.count()
    client.force_login(reviewer)  # Django saves last_login, which history leaves out
    reviewer.refresh_from_db()
    reviewer.save(update_fields=["last_login"])
    assert reviewer.history.count() == rows
    reviewer.first_name = "Ada"
    reviewer.save(update_fields=["first_name", "last_login"])
    assert reviewer.history.count() == rows + 1
