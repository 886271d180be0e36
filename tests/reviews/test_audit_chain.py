"""Tamper evidence: decisions, rule versions and integration key events are hash-chained,
and `verify_audit` names the first broken link."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from policies.models import GateRule
from policies.services import record_rule_change
from reviews import chain, services, tasks
from reviews.models import ApiKey, AuditChainHead, AuditCheck, AuditSeal, Decision, Integration
from tests.factories import GateConditionFactory, GateRuleFactory, ReasonCodeFactory, submission


@pytest.fixture
def history(integration, queue, reviewer):
    """A trail worth checking: a rule and a new version of it, keys issued and revoked,
    a secret rotation, and decisions of every kind."""
    ReasonCodeFactory(code="wrong", label="Wrong", applies_to=["reject", "edit"])
    rule = GateRuleFactory(name="Review everything", queue=queue)
    GateConditionFactory(rule=rule, field="kind", op="exists", value=None)
    record_rule_change(rule=rule)
    key = services.issue_api_key(integration=integration)
    services.revoke_api_key(api_key=ApiKey.objects.get(prefix=ApiKey.split_key(key)[0]))
    services.rotate_webhook_secret(integration=integration)
    services.finish_secret_rotation(integration=integration)
    decisions = []
    for action in ("approve", "reject", "edit"):
        item = services.submit_item(integration=integration, payload=submission()).item
        extra = {"reason_codes": ["wrong"]} if action != "approve" else {}
        if action == "edit":
            extra["edited_output"] = {"text": "Better"}
        decisions.append(
            services.decide(
                item=item, user=reviewer, action=action, justification=f"{action}: checked.", **extra
            )
        )
    return decisions


def verify() -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except CommandError as exc:
        return 1, f"{out.getvalue()}{exc}"
    return 0, out.getvalue()


@contextmanager
def triggers_off():
    """What someone with the database's owner rights can do: switch the triggers off
    (on PostgreSQL; SQLite has none)."""
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute("SET LOCAL session_replication_role = replica")
        yield cursor
        if postgres:
            cursor.execute("SET LOCAL session_replication_role = origin")


def test_an_intact_trail_verifies(history):
    code, output = verify()
    assert code == 0, output
    assert "Audit trail intact" in output
    assert AuditSeal.objects.filter(chain="decisions").count() == Decision.objects.count() == 3
    assert AuditSeal.objects.filter(chain="rule-versions").count() == GateRule.history.count()
    integration_events = Integration.history.count() + ApiKey.history.count()
    assert AuditSeal.objects.filter(chain="integration-keys").count() == integration_events


def test_a_justification_altered_in_the_database_is_named(history):
    victim = history[1]
    with triggers_off() as cursor:
        cursor.execute(
            "UPDATE reviews_decision SET justification = %s WHERE id = %s", ["Looks fine.", victim.pk]
        )
    code, output = verify()
    assert code == 1
    assert f"reviews.Decision {victim.pk}" in output and "justification" in output


def test_a_decision_written_around_the_service_is_found(history, reviewer):
    sneaked = Decision.objects.create(
        item=history[0].item,
        reviewer=reviewer,
        queue=history[0].queue,
        action="approve",
        justification="Nobody saw this.",
        round=9,
        step=1,
    )
    code, output = verify()
    assert code == 1
    assert f"reviews.Decision {sneaked.pk}" in output and "never sealed" in output


def test_a_deleted_decision_is_found(history):
    victim = history[0]
    with triggers_off() as cursor:
        cursor.execute("DELETE FROM reviews_decision_reason_codes WHERE decision_id = %s", [victim.pk])
        cursor.execute("UPDATE reviews_incident SET decision_id = NULL WHERE decision_id = %s", [victim.pk])
        cursor.execute("DELETE FROM reviews_decision WHERE id = %s", [victim.pk])
    code, output = verify()
    assert code == 1
    assert f"reviews.Decision {victim.pk}" in output and "gone" in output


def test_a_removed_seal_breaks_the_chain(history):
    middle = AuditSeal.objects.get(chain="decisions", seq=2)
    with triggers_off() as cursor:
        cursor.execute("DELETE FROM reviews_auditseal WHERE id = %s", [middle.pk])
    code, output = verify()
    assert code == 1 and "seal 2 of the chain is missing" in output


def test_a_resealed_row_without_rewriting_the_chain_is_found(history):
    """Changing a decision and its seal's field hashes leaves the chain's hashes wrong."""
    victim = history[2]
    seal = AuditSeal.objects.get(model="reviews.Decision", object_id=victim.pk)
    with triggers_off() as cursor:
        cursor.execute(
            "UPDATE reviews_decision SET justification = %s WHERE id = %s", ["Changed.", victim.pk]
        )
        victim.refresh_from_db()
        fields = chain.field_hashes(victim)
        cursor.execute(
            "UPDATE reviews_auditseal SET fields = %s WHERE id = %s",
            [chain.canonical(fields), seal.pk],
        )
    code, output = verify()
    assert code == 1 and f"reviews.Decision {victim.pk}" in output and "seal's field hashes" in output


def test_dropping_the_last_seal_and_its_decision_is_caught_by_the_head(history):
    last = AuditSeal.objects.filter(chain="decisions").order_by("-seq").first()
    with triggers_off() as cursor:
        cursor.execute("DELETE FROM reviews_auditseal WHERE id = %s", [last.pk])
        cursor.execute("DELETE FROM reviews_decision_reason_codes WHERE decision_id = %s", [last.object_id])
        cursor.execute("DELETE FROM reviews_decision WHERE id = %s", [last.object_id])
    code, output = verify()
    assert code == 1 and "its head says 3" in output


def test_a_rule_version_rewritten_in_the_database_is_named(history):
    version = GateRule.history.filter(conditions__isnull=False).exclude(conditions=[]).first()
    table = GateRule.history.model._meta.db_table
    with triggers_off() as cursor:
        cursor.execute(
            f'UPDATE "{table}" SET conditions = %s WHERE history_id = %s', ["[]", version.history_id]
        )
    code, output = verify()
    assert code == 1
    assert f"policies.HistoricalGateRule {version.history_id}" in output and "conditions" in output


def test_an_unrevoked_key_event_is_named(history):
    revoked = ApiKey.history.exclude(revoked_at=None).first()
    table = ApiKey.history.model._meta.db_table
    with triggers_off() as cursor:
        cursor.execute(f'UPDATE "{table}" SET revoked_at = NULL WHERE history_id = %s', [revoked.history_id])
    code, output = verify()
    assert code == 1
    assert f"reviews.HistoricalApiKey {revoked.history_id}" in output and "revoked_at" in output


def test_the_daily_task_records_its_result_with_its_actor(history):
    assert tasks.verify_audit() is True
    check = AuditCheck.objects.latest()
    assert check.ok and check.checked == AuditSeal.objects.count() and check.actor == "system:verify-audit"
    assert check.heads["decisions"] == {
        "seq": 3,
        "hash": AuditChainHead.objects.get(chain="decisions").entry_hash,
    }
    with triggers_off() as cursor:
        cursor.execute("UPDATE reviews_decision SET justification = 'x' WHERE id = %s", [history[0].pk])
    assert tasks.verify_audit() is False
    broken = AuditCheck.objects.latest()
    assert not broken.ok and f"reviews.Decision {history[0].pk}" in broken.broken_link


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_decisions_make_one_unbroken_chain(integration, queue):
    """Ten reviewers decide at once: the chain's lock keeps one seal per place."""
    from tests.conftest import make_reviewer

    ReasonCodeFactory(code="wrong", label="Wrong", applies_to=["reject", "edit"])
    GateRuleFactory(name="Review everything", queue=queue)
    people = [make_reviewer(f"r{n}", queue) for n in range(10)]
    items = [services.submit_item(integration=integration, payload=submission()).item for _ in people]
    barrier = threading.Barrier(len(people))
    errors = []

    def work(user, item):
        try:
            barrier.wait()
            services.decide(
                item=item, user=user, action="reject", justification="No.", reason_codes=["wrong"]
            )
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=pair) for pair in zip(people, items, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(AuditSeal.objects.filter(chain="decisions").values_list("seq", flat=True)) == list(
        range(1, 11)
    )
    assert chain.verify().ok


def test_the_admin_index_shows_the_last_check_to_those_who_read_the_audit_log(
    client, history, compliance, reviewer, policy_admin
):
    client.force_login(compliance)
    assert "has not been checked yet" in client.get("/admin/").content.decode()
    services.run_audit_check()
    page = client.get("/admin/").content.decode()
    assert f"Audit trail intact: {AuditSeal.objects.count()} sealed records verified" in page
    with triggers_off() as cursor:
        cursor.execute("UPDATE reviews_decision SET justification = 'x' WHERE id = %s", [history[0].pk])
    services.run_audit_check()
    page = client.get("/admin/").content.decode()
    assert "Audit trail broken" in page and f"reviews.Decision {history[0].pk}" in page
    for person in (reviewer, policy_admin):
        client.force_login(person)
        page = client.get("/admin/").content.decode()
        assert 'id="audit-check"' not in page and "Audit log" not in page
