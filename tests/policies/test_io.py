"""Policy as data: import_policy / export_policy, the functions and the commands."""

from __future__ import annotations

import copy
import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from policies.io import PolicyError, export_policy, import_policy
from policies.models import GateCondition, GateRule
from reviews.models import Queue, ReasonCode
from tests.factories import GateConditionFactory, GateRuleFactory, QueueFactory

EXAMPLE = Path(__file__).resolve().parents[2] / "demo" / "policy.json"

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def example_text() -> str:
    if not EXAMPLE.is_file():
        pytest.fail(f"The example policy file is missing: expected it at {EXAMPLE}", pytrace=False)
    return EXAMPLE.read_text(encoding="utf-8")


@pytest.fixture
def policy(example_text) -> dict:
    return json.loads(example_text)


@pytest.fixture
def example_file(example_text, tmp_path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(example_text, encoding="utf-8")
    return path


def history_rows() -> int:
    return sum(model.history.count() for model in (Queue, ReasonCode, GateRule, GateCondition))


def rule_named(policy: dict, name: str) -> dict:
    return next(rule for rule in policy["rules"] if rule["name"] == name)


def queue_slugged(policy: dict, slug: str) -> dict:
    return next(queue for queue in policy["queues"] if queue["slug"] == slug)


def wipe_policy() -> None:
    GateRule.objects.all().delete()
    Queue.objects.all().delete()
    ReasonCode.objects.all().delete()


# --- Import ------------------------------------------------------------------------------


def test_import_creates_queues_reason_codes_rules_and_groups(policy):
    report = import_policy(policy)

    assert report.changed
    assert sorted(report.created["queues"]) == ["general", "payments", "regulated", "senior"]
    assert len(report.created["reason_codes"]) == 6
    assert len(report.created["rules"]) == 6
    assert report.lines()[-1] == "16 created, 0 updated, 0 unchanged"
    assert "queue payments: created" in report.lines()
    assert 'rule "Low confidence": created' in report.lines()

    payments = Queue.objects.get(slug="payments")
    assert payments.required_approvals == 2
    assert payments.timeout_outcome == "reject"
    assert payments.checklist == ["Amount and currency match the customer's request", "Recipient is verified"]
    assert payments.bulk_approve_allowed is False
    assert [g.name for g in payments.reviewer_groups.all()] == ["payments-reviewers"]
    assert (
        Group.objects.filter(
            name__in=["payments-reviewers", "regulated-reviewers", "reviewers", "senior-reviewers"]
        ).count()
        == 4
    )

    # "senior" is defined after the queues that escalate to it.
    senior = Queue.objects.get(slug="senior")
    for slug in ("payments", "regulated", "general"):
        assert Queue.objects.get(slug=slug).escalation_queue == senior
    assert senior.escalation_queue is None

    assert ReasonCode.objects.get(code="missing_guardrail").creates_backlog_item is True
    assert ReasonCode.objects.get(code="verified").applies_to == ["approve"]
    assert all(ReasonCode.objects.values_list("active", flat=True))

    low = GateRule.objects.get(name="Low confidence")
    assert (low.priority, low.match, low.outcome, low.queue.slug, low.risk_level) == (
        50,
        "any",
        "review",
        "general",
        "low",
    )
    assert (low.mode, low.sample_rate, low.version) == ("enforce", 1.0, 1)
    assert [(c.field, c.op, c.value, c.position) for c in low.conditions.all()] == [
        ("signals.confidence", "lt", 0.7, 0),
        ("signals.rubric_score", "lt", 3, 1),
    ]
    block = GateRule.objects.get(name="Known-bad content")
    assert block.queue is None and block.outcome == "block"
    assert GateCondition.objects.count() == 8


def test_import_records_history_with_the_change_reason(policy):
    import_policy(policy)

    assert GateRule.history.filter(name="Low confidence").get().history_change_reason == "import_policy"
    reasons = set(Queue.history.values_list("history_change_reason", flat=True))
    reasons |= set(GateCondition.history.values_list("history_change_reason", flat=True))
    assert reasons == {"import_policy"}


def test_second_import_changes_nothing(policy):
    import_policy(policy)
    rows = history_rows()
    versions = dict(GateRule.objects.values_list("name", "version"))
    updated_at = dict(Queue.objects.values_list("slug", "updated_at"))

    report = import_policy(copy.deepcopy(policy))

    assert not report.changed
    assert report.lines() == ["0 created, 0 updated, 16 unchanged"]
    assert history_rows() == rows
    assert dict(GateRule.objects.values_list("name", "version")) == versions
    assert dict(Queue.objects.values_list("slug", "updated_at")) == updated_at


def test_export_then_import_into_an_empty_database_gives_the_same_export(policy):
    import_policy(policy)
    shadow = GateRuleFactory(
        name="Watch refunds",
        mode="shadow",
        sample_rate=0.25,
        outcome="spot_check",
        queue=Queue.objects.get(slug="general"),
        enabled=False,
    )
    GateConditionFactory(rule=shadow, field="metadata.region", op="exists", value=None)
    ReasonCode.objects.filter(code="tone").update(active=False)
    Queue.objects.filter(slug="general").update(bulk_approve_allowed=True)
    exported = export_policy()

    wipe_policy()
    import_policy(json.loads(json.dumps(exported)))

    assert export_policy() == exported
    assert exported["rules"][0]["name"] == "Known-bad content"  # priority order
    watched = next(rule for rule in exported["rules"] if rule["name"] == "Watch refunds")
    assert watched["mode"] == "shadow" and watched["sample_rate"] == 0.25 and watched["enabled"] is False
    assert watched["conditions"] == [{"field": "metadata.region", "op": "exists"}]
    assert next(rc for rc in exported["reason_codes"] if rc["code"] == "tone")["active"] is False


def test_import_export_import_reports_no_change(policy):
    import_policy(policy)
    report = import_policy(json.loads(json.dumps(export_policy())))
    assert not report.changed


def test_changed_rule_gets_exactly_one_new_version(policy):
    import_policy(policy)
    rule = rule_named(policy, "Low confidence")
    rule["priority"] = 55
    rule["conditions"][0]["value"] = 0.6

    report = import_policy(policy)

    assert report.updated["rules"] == {"Low confidence": ["priority", "conditions"]}
    assert 'rule "Low confidence": updated (priority, conditions)' in report.lines()
    assert report.lines()[-1] == "0 created, 1 updated, 15 unchanged"
    low = GateRule.objects.get(name="Low confidence")
    assert low.version == 2
    assert low.priority == 55
    assert [c.value for c in low.conditions.all()] == [0.6, 3]
    assert GateRule.objects.exclude(name="Low confidence").filter(version=1).count() == 5
    assert GateRule.history.filter(name="Low confidence").latest().version == 2


def test_conditions_compare_types_strictly(policy):
    import_policy(policy)
    rule_named(policy, "Low confidence")["conditions"][1]["value"] = 3.0  # was 3

    report = import_policy(policy)

    assert report.updated["rules"] == {"Low confidence": ["conditions"]}
    assert GateRule.objects.get(name="Low confidence").version == 2


def test_reordered_conditions_are_a_change(policy):
    import_policy(policy)
    rule_named(policy, "Low confidence")["conditions"].reverse()

    import_policy(policy)

    low = GateRule.objects.get(name="Low confidence")
    assert [c.field for c in low.conditions.all()] == ["signals.rubric_score", "signals.confidence"]
    assert low.version == 2


def test_changed_queue_reports_its_fields(policy):
    import_policy(policy)
    general = queue_slugged(policy, "general")
    general["sla_minutes"] = 300
    general["reviewer_groups"] = ["reviewers", "night-shift"]
    general["escalation_queue"] = "overflow"
    policy["queues"].append({**queue_slugged(policy, "senior"), "slug": "overflow", "name": "Overflow"})

    report = import_policy(policy)

    assert report.updated["queues"] == {"general": ["sla_minutes", "reviewer_groups", "escalation_queue"]}
    assert report.created["queues"] == ["overflow"]
    queue = Queue.objects.get(slug="general")
    assert queue.sla_minutes == 300
    assert queue.escalation_queue.slug == "overflow"
    assert {g.name for g in queue.reviewer_groups.all()} == {"reviewers", "night-shift"}


def test_optional_keys_take_their_defaults(policy):
    import_policy(policy)
    rule = GateRule.objects.get(name="Irreversible actions")
    assert rule.mode == "enforce" and rule.sample_rate == 1.0
    assert Queue.objects.get(slug="senior").bulk_approve_allowed is False
    assert ReasonCode.objects.get(code="tone").active is True


def test_import_updates_objects_that_already_exist(queue):
    rule = GateRuleFactory(name="Low confidence", queue=queue, priority=7)
    GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.5)
    data = {
        "rules": [
            {
                "name": "Low confidence",
                "enabled": True,
                "priority": 7,
                "match": "all",
                "outcome": "review",
                "queue": "general",
                "risk_level": "medium",
                "conditions": [{"field": "signals.confidence", "op": "lt", "value": 0.5}],
            }
        ]
    }
    assert not import_policy(data).changed

    data["rules"][0]["mode"] = "shadow"
    report = import_policy(data)
    assert report.updated["rules"] == {"Low confidence": ["mode"]}
    rule.refresh_from_db()
    assert (rule.mode, rule.version) == ("shadow", 2)


def test_import_does_not_delete_what_the_file_leaves_out(policy):
    kept = GateRuleFactory(name="Hand-made rule", outcome="block", queue=None)
    QueueFactory(slug="legacy")

    import_policy(policy)

    assert GateRule.objects.filter(pk=kept.pk).exists()
    assert Queue.objects.filter(slug="legacy").exists()


def test_dry_run_reports_and_writes_nothing(policy):
    report = import_policy(policy, dry_run=True)

    assert report.dry_run and report.changed
    assert report.lines()[-1] == "Dry run, nothing written: 16 created, 0 updated, 0 unchanged"
    assert not Queue.objects.exists() and not GateRule.objects.exists() and not ReasonCode.objects.exists()
    assert not Group.objects.filter(name="payments-reviewers").exists()
    assert history_rows() == 0


# --- Validation ----------------------------------------------------------------------------


def _set(path: list, value):
    def mutate(policy):
        target = policy
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list):
    def mutate(policy):
        target = policy
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "location"),
    [
        pytest.param(
            _set(["rules", 2, "queue"], "nowhere"),
            "rules[2].queue: unknown queue 'nowhere'",
            id="unknown-queue",
        ),
        pytest.param(
            _set(["rules", 0, "conditions", 0, "op"], "like"), "rules[0].conditions[0].op:", id="bad-operator"
        ),
        pytest.param(
            _set(["rules", 1, "conditions", 0, "value"], "^(system"),
            "rules[1].conditions[0].value:",
            id="bad-regex",
        ),
        pytest.param(
            _set(["rules", 4, "conditions", 0, "field"], "secrets.password"),
            "rules[4].conditions[0].field:",
            id="invalid-field-path",
        ),
        pytest.param(
            _set(["rules", 4, "conditions", 1, "value"], ["3"]),
            "rules[4].conditions[1].value:",
            id="bad-value",
        ),
        pytest.param(
            _set(["queues", 0, "sla_minutes"], "60"),
            "queues[0].sla_minutes: expected a whole number, got a string",
            id="wrong-type",
        ),
        pytest.param(
            _set(["rules", 0, "enabled"], "yes"), "rules[0].enabled: expected true or false", id="not-bool"
        ),
        pytest.param(
            _set(["queues", 0, "required_approvals"], 3), "queues[0].required_approvals:", id="approvals"
        ),
        pytest.param(
            _set(["queues", 1, "timeout_outcome"], "approve"), "queues[1].timeout_outcome:", id="timeout"
        ),
        pytest.param(
            _set(["queues", 1, "escalation_queue"], "nowhere"),
            "queues[1].escalation_queue: unknown queue 'nowhere'",
            id="unknown-escalation",
        ),
        pytest.param(
            _set(["queues", 3, "escalation_queue"], "senior"),
            "queues[3].escalation_queue:",
            id="self-escalation",
        ),
        pytest.param(_set(["queues", 0, "checklist"], ["  "]), "queues[0].checklist:", id="blank-checklist"),
        pytest.param(_set(["queues", 0, "slug"], "Money Movement!"), "queues[0].slug:", id="bad-slug"),
        pytest.param(_set(["rules", 2, "queue"], None), "rules[2].queue:", id="review-without-queue"),
        pytest.param(_set(["rules", 2, "sample_rate"], 1.5), "rules[2].sample_rate:", id="sample-rate"),
        pytest.param(_set(["rules", 2, "outcome"], "allow"), "rules[2].outcome:", id="bad-outcome"),
        pytest.param(_set(["rules", 2, "colour"], "red"), "rules[2].colour: unknown key", id="unknown-key"),
        pytest.param(
            _delete(["reason_codes", 0, "label"]), "reason_codes[0].label: required", id="missing-key"
        ),
        pytest.param(
            _set(["reason_codes", 0, "applies_to"], ["delete"]), "reason_codes[0].applies_to:", id="applies"
        ),
        pytest.param(
            _set(["rules", 5, "name"], "Low confidence"),
            "rules[5].name: 'Low confidence' appears twice",
            id="duplicate-name",
        ),
        pytest.param(
            _set(["rules", 0, "conditions"], {"field": "kind"}),
            "rules[0].conditions: expected a list",
            id="conditions-not-list",
        ),
        pytest.param(_set(["extra"], []), "extra: unknown key", id="unknown-section"),
        pytest.param(_set(["rules"], {}), "rules: expected a list", id="section-not-list"),
    ],
)
def test_invalid_file_raises_policy_error_and_writes_nothing(policy, mutate, location):
    mutate(policy)

    with pytest.raises(PolicyError) as excinfo:
        import_policy(policy)

    assert any(error.startswith(location) for error in excinfo.value.errors), excinfo.value.errors
    assert not Queue.objects.exists()
    assert not GateRule.objects.exists()
    assert not ReasonCode.objects.exists()
    assert not Group.objects.filter(name="payments-reviewers").exists()


def test_policy_error_lists_every_problem(policy):
    policy["rules"][0]["queue"] = "nowhere"
    policy["rules"][1]["conditions"][0]["value"] = "(unclosed"
    policy["queues"][0]["sla_minutes"] = "soon"

    with pytest.raises(PolicyError) as excinfo:
        import_policy(policy)

    locations = [error.split(":")[0] for error in excinfo.value.errors]
    assert locations == ["queues[0].sla_minutes", "rules[0].queue", "rules[1].conditions[0].value"]


def test_a_malformed_queue_is_not_also_reported_as_unknown_where_it_is_named(policy):
    policy["queues"][0]["sla_minutes"] = "an hour"  # payments, named by rules[0]

    with pytest.raises(PolicyError) as excinfo:
        import_policy(policy)

    assert excinfo.value.errors == ["queues[0].sla_minutes: expected a whole number, got a string"]


def test_invalid_file_leaves_existing_policy_untouched(policy):
    import_policy(policy)
    rows = history_rows()
    policy["queues"][0]["name"] = "Renamed"  # a valid change ...
    policy["rules"][4]["conditions"][0]["op"] = "about"  # ... next to an invalid one

    with pytest.raises(PolicyError):
        import_policy(policy)

    assert Queue.objects.get(slug="payments").name == "Money movement"
    assert history_rows() == rows


def test_top_level_must_be_an_object():
    with pytest.raises(PolicyError) as excinfo:
        import_policy([])  # type: ignore[arg-type]
    assert "expected an object" in excinfo.value.errors[0]


def test_valueless_operators_need_no_value():
    QueueFactory(slug="general")
    data = {
        "rules": [
            {
                "name": "Unattributed",
                "enabled": True,
                "priority": 5,
                "match": "all",
                "outcome": "review",
                "queue": "general",
                "risk_level": "low",
                "conditions": [{"field": "metadata.user_id", "op": "not_exists"}],
            }
        ]
    }
    import_policy(data)
    condition = GateCondition.objects.get()
    assert (condition.op, condition.value) == ("not_exists", None)


# --- Commands -------------------------------------------------------------------------------


def test_import_command_prints_what_changed(example_file):
    out = StringIO()
    call_command("import_policy", str(example_file), stdout=out)

    lines = out.getvalue().splitlines()
    assert "queue senior: created" in lines
    assert 'rule "Irreversible actions": created' in lines
    assert lines[-1] == "16 created, 0 updated, 0 unchanged"
    assert Queue.objects.count() == 4

    out = StringIO()
    call_command("import_policy", str(example_file), stdout=out)
    assert out.getvalue().splitlines() == ["0 created, 0 updated, 16 unchanged"]


def test_import_command_dry_run_writes_nothing(example_file):
    out = StringIO()
    call_command("import_policy", str(example_file), "--dry-run", stdout=out)

    assert "queue payments: created" in out.getvalue()
    assert "Dry run, nothing written" in out.getvalue()
    assert not Queue.objects.exists()


def test_import_command_reports_errors_and_fails(policy, tmp_path):
    policy["rules"][0]["conditions"][0]["op"] = "like"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(policy))
    err = StringIO()

    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_policy", str(path), stderr=err)

    assert "rules[0].conditions[0].op:" in err.getvalue()
    assert not Queue.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"queues": [', "is not valid JSON"),
        ('{"queues": [NaN]}', "is not valid JSON"),
        (b"\xff\xfe{", "not UTF-8"),
    ],
)
def test_import_command_rejects_unreadable_files(tmp_path, content, message):
    path = tmp_path / "broken.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    with pytest.raises(CommandError, match=message):
        call_command("import_policy", str(path))


def test_import_command_rejects_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_policy", str(tmp_path / "missing.json"))


def test_export_command_writes_json(policy, tmp_path):
    import_policy(policy)
    out = StringIO()
    call_command("export_policy", stdout=out)
    assert json.loads(out.getvalue()) == export_policy()
    assert out.getvalue().startswith('{\n  "queues": [')

    target = tmp_path / "exported.json"
    call_command("export_policy", "--output", str(target), stdout=StringIO())
    assert json.loads(target.read_text()) == export_policy()
