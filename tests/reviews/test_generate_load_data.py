"""`generate_load_data`: a realistic load through COPY, sealed, idempotent per seed,
and careful with databases that hold real data."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count

from reviews import chain, services
from reviews.management import loadgen
from reviews.models import (
    Decision,
    DeliveryAttempt,
    Incident,
    ItemStatus,
    OutboxMessage,
    ReviewItem,
)
from tests.factories import submission

ITEMS = 2_500  # three blocks, the last one partial


def generate(**options) -> str:
    out = StringIO()
    call_command(
        "generate_load_data",
        items=options.pop("items", ITEMS),
        days=options.pop("days", 30),
        processes=options.pop("processes", 1),
        stdout=out,
        stderr=StringIO(),
        **options,
    )
    return out.getvalue()


def fingerprint() -> list[tuple]:
    """What the generated data is, leaving out ids the database hands out."""
    items = ReviewItem.objects.order_by("external_id").values_list(
        "external_id", "status", "queue__slug", "review_round", "created_at", "decided_at"
    )
    decisions = Decision.objects.order_by("item__external_id", "round", "step").values_list(
        "item__external_id", "action", "round", "step", "is_final", "reviewer__username", "created_at"
    )
    return [*items, *decisions]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_realistic_load_with_every_kind_of_decision_and_a_sealed_chain():
    output = generate(processes=2)
    assert "Added 2,500 items" in output

    assert ReviewItem.objects.count() == ITEMS
    statuses = Counter(ReviewItem.objects.values_list("status", flat=True))
    for status in (ItemStatus.APPROVED, ItemStatus.REJECTED, ItemStatus.PENDING, ItemStatus.AUTO_APPROVED):
        assert statuses[status] > 0, statuses
    actions = Counter(Decision.objects.values_list("action", flat=True))
    assert {"approve", "edit", "reject", "escalate"} <= set(actions), actions
    four_eyes = (
        Decision.objects.filter(action="approve")
        .values("item", "round")
        .annotate(approvers=Count("reviewer", distinct=True))
        .filter(approvers=2)
    )
    assert four_eyes.exists()
    escalated = ReviewItem.objects.filter(review_round=2).first()
    assert escalated.decisions.filter(action="escalate", round=1).exists()

    # Every item has its submission in history; every decision its row, made by its reviewer.
    item_history = ReviewItem.history.model.objects
    assert item_history.filter(history_type="+").count() == ITEMS
    assert item_history.filter(history_type="+", history_actor_kind="integration").count() == ITEMS
    decision_history = Decision.history.model.objects
    assert decision_history.count() == Decision.objects.count()
    row = decision_history.select_related("reviewer").first()
    assert row.history_actor == row.reviewer.username
    # Consequences were delivered, some at the second attempt; an integration reported incidents.
    assert OutboxMessage.objects.exclude(status=OutboxMessage.Status.DELIVERED).count() == 0
    assert DeliveryAttempt.objects.filter(status_code=500).exists()
    assert DeliveryAttempt.objects.count() >= OutboxMessage.objects.count()
    assert Incident.objects.exclude(decision=None).count() == Incident.objects.count()

    result = chain.verify()
    assert result.ok, result.broken
    assert result.checked >= Decision.objects.count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_seed_twice_adds_nothing_and_a_larger_count_tops_up():
    generate(items=1_200)
    before = fingerprint()
    assert "nothing to do" in generate(items=1_200)
    assert fingerprint() == before

    generate(items=ITEMS)
    assert ReviewItem.objects.count() == ITEMS
    after = fingerprint()
    assert set(before) <= set(after)  # the first items are untouched
    assert chain.verify().ok


def test_a_block_made_in_part_equals_the_same_part_of_the_whole_block():
    """Topping up relies on it: items after `first` come out as in a run that made them all."""
    queue = loadgen.QueuePlan(
        id=1, slug="general", sla=timedelta(hours=4), required_approvals=1,
        escalation_id=2, reviewers=(10, 11), checklist_length=1,
    )  # fmt: skip
    senior = loadgen.QueuePlan(
        id=2, slug="senior", sla=timedelta(hours=8), required_approvals=2,
        escalation_id=None, reviewers=(12, 13), checklist_length=0,
    )  # fmt: skip
    template = loadgen.Template(
        kind="action",
        columns={name: loadgen.raw_json({"n": 1}) for name in ("input", "output", "action", "context")}
        | {"signals": loadgen.raw_json({}), "metadata": loadgen.raw_json({})},
        external_id="refund",
        status=ItemStatus.PENDING,
        queue_id=1,
        risk_level="high",
        matched_rules=loadgen.raw_json([]),
        shadow_matches=loadgen.raw_json([]),
    )

    def generator():
        made = loadgen.Generator(
            seed=3, end=datetime(2026, 12, 1, tzinfo=UTC), days=30, escalation_share=0.3,
            templates=[template], queues={1: queue, 2: senior}, integrations=[(1, "load-3-bot", "")],
            codes={"reject": ["wrong"]}, usernames={10: "a", 11: "b", 12: "c", 13: "d"},
        )  # fmt: skip
        made.ids = loadgen.Ids({model: 1 for model in loadgen.ROOM}, first_block=0)
        return made

    whole = generator().block(0, 0, loadgen.BLOCK).tables[ReviewItem]
    part = generator().block(0, 400, loadgen.BLOCK).tables[ReviewItem]
    assert part == whole[400:]
    assert len({row["status"] for row in whole}) > 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_refuses_a_database_with_real_items_unless_forced(integration):
    services.submit_item(integration=integration, payload=submission(external_id="real-1"))
    with pytest.raises(CommandError, match="did not make"):
        generate(items=10)
    assert ReviewItem.objects.count() == 1

    generate(items=10, force=True)
    assert ReviewItem.objects.count() == 11


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_seed_keeps_what_it_was_made_with():
    generate(items=10)
    with pytest.raises(CommandError, match="--days 30"):
        generate(items=20, days=90)
    generate(items=20, days=90, seed=2)
    assert ReviewItem.objects.count() == 30


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [({"items": 0}, "--items"), ({"days": 0}, "--days"), ({"processes": 0}, "--processes")],
)
def test_bad_arguments_are_refused(options, message):
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="PostgreSQL"):
            generate(**options)
        return
    with pytest.raises(CommandError, match=message):
        generate(**options)
    assert not ReviewItem.objects.exists()
