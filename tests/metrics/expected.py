"""The story's figures (tests/metrics/conftest.py), worked out by hand.

Window: the day before NOW. T = NOW-10h.

Final decisions in the window, by the queue they were made in:
    general    G1 approved T+30m  (review 30m = 1800 s, due T+60m: on time)
               G2 edited   T+120m (7200 s, due T+60m: late)
               G3 rejected T+75m  (900 s, due T+120m: on time)
               (G4's escalation is not final; G0 is outside the window)
    four-eyes  F1 approved T+80m  (second approval; 4800 s, due T+60m: late)
               F2 edited   T+50m  (an edit approved by the second reviewer; 3000 s)
               F3 rejected T+150m (1800 s, due T+180m)
    expert     G4 approved T+210m (entered expert at T+90m: 7200 s, due T+150m: late)

Percentiles (percentile_cont: position p(n-1) in the sorted values, interpolated):
    general    [900, 1800, 7200]   median 1800, p90 = 1800 + 0.8 * 5400 = 6120
    four-eyes  [1800, 3000, 4800]  median 3000, p90 = 3000 + 0.8 * 1800 = 4440
    expert     [7200]              7200 and 7200

SLA breaches: general G2 (late) + G5 (expired at T+240m) = 2; four-eyes F1 = 1; expert G4 = 1.
Backlog now: general G6 (pending) and G7 (in review, entered NOW-2h: 7200 s).

Reviewers, every decision in the window (seconds_spent: claim to decision):
    reviewer        G1 approve (600), G3 reject, G4 escalate (300), F1 approve (600),
                    F2 edit, F3 approve -> 6, median of [300, 600, 600] = 600
    other_reviewer  G2 edit (1200), G4 approve in expert (1800), F1 approve (600),
                    F2 approve, F3 reject -> 5, median of [600, 1200, 1800] = 1200
                    (without expert: 4, median of [600, 1200] = 900)

Incidents in the window: high G1, medium F2, critical G4 (expert), low A1 (no queue);
G0's low one is three days old.
"""

from __future__ import annotations

THIRD = 1 / 3

QUEUES = {
    "expert": {
        "queue": "expert",
        "decisions": 1,
        "approval_rate": 1.0,
        "edit_rate": 0.0,
        "rejection_rate": 0.0,
        "median_review_seconds": 7200.0,
        "p90_review_seconds": 7200.0,
        "backlog": 0,
        "oldest_pending_seconds": None,
        "sla_breaches": 1,
    },
    "four-eyes": {
        "queue": "four-eyes",
        "decisions": 3,
        "approval_rate": THIRD,
        "edit_rate": THIRD,
        "rejection_rate": THIRD,
        "median_review_seconds": 3000.0,
        "p90_review_seconds": 4440.0,
        "backlog": 0,
        "oldest_pending_seconds": None,
        "sla_breaches": 1,
    },
    "general": {
        "queue": "general",
        "decisions": 3,
        "approval_rate": THIRD,
        "edit_rate": THIRD,
        "rejection_rate": THIRD,
        "median_review_seconds": 1800.0,
        "p90_review_seconds": 6120.0,
        "backlog": 2,
        "oldest_pending_seconds": 7200,
        "sla_breaches": 2,
    },
}

REVIEWERS_ALL = [
    {"reviewer": "reviewer", "decisions": 6, "median_review_seconds": 600.0},
    {"reviewer": "other_reviewer", "decisions": 5, "median_review_seconds": 1200.0},
]
REVIEWERS_WITHOUT_EXPERT = [
    {"reviewer": "reviewer", "decisions": 6, "median_review_seconds": 600.0},
    {"reviewer": "other_reviewer", "decisions": 4, "median_review_seconds": 900.0},
]


def incidents(low=0, medium=0, high=0, critical=0) -> dict:
    by_severity = {"low": low, "medium": medium, "high": high, "critical": critical}
    return {"total": sum(by_severity.values()), "by_severity": by_severity}


INCIDENTS_ALL = incidents(low=1, medium=1, high=1, critical=1)  # the queue-less A1 included
INCIDENTS_OF_REVIEWER = incidents(medium=1, high=1)  # general and four-eyes

# GET /metrics at NOW. Decisions over all time (G0 included); review-time quantiles over
# the last 7 days (G0, 8 days old, left out), sum and count over all time (G0: 3600 s).
PROMETHEUS = {
    'hitl_queue_pending{queue="general"}': 1,
    'hitl_queue_in_review{queue="general"}': 1,
    'hitl_queue_oldest_pending_seconds{queue="general"}': 7200,
    'hitl_queue_at_risk{queue="general"}': 1,  # G6: half its SLA used at NOW
    'hitl_queue_past_sla{queue="general"}': 1,  # G7: due NOW-1h
    'hitl_queue_pending{queue="four-eyes"}': 0,
    'hitl_queue_oldest_pending_seconds{queue="expert"}': 0,
    'hitl_decisions_total{queue="general",action="approve"}': 2,  # G0, G1
    'hitl_decisions_total{queue="general",action="edit"}': 1,
    'hitl_decisions_total{queue="general",action="reject"}': 1,
    'hitl_decisions_total{queue="general",action="escalate"}': 1,  # G4
    'hitl_decisions_total{queue="four-eyes",action="approve"}': 4,  # F1 twice, F2 second, F3 first
    'hitl_decisions_total{queue="four-eyes",action="edit"}': 1,
    'hitl_decisions_total{queue="four-eyes",action="reject"}': 1,
    'hitl_decisions_total{queue="four-eyes",action="escalate"}': 0,
    'hitl_decisions_total{queue="expert",action="approve"}': 1,
    'hitl_review_seconds{queue="general",quantile="0.5"}': 1800,
    'hitl_review_seconds{queue="general",quantile="0.9"}': 6120,
    'hitl_review_seconds_sum{queue="general"}': 13500,  # 900 + 1800 + 7200 + 3600
    'hitl_review_seconds_count{queue="general"}': 4,
    'hitl_review_seconds{queue="four-eyes",quantile="0.5"}': 3000,
    'hitl_review_seconds{queue="four-eyes",quantile="0.9"}': 4440,
    'hitl_review_seconds_sum{queue="four-eyes"}': 9600,
    'hitl_review_seconds_count{queue="four-eyes"}': 3,
    'hitl_review_seconds{queue="expert",quantile="0.5"}': 7200,
    'hitl_review_seconds_sum{queue="expert"}': 7200,
    'hitl_review_seconds_count{queue="expert"}': 1,
    'hitl_outbox_deliveries{queue="four-eyes",kind="execute",status="pending"}': 1,  # F1
    'hitl_outbox_deliveries{queue="four-eyes",kind="execute",status="failed"}': 0,
    'hitl_outbox_deliveries{queue="expert",kind="execute",status="failed"}': 1,  # G4
    'hitl_outbox_deliveries{queue="",kind="execute",status="pending"}': 1,  # A1
    'hitl_outbox_deliveries{queue="general",kind="callback",status="pending"}': 0,
}
