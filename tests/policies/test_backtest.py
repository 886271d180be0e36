"""Backtesting a gate rule over stored items: the function, the command and the admin page.

The items are submitted through `submit_item` under these rules (priority first):

    5   Blocked words       signals.filter_flags contains "self_harm"  -> block
    10  Refunds             action.type eq "payment.refund"            -> review payments
    20  Legal (disabled)    signals.category eq "legal"                -> review legal
    50  Low confidence      signals.confidence lt 0.7                  -> review general
    60  Billing spot check  signals.category eq "billing"              -> spot_check general
    70  Rubric watch        signals.rubric_score lt 3 (shadow)         -> block

and get these outcomes (two billing items leave a spot-check copy each, which the
backtest skips):

    sure1 sure2     confidence 0.95                       pass
    mid1 mid2       confidence 0.75                       pass
    low1 low2       confidence 0.65                       review general
    legal_sure      legal, confidence 0.95                pass
    legal_low       legal, confidence 0.65                review general
    refund          refund of 420                         review payments
    big_refund      refund of 5000                        review payments
    harm            filter flag self_harm                 block
    billing_sure    billing, confidence 0.95              spot_check general
    billing_mid     billing, confidence 0.75              spot_check general
    rubric          rubric score 2                        pass (the shadow rule matched)
    old_mid         confidence 0.75, submitted 40 days ago: pass
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from policies.backtest import BacktestError, Placement, backtest, read_draft, submission_of
from policies.engine import apply_rules, compile_rule, load_rules
from policies.models import GateRule
from reviews import services
from reviews.models import ReviewItem
from tests.factories import GateConditionFactory, GateRuleFactory, QueueFactory, action_submission, submission

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def rule_with(name, field, op, value, **fields) -> GateRule:
    rule = GateRuleFactory(name=name, **fields)
    GateConditionFactory(rule=rule, field=field, op=op, value=value)
    return rule


@pytest.fixture
def rules(queue):
    payments = QueueFactory(slug="payments", name="Payments")
    legal = QueueFactory(slug="legal", name="Legal")
    return {
        "blocked": rule_with(
            "Blocked words",
            "signals.filter_flags",
            "contains",
            "self_harm",
            priority=5,
            outcome="block",
            queue=None,
        ),
        "refunds": rule_with("Refunds", "action.type", "eq", "payment.refund", priority=10, queue=payments),
        "legal": rule_with(
            "Legal", "signals.category", "eq", "legal", priority=20, queue=legal, enabled=False
        ),
        "low": rule_with("Low confidence", "signals.confidence", "lt", 0.7, priority=50, queue=queue),
        "billing": rule_with(
            "Billing spot check",
            "signals.category",
            "eq",
            "billing",
            priority=60,
            outcome="spot_check",
            queue=queue,
        ),
        "rubric": rule_with(
            "Rubric watch",
            "signals.rubric_score",
            "lt",
            3,
            priority=70,
            outcome="block",
            queue=None,
            mode="shadow",
        ),
    }


BODIES = {
    "sure1": submission(signals={"confidence": 0.95}),
    "sure2": submission(signals={"confidence": 0.95}),
    "mid1": submission(signals={"confidence": 0.75}),
    "mid2": submission(signals={"confidence": 0.75}),
    "low1": submission(signals={"confidence": 0.65}),
    "low2": submission(signals={"confidence": 0.65}),
    "legal_sure": submission(signals={"confidence": 0.95, "category": "legal"}),
    "legal_low": submission(signals={"confidence": 0.65, "category": "legal"}),
    "refund": action_submission(),
    "big_refund": action_submission(
        action={"type": "payment.refund", "params": {"order": "7", "amount": 5000, "currency": "EUR"}}
    ),
    "harm": submission(signals={"confidence": 0.95, "filter_flags": ["self_harm"]}),
    "billing_sure": submission(signals={"confidence": 0.95, "category": "billing"}),
    "billing_mid": submission(signals={"confidence": 0.75, "category": "billing"}),
    "rubric": submission(signals={"confidence": 0.95, "rubric_score": 2}),
}
EXPECTED_STATUS = {
    "sure1": ("auto_approved", None),
    "sure2": ("auto_approved", None),
    "mid1": ("auto_approved", None),
    "mid2": ("auto_approved", None),
    "low1": ("pending", "general"),
    "low2": ("pending", "general"),
    "legal_sure": ("auto_approved", None),
    "legal_low": ("pending", "general"),
    "refund": ("pending", "payments"),
    "big_refund": ("pending", "payments"),
    "harm": ("blocked", None),
    "billing_sure": ("auto_approved", None),
    "billing_mid": ("auto_approved", None),
    "rubric": ("auto_approved", None),
    "old_mid": ("auto_approved", None),
}
IN_WINDOW = len(BODIES)  # old_mid is outside the default window


@pytest.fixture
def items(rules, integration):
    """The bodies, submitted with fixed ids: sampled rules then sample the same items
    on every run (a random id would make a sampled draft's effect a matter of luck)."""
    made = {}
    for index, (name, body) in enumerate(BODIES.items()):
        at = NOW - timedelta(hours=2) + timedelta(minutes=index)
        fixed_id = uuid.UUID(int=0x5EED0000 + index, version=4)
        with (
            mock.patch("django.utils.timezone.now", return_value=at),
            mock.patch("reviews.services.submission.uuid.uuid4", return_value=fixed_id),
        ):
            made[name] = services.submit_item(integration=integration, payload=body).item
    with mock.patch("django.utils.timezone.now", return_value=NOW - timedelta(days=40)):
        made["old_mid"] = services.submit_item(
            integration=integration, payload=submission(signals={"confidence": 0.75})
        ).item
    return made


def run(**kwargs):
    kwargs.setdefault("since", NOW - timedelta(days=1))
    kwargs.setdefault("until", NOW + timedelta(minutes=1))
    return backtest(**kwargs)


def moves(report) -> dict[tuple[str, str], int]:
    return {(t.before.label, t.after.label): t.count for t in report.transitions}


def ids(*names, items) -> list[str]:
    return [str(items[name].pk) for name in names]


def samples(report) -> dict[tuple[str, str], list[str]]:
    return {(t.before.label, t.after.label): sorted(t.samples) for t in report.transitions}


def every_row() -> dict[str, list[dict]]:
    """Every row of every table, history included."""
    return {
        model._meta.label: list(model._base_manager.order_by("pk").values())
        for model in apps.get_models(include_auto_created=True)
    }


# --- The fixture is what the docstring says ---------------------------------------------


def test_fixture_outcomes_and_the_rebuilt_submission_gives_them_again(items):
    for name, (status, queue) in EXPECTED_STATUS.items():
        item = items[name]
        assert (item.status, item.queue.slug if item.queue_id else None) == (status, queue), name
    assert ReviewItem.objects.filter(spot_check_of__isnull=False).count() == 2

    # The engine, given the submission rebuilt from each stored item, decides as the gate did.
    rules = load_rules()
    for item in ReviewItem.objects.filter(spot_check_of__isnull=True):
        row = {
            name: getattr(item, name) for name in ("kind", "input", "output", "action", "signals", "metadata")
        }
        decision = apply_rules(rules, submission_of(row), item_id=item.pk, integration_slug="support-bot")
        assert decision.status == item.status
        assert decision.queue_slug == (item.queue.slug if item.status == "pending" else None)


# --- The candidates ---------------------------------------------------------------------


def test_a_changed_threshold_as_a_draft(items):
    draft = {
        "name": "Low confidence",
        "conditions": [{"field": "signals.confidence", "op": "lt", "value": 0.8}],
    }
    report = run(draft=draft)

    assert report.is_draft and report.candidate_id == items["low1"].matched_rules[0]["id"]
    assert report.baseline == "the rules in force, with “Low confidence” as it is now"
    assert report.read == report.examined == IN_WINDOW
    assert report.matched == 6  # mid1, mid2, low1, low2, legal_low, billing_mid
    assert report.replaced_matched == 3  # low1, low2, legal_low
    assert moves(report) == {
        ("pass", "review (general)"): 2,
        ("spot_check (general)", "review (general)"): 1,
    }
    assert samples(report) == {
        ("pass", "review (general)"): sorted(ids("mid1", "mid2", items=items)),
        ("spot_check (general)", "review (general)"): ids("billing_mid", items=items),
    }
    assert report.changed == 3
    assert [t.label for t in report.transitions] == ["pass → review", "spot_check → review"]
    placements = {(p.placement.label, p.before, p.after) for p in report.placements}
    assert placements == {
        ("block", 1, 1),
        ("review (general)", 3, 6),
        ("review (payments)", 2, 2),
        ("spot_check (general)", 2, 1),
        ("pass", 6, 4),
    }


def test_a_new_draft_block_rule(items):
    draft = {
        "name": "Large refunds",
        "enabled": False,  # ignored: a draft is evaluated whatever it says
        "priority": 15,
        "match": "all",
        "outcome": "block",
        "risk_level": "high",
        "conditions": [
            {"field": "action.type", "op": "eq", "value": "payment.refund"},
            {"field": "action.params.amount", "op": "gt", "value": 1000},
        ],
    }
    report = run(draft=draft)

    assert report.candidate_id is None and report.replaced_matched is None
    assert report.baseline == "the rules in force now"
    assert report.matched == 1
    assert moves(report) == {("review (payments)", "block"): 1}
    assert samples(report) == {("review (payments)", "block"): ids("big_refund", items=items)}
    assert report.transitions[0].label == "review → block"


def test_outcome_precedence_is_the_engines(items):
    # Review everything in general at priority 1: blocked stays blocked, refunds move queue
    # (the lowest priority picks it), spot checks and passes become reviews.
    draft = {
        "name": "Everything",
        "priority": 1,
        "match": "all",
        "outcome": "review",
        "queue": "general",
        "risk_level": "low",
        "conditions": [],
    }
    report = run(draft=draft)

    assert report.matched == IN_WINDOW
    assert moves(report) == {
        ("pass", "review (general)"): 6,
        ("review (payments)", "review (general)"): 2,
        ("spot_check (general)", "review (general)"): 2,
    }
    labels = {t.label for t in report.transitions}
    assert labels == {"pass → review", "review → review (other queue)", "spot_check → review"}


def test_a_disabled_rule_is_a_draft(items, rules):
    report = run(rule=rules["legal"])

    assert not report.is_draft and report.candidate_id == rules["legal"].pk
    assert report.baseline == "the rules in force now"
    assert report.matched == 2
    assert moves(report) == {("pass", "review (legal)"): 1, ("review (general)", "review (legal)"): 1}
    assert samples(report) == {
        ("pass", "review (legal)"): ids("legal_sure", items=items),
        ("review (general)", "review (legal)"): ids("legal_low", items=items),
    }
    # The same, given as a draft enabling it.
    assert moves(run(draft={"name": "Legal", "enabled": True})) == moves(report)


def test_a_rule_in_force_is_measured_against_the_rules_without_it(items, rules):
    report = run(rule=rules["low"])

    assert report.baseline == "the rules in force without “Low confidence”"
    assert report.matched == 3
    assert moves(report) == {("pass", "review (general)"): 3}


def test_a_shadow_rule_matches_without_changing_outcomes(items, rules):
    report = run(rule=rules["rubric"])
    assert report.matched == 1
    assert report.transitions == []
    assert report.changed == 0

    enforced = run(draft={"name": "Rubric watch", "mode": "enforce"})
    assert moves(enforced) == {("pass", "block"): 1}
    assert samples(enforced) == {("pass", "block"): ids("rubric", items=items)}


def test_sampling_uses_the_saved_rules_id(items, rules):
    # A draft of an existing rule keeps its id, so sampling picks the items the rule would.
    draft = {"name": "Low confidence", "sample_rate": 0.5}
    report = run(draft=draft)
    compiled = replace(next(r for r in load_rules() if r.rule_id == rules["low"].pk), sample_rate=0.5)
    kept = [name for name in ("low1", "low2", "legal_low") if compiled.samples_in(str(items[name].pk))]
    sampled_out = {"low1", "low2", "legal_low"} - set(kept)
    assert report.matched == len(kept)
    assert report.changed == len(sampled_out)
    assert sorted(s for t in report.transitions for s in t.samples) == sorted(
        ids(*sampled_out, items=items) if sampled_out else []
    )


# --- Nothing is written -----------------------------------------------------------------


def test_nothing_is_written(items, rules):
    before = every_row()
    history = GateRule.history.count()

    run(
        draft={
            "name": "Low confidence",
            "conditions": [{"field": "signals.confidence", "op": "lt", "value": 0.8}],
        }
    )
    run(
        draft={
            "name": "New",
            "priority": 1,
            "match": "all",
            "outcome": "block",
            "risk_level": "high",
            "conditions": [],
        }
    )
    run(rule=rules["legal"])
    run(rule=rules["low"], queue="general")
    with pytest.raises(BacktestError):
        run(draft={"name": "Low confidence", "colour": "red"})

    assert GateRule.history.count() == history
    assert every_row() == before


# --- Window, queue, spot checks ---------------------------------------------------------


def test_window_bounds(items, rules):
    draft = {
        "name": "Low confidence",
        "conditions": [{"field": "signals.confidence", "op": "lt", "value": 0.8}],
    }
    everything = run(draft=draft, since=NOW - timedelta(days=60))
    assert everything.examined == IN_WINDOW + 1
    assert moves(everything)[("pass", "review (general)")] == 3  # with old_mid

    old = run(draft=draft, since=NOW - timedelta(days=60), until=NOW - timedelta(days=1))
    assert old.examined == 1 and samples(old) == {("pass", "review (general)"): ids("old_mid", items=items)}

    # [since, until): an item submitted at `until` is left out, one at `since` kept.
    at = items["mid1"].created_at
    assert run(draft=draft, since=at, until=at + timedelta(microseconds=1)).examined == 1
    assert run(draft=draft, since=at - timedelta(seconds=1), until=at).examined == 0


def test_queue_filter_keeps_items_placed_in_the_queue_before_or_after(items, rules):
    general = run(rule=rules["legal"], queue="general")
    # low1, low2, legal_low (general -> legal), billing_sure, billing_mid
    assert general.examined == 5 and general.read == IN_WINDOW
    assert moves(general) == {("review (general)", "review (legal)"): 1}

    legal = run(rule=rules["legal"], queue="legal")
    assert legal.examined == 2 and legal.matched == 2
    assert moves(legal) == {("pass", "review (legal)"): 1, ("review (general)", "review (legal)"): 1}

    assert run(rule=rules["legal"], queue="payments").transitions == []


def test_spot_check_copies_are_skipped(items, rules):
    copies = set(ReviewItem.objects.filter(spot_check_of__isnull=False).values_list("pk", flat=True))
    report = run(draft={"name": "Everything", "priority": 1, "match": "all", "outcome": "block",
                        "risk_level": "high", "conditions": []})  # fmt: skip
    assert report.examined == IN_WINDOW
    assert not copies & {s for t in report.transitions for s in t.samples}


# --- Bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        ({"name": "Low confidence", "colour": "red"}, "draft.colour: unknown key"),
        (
            {
                "name": "Low confidence",
                "conditions": [{"field": "signals.confidence", "op": "lt", "value": [1]}],
            },
            "draft.conditions[0].value: The operator lt compares with a number or a string.",
        ),
        (
            {
                "name": "Low confidence",
                "conditions": [{"field": "signals.confidence", "op": "below", "value": 1}],
            },
            "draft.conditions[0].op:",
        ),
        (
            {"name": "Low confidence", "conditions": [{"field": "colour", "op": "eq", "value": 1}]},
            "draft.conditions[0].field: 'colour' is not a submission field",
        ),
        ({"name": "Low confidence", "queue": "nowhere"}, "draft.queue: unknown queue 'nowhere'"),
        ({"name": "Brand new", "outcome": "review"}, "draft.priority: required"),
        ({"name": "Low confidence", "sample_rate": 2}, "draft.sample_rate"),
        (["not", "a", "rule"], "draft: expected an object"),
    ],
)
def test_bad_drafts_say_what_is_wrong(rules, draft, message):
    with pytest.raises(BacktestError) as exc:
        run(draft=draft)
    assert any(error.startswith(message) for error in exc.value.errors), exc.value.errors


def test_bad_arguments(rules):
    with pytest.raises(BacktestError, match="either a saved rule or a draft"):
        run()
    with pytest.raises(BacktestError, match="window is empty"):
        run(rule=rules["low"], since=NOW, until=NOW)
    with pytest.raises(BacktestError, match="No queue with the slug 'nowhere'"):
        run(rule=rules["low"], queue="nowhere")
    with pytest.raises(BacktestError, match="timezone-aware"):
        run(rule=rules["low"], since=NOW.replace(tzinfo=None))


def test_read_draft_fills_left_out_keys_from_the_rule(rules):
    rule, conditions = read_draft({"name": "Low confidence", "priority": 7})
    assert (rule.pk, rule.priority, rule.outcome, rule.queue.slug) == (
        rules["low"].pk,
        7,
        "review",
        "general",
    )
    assert conditions == [{"field": "signals.confidence", "op": "lt", "value": 0.7}]


# --- Batches and queries ----------------------------------------------------------------


def test_progress_after_each_batch(items, rules):
    calls = []
    run(rule=rules["legal"], batch_size=4, progress=lambda read, total: calls.append((read, total)))
    assert calls == [(4, 14), (8, 14), (12, 14), (14, 14)]


def test_queries_grow_only_by_one_per_batch(items, rules):
    def queries(batch_size: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            run(rule=rules["legal"], batch_size=batch_size)
        return len(captured)

    # 14 items: batches of 8 read 8 and 6; of 4 read 4, 4, 4 and 2.
    two, four = queries(8), queries(4)
    assert four - two == 2
    # Set-up: the rule and its conditions, the rules in force and theirs; then one query a batch.
    assert two == 4 + 2


def test_batches_with_equal_timestamps_miss_and_repeat_nothing(rules, integration):
    with mock.patch("django.utils.timezone.now", return_value=NOW - timedelta(hours=1)):
        made = [
            services.submit_item(
                integration=integration, payload=submission(signals={"confidence": 0.95})
            ).item
            for _ in range(7)
        ]
    report = run(draft={"name": "Low confidence", "conditions": []}, batch_size=2)
    assert report.read == report.examined == 7
    assert moves(report) == {("pass", "review (general)"): 7}
    assert set(report.transitions[0].samples) < {str(item.pk) for item in made}


# --- The command ------------------------------------------------------------------------


def command(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("backtest_rule", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_prints_a_table(items, rules):
    out, err = command("Legal")
    assert "Backtest of “Legal”" in out
    assert "Items examined: 14" in out
    assert "Matched by the candidate: 2" in out
    assert "Outcome changed: 2" in out
    assert "pass → review" in out and "review → review (other queue)" in out
    assert str(items["legal_sure"].pk) in out
    assert err == ""  # one batch: no progress line


def test_command_by_id_with_json_and_window(items, rules):
    since = (NOW - timedelta(days=60)).isoformat()
    out, _ = command(str(rules["low"].pk), "--json", "--since", since)
    data = json.loads(out)
    assert data["candidate"] == {"name": "Low confidence", "id": rules["low"].pk, "draft": False}
    assert data["items_examined"] == IN_WINDOW + 1
    [transition] = data["transitions"]
    sample_ids = transition.pop("sample_item_ids")
    assert transition == {
        "transition": "pass → review",
        "before": {"outcome": "pass", "queue": None},
        "after": {"outcome": "review", "queue": "general"},
        "items": 3,
    }
    assert sorted(sample_ids) == sorted(ids("low1", "low2", "legal_low", items=items))


def test_command_with_a_draft_file_and_progress(items, rules, tmp_path):
    path = tmp_path / "draft.json"
    path.write_text(json.dumps({"conditions": [{"field": "signals.confidence", "op": "lt", "value": 0.8}]}))
    out, err = command("Low confidence", "--draft", str(path), "--batch-size", "5", "--queue", "general")
    assert "(draft)" in out and "placed in queue general" in out
    assert "Matched by the candidate: 6 (by the rule as it is now: 3)" in out
    assert err.splitlines() == ["5/14 items…", "10/14 items…", "14/14 items…"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Name a rule"),
        (("No such rule",), "No gate rule with the id or name 'No such rule'"),
        (("999999",), "No gate rule with the id or name '999999'"),
        (("Legal", "--since", "last tuesday"), "--since 'last tuesday' is not an ISO 8601"),
        (("Legal", "--since", "2025-02-01", "--until", "2025-01-01"), "window is empty"),
        (("Legal", "--queue", "nowhere"), "No queue with the slug 'nowhere'"),
        (("--draft", "/nonexistent/draft.json"), "Cannot read /nonexistent/draft.json"),
    ],
)
def test_command_refuses_bad_input_with_exit_code_1(rules, args, message):
    with pytest.raises(CommandError, match=message) as exc:
        command(*args)
    assert exc.value.returncode == 1


def test_command_refuses_bad_drafts(rules, tmp_path):
    path = tmp_path / "draft.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="is not valid JSON"):
        command("--draft", str(path))

    path.write_text(json.dumps({"name": "Other"}))
    with pytest.raises(CommandError, match="describes the rule 'Other', not 'Legal'"):
        command("Legal", "--draft", str(path))

    conditions = [{"field": "colour", "op": "eq", "value": 1}]
    path.write_text(json.dumps({"name": "Legal", "queue": "nowhere", "conditions": conditions}))
    err = StringIO()
    with pytest.raises(CommandError, match="2 errors"):
        call_command("backtest_rule", "--draft", str(path), stdout=StringIO(), stderr=err)
    assert "draft.conditions[0].field: 'colour' is not a submission field" in err.getvalue()
    assert "draft.queue: unknown queue 'nowhere'" in err.getvalue()


# --- The admin --------------------------------------------------------------------------


def page(rule) -> str:
    return reverse("admin:policies_gaterule_backtest", args=[rule.pk])


def test_policy_admin_sees_counts_and_links_but_no_content(client, policy_admin, items, rules):
    client.force_login(policy_admin)
    response = client.get(page(rules["legal"]))

    assert response.status_code == 200
    report = response.context["report"]
    assert moves(report) == {("pass", "review (legal)"): 1, ("review (general)", "review (legal)"): 1}
    html = response.content.decode()
    for name in ("legal_sure", "legal_low"):
        assert reverse("admin:reviews_review", args=[items[name].pk]) in html
    assert "We are open" not in html and "opening hours" not in html
    assert "policies/backtest.css" in html
    assert "style=" not in html.split('id="content-main"', 1)[1]
    assert "<script>" not in html.split('id="content-main"', 1)[1]


def test_admin_window_and_queue_from_the_query_string(client, superuser, items, rules):
    client.force_login(superuser)
    since = (NOW - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M")
    until = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.get(page(rules["low"]), {"since": since, "until": until})
    assert response.status_code == 200
    assert response.context["report"].examined == 1  # old_mid; Low confidence does not match it
    assert response.context["report"].transitions == []

    response = client.get(page(rules["legal"]), {"since": since, "until": since})
    assert response.status_code == 200 and response.context["report"] is None
    assert "The window is empty" in response.content.decode()

    response = client.get(
        page(rules["legal"]),
        {"since": (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"), "until": "", "queue": "legal"},
    )
    assert response.context["report"] is None  # until is required


def test_reviewers_and_compliance_may_not_backtest(client, reviewer, compliance, rules):
    for user in (reviewer, compliance):
        client.force_login(user)
        assert client.get(page(rules["low"])).status_code == 403


def test_unknown_rule_is_404(client, policy_admin, rules):
    client.force_login(policy_admin)
    assert client.get("/admin/policies/gaterule/999999/backtest/").status_code == 404
    assert client.get("/admin/policies/gaterule/abc/backtest/").status_code == 404


def test_admin_action_opens_the_page_for_one_rule(client, policy_admin, rules):
    client.force_login(policy_admin)
    changelist = reverse("admin:policies_gaterule_changelist")
    response = client.post(changelist, {"action": "backtest_selected", "_selected_action": [rules["low"].pk]})
    assert response.status_code == 302 and response.url == page(rules["low"])

    response = client.post(
        changelist,
        {"action": "backtest_selected", "_selected_action": [rules["low"].pk, rules["legal"].pk]},
        follow=True,
    )
    assert "Select exactly one rule to backtest." in response.content.decode()


@pytest.mark.parametrize(
    "draft",
    [
        {"name": "Low confidence", "sample_rate": 0.5, "priority": 1},
        {"name": "Refunds", "outcome": "spot_check", "queue": "general"},
        {
            "name": "Blocked words",
            "match": "any",
            "conditions": [{"field": "signals.confidence", "op": "gte", "value": 0.9}],
        },
        {"name": "Legal", "outcome": "block", "queue": None},
    ],
)
def test_same_transitions_as_applying_both_rule_sets_in_full(items, draft):
    """The backtest tests each rule once; `apply_rules` on each rule set decides alike."""
    report = run(draft=draft)
    candidate, conditions = read_draft(draft)

    in_force = [r for r in load_rules() if r.enforced]
    before_rules = in_force
    after_rules = [*(r for r in in_force if r.rule_id != candidate.pk), compile_rule(candidate, conditions)]
    expected: dict[tuple[str, str], int] = {}
    for item in ReviewItem.objects.filter(
        spot_check_of__isnull=True, created_at__gte=NOW - timedelta(days=1)
    ):
        body = submission_of({name: getattr(item, name) for name in ("kind", "action", "signals")})
        was, becomes = (
            Placement.of(apply_rules(rules, body, item_id=item.pk, integration_slug="support-bot")).label
            for rules in (before_rules, after_rules)
        )
        if was != becomes:
            expected[(was, becomes)] = expected.get((was, becomes), 0) + 1
    assert moves(report) == expected
    assert expected  # each draft changes something
