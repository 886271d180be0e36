"""The gate engine: operators, precedence, shadow rules, what fired, sampling, robustness and the cache."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from django.core.exceptions import ValidationError

from policies import engine
from policies.engine import GateDecision, evaluate, evaluate_rules
from policies.models import GateCondition, GateRule, validate_condition_value
from reviews.safejson import check_json_shape
from tests.factories import (
    GateConditionFactory,
    GateRuleFactory,
    QueueFactory,
    action_submission,
    submission,
)

pytestmark = pytest.mark.django_db

ITEM = uuid.UUID("00000000-0000-4000-8000-000000000001")


def gate(body, integration_slug: str = "assistant") -> GateDecision:
    return evaluate(body, item_id=ITEM, integration_slug=integration_slug)


def rule_with(field: str, op: str, value=None, **rule_fields) -> GateRule:
    rule = GateRuleFactory(outcome=rule_fields.pop("outcome", "block"), **rule_fields)
    GateConditionFactory(rule=rule, field=field, op=op, value=value)
    return rule


def rule_with_all(conditions: list[tuple], **rule_fields) -> GateRule:
    """A rule with several (field, op, value) conditions, in that order."""
    rule = GateRuleFactory(outcome=rule_fields.pop("outcome", "review"), **rule_fields)
    for field, op, value in conditions:
        GateConditionFactory(rule=rule, field=field, op=op, value=value)
    return rule


def storable(value) -> None:
    """What storage demands of a snapshot: strict JSON (no NaN) within the stored-JSON limits."""
    json.dumps(value, allow_nan=False)
    check_json_shape(value)


def condition_holds(body, field: str, op: str, value=None, integration_slug: str = "assistant") -> bool:
    """Evaluate one condition on one submission through an unsaved draft rule."""
    draft = GateRule(name="draft", outcome="block", risk_level="high")
    draft.conditions_list = [GateCondition(field=field, op=op, value=value)]
    decision = evaluate_rules(body, item_id=ITEM, integration_slug=integration_slug, rules=[draft])
    return decision.outcome == "block"


# --- Operators ----------------------------------------------------------------------------

REFUND = action_submission(
    signals={
        "confidence": 0.62,
        "category": "finance",
        "filter_flags": ["pii", "toxicity"],
        "escalate": True,
    },
    metadata={"user_id": "u-77", "tier": 3, "tags": [{"k": "v"}]},
)


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        # eq / ne
        ("action.type", "eq", "payment.refund", True),
        ("action.type", "eq", "payment.charge", False),
        ("action.params.amount", "eq", 420, True),  # int and float compare
        ("action.params.amount", "eq", "420.0", False),  # string vs number
        ("signals.escalate", "eq", True, True),
        ("signals.escalate", "eq", 1, False),  # bool is not a number
        ("metadata.tier", "eq", True, False),
        ("signals.filter_flags", "eq", ["pii", "toxicity"], True),
        ("signals.filter_flags", "eq", "pii", False),  # list actual
        ("metadata.tags", "eq", [{"k": "v"}], True),
        ("action.type", "ne", "payment.charge", True),
        ("action.type", "ne", "payment.refund", False),
        ("action.params.amount", "ne", "420", False),  # mismatch is false, not true
        ("signals.escalate", "ne", 1, False),
        ("signals.missing", "ne", "x", False),
        # ordering
        ("signals.confidence", "lt", 0.7, True),
        ("signals.confidence", "lt", 0.62, False),
        ("signals.confidence", "lte", 0.62, True),
        ("signals.confidence", "lte", 0.5, False),
        ("action.params.amount", "gt", 100, True),
        ("action.params.amount", "gt", 420, False),
        ("action.params.amount", "gte", 420, True),
        ("action.params.amount", "gte", 420.5, False),
        ("action.params.amount", "gt", "100", False),  # number vs string
        ("action.params.currency", "gt", "CHF", True),  # strings order
        ("action.params.currency", "lt", 5, False),
        ("signals.escalate", "gte", 0, False),  # bool vs number
        ("signals.filter_flags", "gt", 0, False),
        # in / not_in
        ("signals.category", "in", ["finance", "legal"], True),
        ("signals.category", "in", ["legal"], False),
        ("metadata.tier", "in", [1, 2, 3.0], True),
        ("metadata.tier", "in", ["3"], False),
        ("signals.escalate", "in", [1], False),
        ("signals.filter_flags", "in", [["pii", "toxicity"]], False),  # list actual is a mismatch
        ("signals.category", "not_in", ["legal", "hr"], True),
        ("signals.category", "not_in", ["finance"], False),
        ("metadata.tier", "not_in", ["1", "2"], False),  # no member of the actual's type
        ("signals.filter_flags", "not_in", ["x"], False),
        ("signals.missing", "not_in", ["x"], False),
        ("signals.category", "in", "finance", False),  # value not a list
        # contains / contains_any
        ("signals.filter_flags", "contains", "pii", True),
        ("signals.filter_flags", "contains", "spam", False),
        ("output.text", "contains", "420.00 EUR", True),
        ("output.text", "contains", "USD", False),
        ("action.params.amount", "contains", "4", False),
        ("output.text", "contains", 420, False),
        ("signals.filter_flags", "contains_any", ["spam", "pii"], True),
        ("signals.filter_flags", "contains_any", ["spam"], False),
        ("output.text", "contains_any", ["USD", "EUR"], True),
        ("output.text", "contains_any", ["USD", 420], False),
        ("metadata.tier", "contains_any", [3], False),
        # exists / not_exists
        ("metadata.user_id", "exists", None, True),
        ("metadata.other", "exists", None, False),
        ("metadata.other", "not_exists", None, True),
        ("metadata.user_id", "not_exists", None, False),
        # matches
        ("output.text", "matches", r"refund \d+\.\d{2}", True),
        ("output.text", "matches", r"^EUR", False),
        ("action.params.amount", "matches", r"4", False),  # not a string
        ("output.text", "matches", r"(a)\1", False),  # RE2 refuses it: false, never raises
        ("output.text", "matches", "x" * 501, False),  # longer than MAX_PATTERN_LENGTH
        # paths
        ("metadata.tags.0.k", "eq", "v", True),  # a numeric segment indexes a list
        ("metadata.tags.1.k", "eq", "v", False),
        ("signals.filter_flags.1", "eq", "toxicity", True),
        ("action.type.deeper", "exists", None, False),  # below a string
        ("kind", "eq", "action", True),
        ("external_id", "eq", "conv-1/turn-1", True),
        ("integration", "eq", "assistant", True),
        ("integration", "in", ["other-bot"], False),
    ],
)
def test_each_operator_follows_its_semantics(field, op, value, expected):
    assert condition_holds(REFUND, field, op, value) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "lte", "gt", "gte", "contains", "matches"])
def test_a_missing_field_makes_every_comparing_operator_false(op):
    assert condition_holds(REFUND, "metadata.absent.deeper", op, "x") is False
    assert condition_holds(REFUND, "metadata.absent", op, 1) is False


@pytest.mark.parametrize("op", ["in", "not_in", "contains_any"])
def test_a_missing_field_makes_every_list_operator_false(op):
    assert condition_holds(REFUND, "metadata.absent", op, ["x", 1]) is False


def test_a_null_field_exists_not_but_not_exists_holds():
    body = submission(metadata={"note": None})
    assert condition_holds(body, "metadata.note", "exists") is False
    assert condition_holds(body, "metadata.note", "not_exists") is True


def test_integration_field_is_the_submitting_integration_not_the_body():
    body = submission(integration="spoofed")
    assert condition_holds(body, "integration", "eq", "real-bot", integration_slug="real-bot") is True
    assert condition_holds(body, "integration", "eq", "spoofed", integration_slug="real-bot") is False


def test_matches_searches_only_the_first_100_000_characters():
    body = submission(output={"text": "a" * 100_000 + "needle"})
    assert condition_holds(body, "output.text", "matches", "needle") is False
    assert condition_holds(body, "output.text", "matches", "^a+") is True


def test_matches_is_not_evaded_by_a_lone_surrogate():
    body = submission(output={"text": "\ud800 wire the money now"})
    assert condition_holds(body, "output.text", "matches", "wire the money") is True


def test_nested_backtracking_pattern_returns_false_on_a_long_input():
    body = submission(output={"text": "a" * 50_000})
    assert condition_holds(body, "output.text", "matches", "(a+)+b") is False


# --- Rules: precedence, queues, risk, shadow, match modes -----------------------------------


def test_no_rule_matched_auto_approves():
    decision = gate(submission())
    assert decision == GateDecision(outcome="auto_approve", status="auto_approved")


def test_a_rule_without_conditions_matches_everything():
    rule = GateRuleFactory(outcome="review")
    decision = gate(submission())
    assert (decision.outcome, decision.status, decision.queue_id) == ("review", "pending", rule.queue_id)


def test_disabled_rules_are_ignored():
    GateRuleFactory(outcome="block", enabled=False)
    assert gate(submission()).outcome == "auto_approve"


@pytest.mark.parametrize(
    ("outcomes", "winner", "status"),
    [
        (["auto_approve", "spot_check", "review", "block"], "block", "blocked"),
        (["auto_approve", "spot_check", "review"], "review", "pending"),
        (["auto_approve", "spot_check"], "spot_check", "auto_approved"),
        (["auto_approve"], "auto_approve", "auto_approved"),
    ],
)
def test_block_beats_review_beats_spot_check_beats_auto_approve(outcomes, winner, status):
    # The weaker outcomes get the lower priorities, so order alone cannot explain the winner.
    for priority, outcome in enumerate(outcomes):
        GateRuleFactory(outcome=outcome, priority=priority)
    decision = gate(submission())
    assert (decision.outcome, decision.status) == (winner, status)
    assert [r["outcome"] for r in decision.matched_rules] == outcomes


def test_the_lowest_priority_review_rule_picks_the_queue():
    GateRuleFactory(name="late", outcome="review", priority=50, queue=QueueFactory(slug="general"))
    GateRuleFactory(name="b-early", outcome="review", priority=10, queue=QueueFactory(slug="finance"))
    GateRuleFactory(name="a-early", outcome="review", priority=10, queue=QueueFactory(slug="legal"))
    GateRuleFactory(name="spot", outcome="spot_check", priority=1, queue=QueueFactory(slug="audit"))
    decision = gate(submission())
    assert decision.queue_slug == "legal"  # tie on priority broken by name
    assert decision.spot_check_queue_id is None
    assert [r["name"] for r in decision.matched_rules] == ["spot", "a-early", "b-early", "late"]


def test_spot_check_passes_the_item_and_names_the_spot_check_queue():
    GateRuleFactory(outcome="spot_check", priority=20, queue=QueueFactory(slug="second"))
    rule = GateRuleFactory(outcome="spot_check", priority=10, queue=QueueFactory(slug="audit"))
    decision = gate(submission())
    assert (decision.outcome, decision.status) == ("spot_check", "auto_approved")
    assert (decision.spot_check_queue_id, decision.spot_check_queue_slug) == (rule.queue_id, "audit")
    assert (decision.queue_id, decision.queue_slug) == (None, None)


def test_a_block_has_no_queue_and_takes_the_highest_risk_of_the_matched_rules():
    GateRuleFactory(outcome="review", risk_level="high")
    GateRuleFactory(outcome="block", risk_level="low", queue=None)
    decision = gate(submission())
    assert (decision.outcome, decision.queue_id, decision.risk_level) == ("block", None, "high")


def test_shadow_rules_are_recorded_but_never_change_the_outcome():
    GateRuleFactory(name="watch", outcome="block", mode="shadow", risk_level="high", queue=None)
    live = GateRuleFactory(name="live", outcome="review", risk_level="low")
    decision = gate(submission())
    assert (decision.outcome, decision.queue_id, decision.risk_level) == ("review", live.queue_id, "low")
    assert [r["name"] for r in decision.shadow_matches] == ["watch"]
    assert [r["name"] for r in decision.matched_rules] == ["live"]


def test_a_shadow_match_alone_still_auto_approves():
    GateRuleFactory(outcome="block", mode="shadow", queue=None)
    decision = gate(submission())
    assert (decision.outcome, decision.risk_level, decision.matched_rules) == ("auto_approve", "", [])
    assert len(decision.shadow_matches) == 1


def test_all_needs_every_condition_and_any_needs_one():
    for match in ("all", "any"):
        rule = GateRuleFactory(name=f"rule-{match}", match=match, outcome="review")
        GateConditionFactory(rule=rule, field="signals.category", op="eq", value="general")
        GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.5)
    decision = gate(submission())  # confidence 0.95: only the first condition holds
    assert [r["name"] for r in decision.matched_rules] == ["rule-any"]


def test_snapshots_carry_id_name_version_outcome_and_queue():
    rule = rule_with("kind", "eq", "output", outcome="review", risk_level="high", description="why")
    (snapshot,) = gate(submission()).matched_rules
    assert snapshot == {
        "id": rule.pk,
        "name": rule.name,
        "version": rule.version,
        "outcome": "review",
        "queue": rule.queue.slug,
        "risk_level": "high",
        "description": "why",
        "fired": [{"field": "kind", "op": "eq", "value": "output", "actual": "output", "present": True}],
    }


def test_changing_a_returned_snapshot_does_not_change_the_cached_rule():
    rule_with_all([("signals.filter_flags", "contains_any", ["pii", "spam"])], name="kept")
    body = submission(signals={"filter_flags": ["pii", "toxicity"]})
    (snapshot,) = gate(body).matched_rules
    expected = copy.deepcopy(snapshot)
    snapshot["name"] = "tampered"
    snapshot["fired"][0]["value"].append("added")
    snapshot["fired"][0]["actual"].clear()
    snapshot["fired"].append({"field": "added"})

    assert gate(body).matched_rules == [expected]
    # The cached rule keeps its own snapshot, which no evaluation writes what fired into.
    (cached,) = engine._cache.rules
    assert "fired" not in cached.snapshot
    assert cached.conditions[0].value == ["pii", "spam"]


# --- What fired ---------------------------------------------------------------------------


def test_under_all_every_condition_is_recorded_with_the_value_it_fired_on():
    rule_with_all(
        [
            ("action.params.amount", "gt", 100),
            ("signals.category", "in", ["finance", "legal"]),
            ("output.text", "matches", r"refund \d+"),
            ("integration", "eq", "assistant"),
        ]
    )
    (snapshot,) = gate(REFUND).matched_rules
    assert snapshot["fired"] == [
        {"field": "action.params.amount", "op": "gt", "value": 100, "actual": 420.0, "present": True},
        {
            "field": "signals.category",
            "op": "in",
            "value": ["finance", "legal"],
            "actual": "finance",
            "present": True,
        },
        {
            "field": "output.text",
            "op": "matches",
            "value": r"refund \d+",  # the pattern as written, not the compiled RE2 object
            "actual": "I will refund 420.00 EUR.",
            "present": True,
        },
        {"field": "integration", "op": "eq", "value": "assistant", "actual": "assistant", "present": True},
    ]


def test_under_any_only_the_conditions_that_held_are_recorded():
    # The item from the issue: confidence 0.7 looked fine, rubric_score 1 is what gated it.
    rule_with_all(
        [
            ("signals.rubric_score", "lte", 2),
            ("signals.confidence", "lt", 0.5),
            ("signals.category", "eq", "finance"),  # after the first that held: still recorded
        ],
        match="any",
    )
    body = submission(signals={"confidence": 0.7, "rubric_score": 1, "category": "finance"})
    (snapshot,) = gate(body).matched_rules
    assert snapshot["fired"] == [
        {"field": "signals.rubric_score", "op": "lte", "value": 2, "actual": 1, "present": True},
        {"field": "signals.category", "op": "eq", "value": "finance", "actual": "finance", "present": True},
    ]


def test_a_rule_without_conditions_records_that_nothing_fired():
    GateRuleFactory(outcome="review")
    assert gate(submission()).matched_rules[0]["fired"] == []


def test_a_missing_field_fires_not_exists_with_present_false_and_a_null_one_with_present_true():
    rule_with_all([("metadata.reviewed_by", "not_exists", None), ("metadata.note", "not_exists", None)])
    (snapshot,) = gate(submission(metadata={"note": None})).matched_rules
    assert snapshot["fired"] == [
        {
            "field": "metadata.reviewed_by",
            "op": "not_exists",
            "value": None,
            "actual": None,
            "present": False,
        },
        {"field": "metadata.note", "op": "not_exists", "value": None, "actual": None, "present": True},
    ]


def test_shadow_matches_record_what_fired_too():
    rule_with_all([("signals.confidence", "gte", 0.9)], outcome="block", mode="shadow", queue=None)
    decision = gate(submission())
    assert decision.matched_rules == []
    assert decision.shadow_matches[0]["fired"] == [
        {"field": "signals.confidence", "op": "gte", "value": 0.9, "actual": 0.95, "present": True}
    ]


def test_draft_rules_record_what_fired_too():
    draft = GateRule(name="draft", outcome="block")
    draft.conditions_list = [{"field": "kind", "op": "eq", "value": "output"}]
    decision = evaluate_rules(submission(), item_id=ITEM, integration_slug="a", rules=[draft])
    assert decision.matched_rules[0]["fired"][0]["actual"] == "output"


def test_long_submitted_values_are_shortened_in_the_snapshot():
    rule_with_all(
        [
            ("output.text", "exists", None),
            ("signals.filter_flags", "contains", "pii"),
            ("metadata", "exists", None),
            ("context", "exists", None),
            ("signals.category", "in", [f"category-{n}" for n in range(50)]),
        ]
    )
    body = submission(
        output={"text": "x" * (1 << 20)},  # 1 MiB
        signals={"filter_flags": ["pii", *(f"flag-{n}" for n in range(999))], "category": "category-0"},
        metadata={f"key-{n}": "v" * 5_000 for n in range(500)},
        context={"a": {"b": {"c": ["deep"]}}, "list": [[1, 2], [3]]},
    )
    (snapshot,) = gate(body).matched_rules
    text, flags, metadata, context, category = (entry["actual"] for entry in snapshot["fired"])

    assert text == "x" * engine.MAX_SHOWN_TEXT + "…"  # still a string, and the cut is marked
    assert flags == ["pii", *(f"flag-{n}" for n in range(9)), "… 990 more"]
    assert list(metadata) == [*(f"key-{n}" for n in range(10)), "…"]
    assert metadata["key-0"] == "v" * engine.MAX_SHOWN_TEXT + "…"
    assert metadata["…"] == "490 more keys"
    assert context == {"a": {"b": "{… 1 key}"}, "list": ["[… 2 items]", "[… 1 item]"]}
    assert category == "category-0"
    assert snapshot["fired"][4]["value"][-1] == "… 40 more"  # the rule's own long list is cut too
    # A 1 MiB submission costs a few kilobytes of snapshot, whatever its shape.
    assert len(json.dumps(snapshot)) < 10_000
    storable(snapshot)


def test_values_storage_refuses_are_made_storable_in_the_snapshot():
    rule_with_all(
        [
            ("output.text", "exists", None),
            ("metadata.surrogate", "exists", None),
            ("metadata.ratio", "exists", None),
            ("metadata.keys", "exists", None),
        ]
    )
    body = submission(
        output={"text": "a\x00b"},
        metadata={"surrogate": "\ud800 and \ud83d\ude00", "ratio": float("nan"), "keys": {1: "one"}},
    )
    (snapshot,) = gate(body).matched_rules
    assert [entry["actual"] for entry in snapshot["fired"]] == [
        "a\ufffdb",
        "\ufffd and \U0001f600",  # a lone surrogate replaced, a pair joined
        "nan",
        {"1": "one"},
    ]
    storable(snapshot)


# --- Sampling ---------------------------------------------------------------------------


def test_sample_rate_one_always_applies_and_zero_never():
    GateRuleFactory(name="always", outcome="review", sample_rate=1.0)
    GateRuleFactory(name="never", outcome="block", sample_rate=0.0, queue=None)
    for _ in range(20):
        decision = evaluate(submission(), item_id=uuid.uuid4(), integration_slug="assistant")
        assert [r["name"] for r in decision.matched_rules] == ["always"]


def test_sampling_is_deterministic_for_an_item_whether_its_id_is_a_uuid_or_a_string():
    GateRuleFactory(outcome="review", sample_rate=0.5)
    for item_id in (uuid.uuid4() for _ in range(20)):
        first = evaluate(submission(), item_id=item_id, integration_slug="assistant")
        again = evaluate(submission(), item_id=str(item_id), integration_slug="assistant")
        assert first.outcome == again.outcome


def test_a_fractional_sample_rate_applies_to_about_that_fraction_of_items():
    rule = GateRuleFactory(outcome="review", sample_rate=0.5)
    rule.conditions_list = []
    applied = sum(
        evaluate_rules(submission(), item_id=uuid.uuid4(), integration_slug="a", rules=[rule]).outcome
        == "review"
        for _ in range(2000)
    )
    assert 800 < applied < 1200


def test_sampling_applies_to_shadow_rules_too():
    GateRuleFactory(outcome="block", mode="shadow", sample_rate=0.0, queue=None)
    assert gate(submission()).shadow_matches == []


# --- Robustness ---------------------------------------------------------------------------


def deep(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"confidence": value}
    return value


GARBAGE = [
    {},
    None,
    [],
    "a string",
    42,
    {"signals": "x"},
    {"signals": None},
    {"signals": {"confidence": "high"}},
    {"signals": {"confidence": True}},
    {"signals": {"confidence": [0.1]}},
    {"signals": {"category": {"nested": 1}, "filter_flags": "pii"}},
    {"action": []},
    {"action": {"type": 5, "params": [1, 2, 3]}},
    {"action": {"params": {"amount": float("nan")}}},
    {"action": {"params": {"amount": float("inf")}}},
    {"metadata": {"tags": [[[[]]]]}},
    {"kind": None, "output": {"text": None}},
    {"output": {"text": "\udcff\ud800"}},
    {"output": {"text": "x" * 1_000_000}},
    {"output": ["text"]},
    {"signals": deep(5_000), "metadata": deep(5_000)},
    {1: "non-string key", "signals": {0: 1}},
]


@pytest.mark.parametrize("body", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_submissions_never_raise(body):
    conditions = [
        ("signals.confidence", "lt", 0.7),
        ("signals.confidence", "gte", "a"),
        ("signals.confidence.confidence.confidence", "exists", None),
        ("signals.category", "in", ["finance", 1, None, True]),
        ("signals.category", "not_in", ["finance"]),
        ("signals.filter_flags", "contains", "pii"),
        ("signals.filter_flags", "contains_any", ["pii", 1]),
        ("metadata.tags.0.0", "eq", [[]]),
        ("action.type", "ne", "payment.refund"),
        ("action.params.amount", "gt", 100),
        ("action.params.1", "eq", 2),
        ("output.text", "matches", "(a+)+b|x{3}"),
        ("output.text", "not_exists", None),
        ("kind", "eq", "output"),
    ]
    for op_index, (field, op, value) in enumerate(conditions):
        rule = GateRuleFactory(name=f"garbage-{op_index}", match="any", outcome="review")
        GateConditionFactory(rule=rule, field=field, op=op, value=value)
    decision = gate(body)
    assert decision.outcome in {"review", "auto_approve"}
    storable([decision.matched_rules, decision.shadow_matches])


def test_a_one_megabyte_string_is_matched_only_within_the_bound():
    rule_with("output.text", "matches", "x{3}y", outcome="review")
    assert gate(submission(output={"text": "x" * 1_000_000 + "y"})).outcome == "auto_approve"
    assert gate(submission(output={"text": "x" * 1_000 + "y"})).outcome == "review"


def test_a_draft_with_an_unknown_operator_or_odd_values_never_matches():
    draft = GateRule(name="draft", outcome="block")
    draft.conditions_list = [
        {"field": "kind", "op": "__import__", "value": "os"},
        {"field": "output.text", "op": "matches", "value": ["not", "a", "pattern"]},
    ]
    draft.match = "any"
    decision = evaluate_rules(submission(), item_id=ITEM, integration_slug="a", rules=[draft])
    assert decision.outcome == "auto_approve"


# --- The rule cache -----------------------------------------------------------------------


def test_changing_a_condition_value_takes_effect_on_the_next_evaluation():
    rule = rule_with("signals.confidence", "lt", 0.5, outcome="review")
    assert gate(submission()).outcome == "auto_approve"
    condition = rule.conditions.get()
    condition.value = 0.99
    condition.save()
    assert gate(submission()).outcome == "review"


def test_disabling_a_rule_takes_effect_on_the_next_evaluation():
    rule = GateRuleFactory(outcome="block", queue=None)
    assert gate(submission()).outcome == "block"
    rule.enabled = False
    rule.save()
    assert gate(submission()).outcome == "auto_approve"


def test_deleting_a_condition_takes_effect_on_the_next_evaluation():
    rule = rule_with("signals.confidence", "lt", 0.5, outcome="review")
    assert gate(submission()).outcome == "auto_approve"
    rule.conditions.all().delete()
    assert gate(submission()).outcome == "review"


def test_renaming_a_rules_queue_shows_in_the_next_decision():
    rule = GateRuleFactory(outcome="review", queue=QueueFactory(slug="old"))
    assert gate(submission()).queue_slug == "old"
    rule.queue.slug = "new"
    rule.queue.save()
    assert gate(submission()).queue_slug == "new"


def test_a_cold_cache_loads_the_rules_in_three_queries(django_assert_num_queries):
    rule_with("signals.confidence", "lt", 0.99, outcome="review")
    GateRuleFactory(outcome="block", queue=None, enabled=False)
    with django_assert_num_queries(3):  # revision, rules with queues, conditions
        assert gate(submission()).outcome == "review"


def test_a_warm_cache_costs_one_query_per_evaluation(django_assert_num_queries):
    rule_with("signals.confidence", "lt", 0.99, outcome="review")
    gate(submission())
    with django_assert_num_queries(1):
        assert gate(submission()).outcome == "review"
    with django_assert_num_queries(1):
        assert gate(action_submission()).outcome == "review"


def test_between_refreshes_the_gate_costs_no_query_and_edits_wait_for_the_next(
    settings, django_assert_num_queries, monkeypatch
):
    from policies import engine

    settings.HITL_RULES_REFRESH_SECONDS = 60
    clock = [1000.0]
    monkeypatch.setattr(engine.time, "monotonic", lambda: clock[0])
    rule = rule_with("signals.confidence", "lt", 0.99, outcome="review")
    engine._cache = None
    gate(submission())
    rule.enabled = False
    rule.save()
    with django_assert_num_queries(0):
        assert gate(submission()).outcome == "review"  # the edit is not seen yet
    clock[0] += 60
    assert gate(submission()).outcome == "auto_approve"  # seen at the next refresh


# --- Validation at edit time --------------------------------------------------------------


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", "[unclosed"])
def test_patterns_re2_cannot_run_are_refused_when_the_rule_is_edited(pattern):
    with pytest.raises(ValidationError, match="RE2"):
        validate_condition_value("matches", pattern)


def test_an_re2_pattern_is_accepted_when_the_rule_is_edited():
    validate_condition_value("matches", r"(?i)\brefund\b \d+")


def test_a_cache_stamped_ahead_of_the_clock_is_refreshed(settings):
    """A stamp from another clock (a test's fake one, say) never freezes the rules."""
    from policies import engine

    settings.HITL_RULES_REFRESH_SECONDS = 60
    gate(submission())
    engine._cache = engine._Cached(engine._cache.revision, [], engine.time.monotonic() + 3600)
    rule_with("signals.confidence", "lt", 0.99, outcome="review")
    assert gate(submission()).outcome == "review"
