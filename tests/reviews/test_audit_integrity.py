"""Decisions and history do not change after the fact: cited reason codes keep their
code, accounts on the record are kept, revoked keys stay revoked."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import DatabaseError, transaction
from django.urls import reverse

from reviews import services
from reviews.models import ApiKey, Decision, ReasonCode
from tests.factories import GateRuleFactory, QueueFactory, ReasonCodeFactory, UserFactory, submission
from tests.reviews.test_api import token_client

User = get_user_model()


def admin_url(model, view, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def cited(integration, queue, reviewer):
    """A reason code that a rejection cites."""
    code = ReasonCodeFactory(code="tone", label="Tone", applies_to=["reject", "edit"])
    GateRuleFactory(name="Review everything", queue=queue)
    item = services.submit_item(integration=integration, payload=submission()).item
    services.decide(item=item, user=reviewer, action="reject", justification="Rude.", reason_codes=["tone"])
    return code


def reason_code_form(reason_code: ReasonCode, **changes) -> dict:
    code = reason_code
    data = {
        "code": code.code,
        "label": code.label,
        "applies_to": '["reject", "edit"]',
        "active": "on",
    }
    return {**data, **changes}


# --- Reason codes ------------------------------------------------------------------------------


def test_a_cited_reason_codes_code_cannot_be_renamed_in_the_admin(client, policy_admin, cited):
    client.force_login(policy_admin)
    page = client.get(admin_url(ReasonCode, "change", cited.pk))
    assert "code" not in page.context["adminform"].form.fields  # shown read-only
    client.post(
        admin_url(ReasonCode, "change", cited.pk),
        reason_code_form(cited, code="approved_by_ceo", label="Tone of voice"),
    )
    cited.refresh_from_db()
    assert cited.code == "tone" and cited.label == "Tone of voice"  # the label may change


def test_an_unused_reason_code_can_still_be_renamed(client, policy_admin, db):
    code = ReasonCodeFactory(code="typo_cod", label="Typo")
    client.force_login(policy_admin)
    client.post(admin_url(ReasonCode, "change", code.pk), reason_code_form(code, code="typo_code"))
    code.refresh_from_db()
    assert code.code == "typo_code"


def test_model_validation_refuses_renaming_a_cited_code(cited):
    from django.core.exceptions import ValidationError

    cited.code = "approved_by_ceo"
    with pytest.raises(ValidationError) as error:
        cited.full_clean()
    assert "code" in error.value.message_dict


def test_a_decision_keeps_the_codes_it_was_made_with(integration, cited, reviewer):
    decision = Decision.objects.get()
    assert decision.cited_codes == ["tone"]
    body = token_client(reviewer).get(f"/api/v1/items/{decision.item_id}/").json()
    assert body["decisions"][0]["reason_codes"] == decision.cited_codes


@pytest.mark.postgres
def test_postgres_refuses_renaming_a_cited_code(cited):
    with pytest.raises(DatabaseError), transaction.atomic():
        ReasonCode.objects.filter(pk=cited.pk).update(code="approved_by_ceo")
    ReasonCode.objects.filter(pk=cited.pk).update(label="Still fine")


# --- People on the record -----------------------------------------------------------------------


def test_a_user_in_decisions_or_history_cannot_be_deleted_only_deactivated(client, superuser, cited):
    reviewer = User.objects.get(username="reviewer")
    client.force_login(superuser)
    response = client.post(admin_url(User, "delete", reviewer.pk), {"post": "yes"})
    assert response.status_code == 302
    assert User.objects.filter(pk=reviewer.pk).exists()
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "reviewer appears in decisions" in message and "Deactivate the account instead" in message


def test_bulk_deleting_users_on_the_record_is_refused_with_the_reason(client, superuser, cited):
    reviewer = User.objects.get(username="reviewer")
    client.force_login(superuser)
    response = client.post(
        admin_url(User, "changelist"),
        {"action": "delete_selected", "_selected_action": [reviewer.pk], "post": "yes"},
    )
    assert User.objects.filter(pk=reviewer.pk).exists()
    assert "cannot be deleted" in response.content.decode(), response.content.decode()[-6000:]


def test_a_user_with_no_record_can_be_deleted(client, superuser, db):
    newcomer = UserFactory(username="typo-account")
    client.force_login(superuser)
    client.post(admin_url(User, "delete", newcomer.pk), {"post": "yes"})
    assert not User.objects.filter(pk=newcomer.pk).exists()


def test_history_keeps_the_actors_name_after_the_account_is_deactivated(client, policy_admin, queue):
    client.force_login(policy_admin)
    QueueFactory(slug="other")
    response = client.post(
        admin_url(type(queue), "change", queue.pk),
        {
            "name": "General review, renamed",
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
    assert response.status_code == 302, response.context["adminform"].form.errors
    policy_admin.is_active = False
    policy_admin.save()
    change = queue.history.latest()
    assert change.name == "General review, renamed"
    assert change.history_user_id == policy_admin.pk and change.history_actor == "policy_admin"


def test_the_username_of_a_user_on_the_record_cannot_change(client, superuser, cited):
    reviewer = User.objects.get(username="reviewer")
    client.force_login(superuser)
    page = client.get(admin_url(User, "change", reviewer.pk))
    assert "username" not in page.context["adminform"].form.fields
    newcomer = UserFactory(username="newcomer")
    page = client.get(admin_url(User, "change", newcomer.pk))
    assert "username" in page.context["adminform"].form.fields


def test_the_history_page_names_the_actor(client, policy_admin, queue):
    queue._history_user = policy_admin
    queue.save()
    policy_admin.is_active = False
    policy_admin.save()
    client.force_login(UserFactory(username="auditor", is_staff=True, is_superuser=True))
    html = client.get(admin_url(type(queue), "history", queue.pk)).content.decode()
    assert '<td class="history-actor" dir="auto">policy_admin</td>' in html


@pytest.mark.postgres
def test_postgres_refuses_clearing_the_actor_of_a_history_row(queue, policy_admin):
    queue._history_user = policy_admin
    queue.save()
    row = queue.history.latest()
    assert row.history_user == policy_admin
    with pytest.raises(DatabaseError), transaction.atomic():
        type(row).objects.filter(pk=row.pk).update(history_user=None)
    with pytest.raises(DatabaseError), transaction.atomic():
        policy_admin.delete()  # its history rows would lose their actor


# --- API keys ----------------------------------------------------------------------------------------


@pytest.fixture
def revoked_key(integration) -> ApiKey:
    services.issue_api_key(integration=integration, name="old")
    key = ApiKey.objects.get(integration=integration, name="old")
    return services.revoke_api_key(api_key=key)


def test_revoking_a_key_in_the_admin_is_recorded_in_its_history(client, policy_admin, integration):
    services.issue_api_key(integration=integration, name="leaked")
    key = ApiKey.objects.get(name="leaked")
    client.force_login(policy_admin)
    client.post(admin_url(ApiKey, "changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    latest = key.history.latest()
    assert latest.revoked_at == key.revoked_at and latest.history_actor == "policy_admin"
    assert latest.history_change_reason == "revoked"


def test_a_revoked_key_cannot_be_unrevoked_on_its_change_page(client, policy_admin, revoked_key):
    client.force_login(policy_admin)
    url = admin_url(ApiKey, "change", revoked_key.pk)
    page = client.get(url)
    assert "revoked_at" not in page.context["adminform"].form.fields
    client.post(url, {"name": "old", "expires_at_0": "", "expires_at_1": "", "revoked_at": ""})
    before = revoked_key.revoked_at
    revoked_key.refresh_from_db()
    assert revoked_key.revoked_at == before


def test_the_integration_page_does_not_offer_unrevoking_either(client, policy_admin, revoked_key):
    client.force_login(policy_admin)
    page = client.get(admin_url(type(revoked_key.integration), "change", revoked_key.integration_id))
    [formset] = [f for f in page.context["inline_admin_formsets"] if f.formset.model is ApiKey]
    assert all("revoked_at" not in form.fields for form in formset.formset.forms)


@pytest.mark.postgres
def test_postgres_refuses_unrevoking_a_key(revoked_key):
    with pytest.raises(DatabaseError), transaction.atomic():
        ApiKey.objects.filter(pk=revoked_key.pk).update(revoked_at=None)


# --- Staff API tokens --------------------------------------------------------------------------------


def test_staff_tokens_are_listed_by_prefix_only(client, superuser, reviewer):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=reviewer)
    client.force_login(superuser)
    listing = client.get("/admin/reviews/stafftoken/").content.decode()
    assert f"{token.key[:6]}…" in listing and token.key not in listing
    confirm = client.get(f"/admin/reviews/stafftoken/{reviewer.pk}/revoke/")
    assert confirm.status_code == 200 and token.key not in confirm.content.decode()
    client.post(f"/admin/reviews/stafftoken/{reviewer.pk}/revoke/")
    assert not Token.objects.filter(user=reviewer).exists()
    [logged] = LogEntry.objects.filter(action_flag=DELETION)
    assert logged.user == superuser and logged.object_repr == f"{token.key[:6]}… (reviewer)"
    assert client.get("/admin/authtoken/tokenproxy/").status_code == 404


def test_record_only_delivery_cannot_be_switched_on_in_the_admin(client, policy_admin, integration):
    """It marks actions executed without calling anything: switched on for a live
    integration it would silence every approved action."""
    client.force_login(policy_admin)
    url = admin_url(type(integration), "change", integration.pk)
    form = {
        "name": integration.name,
        "slug": integration.slug,
        "is_active": "on",
        "callback_url": "",
        "action_url": "",
        "action_delivery": "record",
        "api_keys-TOTAL_FORMS": 0,
        "api_keys-INITIAL_FORMS": 0,
    }
    assert client.post(url, form).status_code == 302
    integration.refresh_from_db()
    assert integration.action_delivery == "webhook"


# --- Backlog and incident triage go through services, with history -------------------------------


def test_triaging_an_incident_in_the_admin_is_recorded_with_a_reason(client, superuser, cited):
    from reviews.models import Incident

    decision = Decision.objects.get()
    incident = services.report_incident(item=decision.item, severity="low", description="Rude reply.")
    client.force_login(superuser)
    response = client.post(
        admin_url(Incident, "change", incident.pk),
        {"severity": "high", "status": "resolved", "description": "Rude reply, apologised."},
    )
    assert response.status_code == 302
    latest = incident.history.latest()
    assert (latest.severity, latest.status) == ("high", "resolved")
    assert latest.history_change_reason == "changed severity, status, description"
    assert latest.history_actor == "root"


def test_working_a_backlog_item_in_the_admin_is_recorded_with_a_reason(client, policy_admin, integration):
    from reviews.models import BacklogItem

    code = ReasonCodeFactory(code="missing_guardrail", applies_to=["reject"], creates_backlog_item=True)
    backlog = BacklogItem.objects.create(title="Missing guardrail", reason_code=code)
    client.force_login(policy_admin)
    data = {"title": "Missing guardrail: refunds", "status": "in_progress", "notes": "Rule drafted."}
    assert client.post(admin_url(BacklogItem, "change", backlog.pk), data).status_code == 302
    latest = backlog.history.latest()
    assert latest.status == "in_progress" and latest.history_change_reason == "status open -> in_progress"
    assert latest.history_actor == "policy_admin"


def test_finishing_a_secret_rotation_twice_is_harmless(integration):
    services.rotate_webhook_secret(integration=integration)
    services.finish_secret_rotation(integration=integration)
    rows = integration.history.count()
    services.finish_secret_rotation(integration=integration)
    integration.refresh_from_db()
    assert integration.previous_webhook_secret == "" and integration.history.count() == rows
