"""The selectors against the figures worked out by hand (tests/metrics/expected.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from metrics import selectors
from metrics.selectors import PercentileCont, PercentilesCont, metrics_answer, prometheus_figures
from reviews.models import Decision, Queue, ReviewItem
from tests.metrics import expected


def answer(story, queues=None, **options):
    options.setdefault("since", story.since)
    options.setdefault("until", story.until)
    queues = Queue.objects.order_by("slug") if queues is None else queues
    return metrics_answer(queues=queues, now=story.now, **options)


def test_every_figure_of_the_answer_is_the_one_worked_out_by_hand(story):
    result = answer(story, include_unqueued_incidents=True)
    assert (result["since"], result["until"]) == (story.since, story.until)
    assert result["queues"] == [expected.QUEUES[slug] for slug in ("expert", "four-eyes", "general")]
    assert result["reviewers"] == expected.REVIEWERS_ALL
    assert result["incidents"] == expected.INCIDENTS_ALL


def test_only_the_queues_given_are_counted(story):
    result = answer(story, queues=[story.four_eyes, story.general])
    assert result["queues"] == [expected.QUEUES["four-eyes"], expected.QUEUES["general"]]
    assert result["reviewers"] == expected.REVIEWERS_WITHOUT_EXPERT
    assert result["incidents"] == expected.INCIDENTS_OF_REVIEWER


def test_a_four_eyes_item_counts_once_and_an_escalation_never(story):
    [four_eyes] = answer(story, queues=[story.four_eyes])["queues"]
    assert Decision.objects.filter(queue=story.four_eyes, created_at__gte=story.since).count() == 6
    assert four_eyes["decisions"] == 3
    [general] = answer(story, queues=[story.general])["queues"]
    assert Decision.objects.filter(queue=story.general, action="escalate", item=story.items["G4"]).exists()
    assert general["decisions"] == 3  # G1, G2, G3: G4 counts in expert, where it was decided


def test_since_is_included_and_until_excluded(story):
    decided = Decision.objects.get(item=story.items["G1"], is_final=True).created_at
    [at_since] = answer(story, queues=[story.general], since=decided, until=decided + timedelta(seconds=1))[
        "queues"
    ]
    [at_until] = answer(story, queues=[story.general], since=decided - timedelta(hours=1), until=decided)[
        "queues"
    ]
    assert at_since["decisions"] == 1 and at_since["approval_rate"] == 1.0
    assert at_until["decisions"] == 0


def test_an_empty_window_has_no_rates_or_times_but_still_the_backlog(story):
    long_ago = story.now - timedelta(days=30)
    [general] = answer(story, queues=[story.general], since=long_ago, until=long_ago + timedelta(days=1))[
        "queues"
    ]
    assert general == {
        **expected.QUEUES["general"],
        "decisions": 0,
        "approval_rate": None,
        "edit_rate": None,
        "rejection_rate": None,
        "median_review_seconds": None,
        "p90_review_seconds": None,
        "sla_breaches": 0,
    }


def test_the_default_window_is_the_week_before_now(story):
    result = metrics_answer(queues=[story.general], now=story.now)
    assert (result["since"], result["until"]) == (story.now - timedelta(days=7), story.now)
    # G0 is eight days old; its three-day-old incident now counts.
    assert result["queues"][0]["decisions"] == 3
    assert result["incidents"] == expected.incidents(low=1, high=1)


def test_the_items_rows_say_what_their_final_decisions_say(story):
    """The per-queue figures read the item's row (metrics.selectors' docstring): every
    final decision has its item decided at that moment, in that queue, with the status
    the decision gave it; and no item is reviewed without a final decision."""
    outcome = {"approve": {"approved", "edited"}, "edit": {"edited"}, "reject": {"rejected"}}
    finals = Decision.objects.filter(is_final=True).select_related("item")
    assert finals.count() == ReviewItem.objects.filter(status__in=selectors.REVIEWED).count() == 8
    for decision in finals:
        item = decision.item
        assert (item.decided_at, item.queue_id) == (decision.created_at, decision.queue_id)
        assert item.status in outcome[decision.action]
    in_window = finals.filter(created_at__gte=story.since, created_at__lt=story.until)
    counted = {row["queue"]: row["decisions"] for row in answer(story)["queues"]}
    assert counted == {q.slug: in_window.filter(queue=q).count() for q in Queue.objects.all()}


def test_the_exact_percentiles_are_percentile_cont(story):
    finals = ReviewItem.objects.filter(status__in=selectors.REVIEWED, decided_at__gte=story.since).order_by()
    exact = selectors._percentiles(
        finals, key="queue_id", value=selectors._review_seconds(), fractions=[0.0, 0.5, 0.9, 1.0]
    )
    assert exact[story.general.pk] == {0.0: 900.0, 0.5: 1800.0, 0.9: 6120.0, 1.0: 7200.0}
    assert exact[story.four_eyes.pk] == {0.0: 1800.0, 0.5: 3000.0, 0.9: 4440.0, 1.0: 4800.0}
    assert exact[story.expert.pk] == dict.fromkeys([0.0, 0.5, 0.9, 1.0], 7200.0)
    if connection.vendor == "postgresql":
        rows = finals.values("queue_id").annotate(
            p0=PercentileCont(selectors._review_seconds(), 0.0),
            p90=PercentileCont(selectors._review_seconds(), 0.9),
        )
        for row in rows:
            assert (row["p0"], row["p90"]) == (exact[row["queue_id"]][0.0], exact[row["queue_id"]][0.9])
        # Several fractions from one sort: the same values, in the order asked.
        fractions = [0.9, 0.0, 0.5, 1.0]
        several = PercentilesCont(selectors._review_seconds(), fractions)
        rows = finals.values("queue_id").annotate(found=several)
        for row in rows:
            assert row["found"] == [exact[row["queue_id"]][fraction] for fraction in fractions]


def test_a_percentile_is_a_fraction():
    with pytest.raises(ValueError):
        PercentileCont("seconds_spent", 50)
    with pytest.raises(ValueError):
        PercentilesCont("seconds_spent", [0.5, 50])
    with pytest.raises(ValueError):
        PercentilesCont("seconds_spent", [])


def test_prometheus_figures_are_the_ones_worked_out_by_hand(story):
    figures = prometheus_figures(now=story.now)
    by_slug = {queue.slug: queue for queue in figures.queues}
    assert list(by_slug) == ["expert", "four-eyes", "general"]
    general = by_slug["general"]
    assert (general.pending, general.in_review, general.at_risk, general.past_sla) == (1, 1, 1, 1)
    assert general.oldest_pending_seconds == 7200
    assert general.decisions == {"approve": 2, "edit": 1, "reject": 1, "escalate": 1}
    assert general.review_quantiles == {0.5: 1800.0, 0.9: 6120.0}
    assert (general.review_seconds_sum, general.review_count) == (13500.0, 4)
    four_eyes = by_slug["four-eyes"]
    assert four_eyes.decisions == {"approve": 4, "edit": 1, "reject": 1, "escalate": 0}
    assert four_eyes.review_quantiles == {0.5: 3000.0, 0.9: 4440.0}
    assert (four_eyes.review_seconds_sum, four_eyes.review_count) == (9600.0, 3)
    assert four_eyes.outbox[("execute", "pending")] == 1
    expert = by_slug["expert"]
    assert (expert.pending, expert.oldest_pending_seconds, expert.review_count) == (0, 0, 1)
    assert expert.outbox == {
        ("callback", "pending"): 0,
        ("callback", "failed"): 0,
        ("execute", "pending"): 0,
        ("execute", "failed"): 1,
    }
    assert figures.unqueued_outbox[("execute", "pending")] == 1


def test_prometheus_quantiles_are_empty_for_a_queue_without_recent_decisions(story):
    figures = prometheus_figures(now=story.now + timedelta(days=8))
    general = next(queue for queue in figures.queues if queue.slug == "general")
    assert general.review_quantiles == {0.5: None, 0.9: None}
    assert general.review_count == 4  # all time
