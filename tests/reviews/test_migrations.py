"""Data migrations on data that existed before them."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BEFORE = [("reviews", "0005_reason_codes_are_never_deleted")]
AFTER = [("reviews", "0006_item_keeps_strictest_approvals")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_items_that_timed_out_of_a_four_eyes_queue_keep_two_approvals():
    apps = migrate(BEFORE)
    try:
        Queue = apps.get_model("reviews", "Queue")
        Integration = apps.get_model("reviews", "Integration")
        ReviewItem = apps.get_model("reviews", "ReviewItem")
        History = apps.get_model("reviews", "HistoricalReviewItem")
        payments = Queue.objects.create(slug="payments", name="Payments", required_approvals=2)
        quick = Queue.objects.create(slug="quick", name="Quick", required_approvals=1)
        bot = Integration.objects.create(name="Bot", slug="bot", webhook_secret="whsec_x")
        now = timezone.now()

        def item(queue):
            return ReviewItem.objects.create(id=uuid.uuid4(), integration=bot, kind="output", queue=queue)

        timed_out, stayed_quick, in_payments = item(quick), item(quick), item(payments)
        # The SLA sweep escalated `timed_out` from payments to quick: a history row, no decision.
        for row, queue in ((timed_out, payments), (timed_out, quick), (stayed_quick, quick)):
            History.objects.create(
                id=row.id,
                integration=bot,
                kind="output",
                queue=queue,
                status="pending",
                history_date=now,
                history_type="~",
                created_at=now,
                updated_at=now,
            )
        apps = migrate(AFTER)
        ReviewItem = apps.get_model("reviews", "ReviewItem")
        required = dict(ReviewItem.objects.values_list("id", "required_approvals"))
        assert required == {timed_out.id: 2, stayed_quick.id: 1, in_payments.id: 2}
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
