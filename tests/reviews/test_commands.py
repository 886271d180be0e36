"""Management commands as an operator runs them."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from reviews import services
from reviews.models import (
    ApiKey,
    Decision,
    ExecutionStatus,
    Integration,
    ItemStatus,
    OutboxMessage,
    ReviewItem,
)

ROOT = Path(__file__).resolve().parents[2]


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_integration_prints_the_key_and_secret_once_and_stores_a_hash(db):
    out = run("create_integration", "Support bot", "--callback-url", "https://bot.example/hitl")
    key = re.search(r"^api_key: (\S+)$", out, re.M).group(1)
    secret = re.search(r"^webhook_secret: (\S+)$", out, re.M).group(1)
    integration = Integration.objects.get(slug="support-bot")
    assert integration.callback_url == "https://bot.example/hitl"
    assert secret.startswith("whsec_") and integration.webhook_secret == secret
    stored = ApiKey.objects.get(integration=integration)
    assert key not in {stored.prefix, stored.hashed_key}
    assert stored.hashed_key == ApiKey.hash_key(key)
    assert ApiKey.split_key(key) == (stored.prefix, key)


def test_create_integration_can_make_an_integration_that_only_records_actions(db):
    run("create_integration", "Agent", "--record-actions")
    run("create_integration", "Webhooks")
    assert Integration.objects.get(slug="agent").action_delivery == Integration.ActionDelivery.RECORD
    assert Integration.objects.get(slug="webhooks").action_delivery == Integration.ActionDelivery.WEBHOOK


def test_create_integration_refuses_a_duplicate_and_a_bad_url(db):
    run("create_integration", "Support bot")
    with pytest.raises(CommandError, match="already exists"):
        run("create_integration", "Support bot")
    with pytest.raises(CommandError, match="not an http"):
        run("create_integration", "Other", "--action-url", "ftp://files.example/")
    with pytest.raises(CommandError, match="action_url"):
        run("create_integration", "Other", "--action-url", "http://169.254.169.254/latest/")
    assert Integration.objects.count() == 1


def test_seed_demo_loads_every_state_and_is_idempotent(db):
    out = run("seed_demo")
    for username in ("admin", "reviewer", "compliance"):
        assert re.search(rf"^\s+{username}\s+/\s+{username}-demo-pw", out, re.M)
    statuses = set(ReviewItem.objects.values_list("status", flat=True))
    assert {
        ItemStatus.PENDING,
        ItemStatus.IN_REVIEW,
        ItemStatus.APPROVED,
        ItemStatus.EDITED,
        ItemStatus.REJECTED,
        ItemStatus.AUTO_APPROVED,
    } <= statuses
    assert ReviewItem.objects.count() >= 24
    assert set(ReviewItem.objects.exclude(queue=None).values_list("queue__slug", flat=True)) >= {
        "payments",
        "regulated",
        "general",
        "senior",
    }
    counts = (ReviewItem.objects.count(), Decision.objects.count())

    again = run("seed_demo")
    assert "already loaded" in again
    assert (ReviewItem.objects.count(), Decision.objects.count()) == counts
    assert get_user_model().objects.get(username="reviewer").check_password("reviewer-demo-pw")


def test_approved_demo_actions_reach_succeeded_without_a_receiver(
    db, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run("seed_demo")
    actions = ReviewItem.objects.filter(kind="action", status__in=["approved", "edited", "auto_approved"])
    assert actions.exists()
    assert set(actions.values_list("execution_status", flat=True)) == {ExecutionStatus.SUCCEEDED}
    assert all(item.executed_action == item.final_action for item in actions)
    assert not OutboxMessage.objects.filter(kind="execute").exclude(status="delivered").exists()

    # One approved now, in the workspace's way, is recorded as executed too.
    item = ReviewItem.objects.filter(kind="action", status="pending", required_approvals=1).first()
    reviewer = get_user_model().objects.get(username="reviewer")
    if item.claimed_by_id not in (None, reviewer.pk):
        reviewer = item.claimed_by
    with django_capture_on_commit_callbacks(execute=True):
        services.decide(
            item=item,
            user=reviewer,
            action="approve",
            justification="Demo check.",
            checklist=[True] * len(item.queue.checklist),
        )
    item.refresh_from_db()
    assert item.execution_status == ExecutionStatus.SUCCEEDED


def test_seed_demo_prints_a_summary_and_the_url_it_is_given(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HITL_", "DATABASE_", "REDIS_"))
    }
    env.update(DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "--noinput").returncode == 0
    seeded = manage("seed_demo", "--url", "http://0.0.0.0:8080")
    assert seeded.returncode == 0, seeded.stderr
    assert "Demo logins for http://0.0.0.0:8080/admin/" in seeded.stdout
    assert seeded.stderr == ""  # no retry lines, no per-item log lines, no broker warning


def test_issue_api_key_adds_a_working_key_beside_the_first(db):
    first = re.search(r"^api_key: (\S+)$", run("create_integration", "Support bot"), re.M).group(1)
    second = re.search(r"^api_key: (\S+)$", run("issue_api_key", "support-bot"), re.M).group(1)
    assert first != second
    keys = ApiKey.objects.filter(integration__slug="support-bot")
    assert {k.hashed_key for k in keys} == {ApiKey.hash_key(first), ApiKey.hash_key(second)}
    with pytest.raises(CommandError, match="No integration"):
        run("issue_api_key", "nope")


def test_rotating_the_webhook_secret_signs_with_both_until_finished(db):
    run("create_integration", "Support bot")
    old = Integration.objects.get().webhook_secret
    new = re.search(r"^webhook_secret: (\S+)$", run("rotate_webhook_secret", "support-bot"), re.M).group(1)
    integration = Integration.objects.get()
    assert (integration.webhook_secret, integration.previous_webhook_secret) == (new, old)
    run("rotate_webhook_secret", "support-bot", "--finish")
    integration.refresh_from_db()
    assert integration.previous_webhook_secret == "" and integration.webhook_secret == new


def test_sweep_outbox_reports_what_it_dispatched(db):
    assert "Dispatched 0" in run("sweep_outbox")
