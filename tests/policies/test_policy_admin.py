"""Gate rules in the admin: permissions, versioning on save, and the safety policy page."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from policies.models import GateCondition, GateRule
from tests.factories import GateConditionFactory, GateRuleFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:policies_gaterule_changelist")
ADD = reverse("admin:policies_gaterule_add")
SAFETY_POLICY = reverse("admin:policies_safety_policy")


def change_url(rule: GateRule) -> str:
    return reverse("admin:policies_gaterule_change", args=[rule.pk])


def rule_form(rule: GateRule | None = None, conditions=(), new_conditions=(), **fields) -> dict:
    """POST data for the rule change form.

    `conditions` are existing rows, sent unchanged unless given as a dict with an
    "instance" and the keys to change (or "delete"); `new_conditions` are added.
    """
    data = {
        "name": "Large refunds",
        "description": "Refunds above 100 need a human.",
        "enabled": "on",
        "mode": "enforce",
        "priority": "15",
        "match": "all",
        "sample_rate": "1",
        "outcome": "review",
        "queue": "",
        "risk_level": "high",
    }
    if rule is not None:
        data.update(
            name=rule.name,
            description=rule.description,
            mode=rule.mode,
            priority=str(rule.priority),
            match=rule.match,
            sample_rate=str(rule.sample_rate),
            outcome=rule.outcome,
            queue=str(rule.queue_id or ""),
            risk_level=rule.risk_level,
        )
        if not rule.enabled:
            del data["enabled"]
    data.update(fields)
    rows = []
    for condition in conditions:
        row = condition if isinstance(condition, dict) else {}
        original = row.get("instance", condition)
        rows.append(
            {
                "id": str(original.pk),
                "rule": str(original.rule_id),
                "field": row.get("field", original.field),
                "op": row.get("op", original.op),
                "value": row.get("value", _json(original.value)),
                "position": str(row.get("position", original.position)),
                **({"DELETE": "on"} if row.get("delete") else {}),
            }
        )
    for condition in new_conditions:
        rows.append({"id": "", "rule": str(rule.pk) if rule else "", "position": "0", **condition})
    data.update(
        {
            "conditions-TOTAL_FORMS": str(len(rows)),
            "conditions-INITIAL_FORMS": str(len(conditions)),
            "conditions-MIN_NUM_FORMS": "0",
            "conditions-MAX_NUM_FORMS": "1000",
        }
    )
    for index, row in enumerate(rows):
        data.update({f"conditions-{index}-{key}": value for key, value in row.items()})
    return data


def _json(value) -> str:
    return "null" if value is None else json.dumps(value)


@pytest.fixture
def rule(queue):
    rule = GateRuleFactory(
        name="Low confidence",
        description="Model self-reported uncertainty.",
        queue=queue,
        priority=50,
        match="any",
        risk_level="low",
    )
    GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.7, position=0)
    GateConditionFactory(rule=rule, field="signals.rubric_score", op="lt", value=3, position=1)
    return rule


# --- Editing rules ---------------------------------------------------------------------------


def test_policy_admin_opens_changelist_add_and_change_pages(client, policy_admin, rule):
    client.force_login(policy_admin)

    assert client.get(CHANGELIST).status_code == 200
    assert client.get(ADD).status_code == 200
    response = client.get(change_url(rule))
    assert response.status_code == 200
    assert b"signals.confidence" in response.content
    assert client.get(reverse("admin:policies_gaterule_history", args=[rule.pk])).status_code == 200


def test_changelist_links_to_the_safety_policy(client, policy_admin, rule):
    client.force_login(policy_admin)
    response = client.get(CHANGELIST)
    assert SAFETY_POLICY.encode() in response.content


def test_policy_admin_adds_a_rule_with_conditions(client, policy_admin, queue):
    client.force_login(policy_admin)

    response = client.post(
        ADD,
        rule_form(
            queue=str(queue.pk),
            new_conditions=[
                {"field": "action.type", "op": "eq", "value": '"payment.refund"', "position": "0"},
                {"field": "action.params.amount", "op": "gt", "value": "100", "position": "1"},
            ],
        ),
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    rule = GateRule.objects.get(name="Large refunds")
    assert rule.version == 1
    assert [(c.field, c.op, c.value) for c in rule.conditions.all()] == [
        ("action.type", "eq", "payment.refund"),
        ("action.params.amount", "gt", 100),
    ]
    assert rule.history.latest().history_user == policy_admin


def test_saving_a_changed_rule_bumps_the_version_once(client, policy_admin, rule):
    client.force_login(policy_admin)
    first, second = rule.conditions.all()

    response = client.post(
        change_url(rule),
        rule_form(rule, conditions=[{"instance": first, "value": "0.6"}, second], priority="45"),
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.version == 2
    assert rule.priority == 45
    assert [c.value for c in rule.conditions.all()] == [0.6, 3]
    assert rule.history.latest().version == 2


def test_changing_only_a_condition_bumps_the_version(client, policy_admin, rule):
    client.force_login(policy_admin)
    first, second = rule.conditions.all()

    response = client.post(
        change_url(rule), rule_form(rule, conditions=[first, {"instance": second, "delete": True}])
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.version == 2
    assert list(rule.conditions.values_list("field", flat=True)) == ["signals.confidence"]


def test_saving_an_unchanged_rule_keeps_its_version(client, policy_admin, rule):
    client.force_login(policy_admin)

    response = client.post(change_url(rule), rule_form(rule, conditions=list(rule.conditions.all())))

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.version == 1


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"field": "signals.confidence", "op": "lt", "value": '["a"]'}, "compares with a number or a string"),
        ({"field": "action.type", "op": "matches", "value": '"(unclosed"'}, "Not a regular expression"),
        ({"field": "password", "op": "exists", "value": ""}, "is not a submission field"),
    ],
)
def test_invalid_condition_shows_a_form_error(client, policy_admin, queue, condition, message):
    client.force_login(policy_admin)

    response = client.post(ADD, rule_form(queue=str(queue.pk), new_conditions=[condition]))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not GateRule.objects.exists()


def test_review_rule_without_queue_shows_a_form_error(client, policy_admin, rule):
    client.force_login(policy_admin)

    response = client.post(
        change_url(rule), rule_form(rule, conditions=list(rule.conditions.all()), queue="")
    )

    assert response.status_code == 200
    assert "send items to a queue" in response.content.decode()
    rule.refresh_from_db()
    assert rule.queue_id is not None and rule.version == 1


def test_reviewer_can_view_but_not_change_rules(client, reviewer, rule):
    client.force_login(reviewer)

    assert client.get(CHANGELIST).status_code == 200
    assert client.get(change_url(rule)).status_code == 200
    assert client.post(ADD, rule_form(queue=str(rule.queue_id))).status_code == 403
    response = client.post(
        change_url(rule), rule_form(rule, conditions=list(rule.conditions.all()), priority="1")
    )
    assert response.status_code == 403
    rule.refresh_from_db()
    assert (rule.priority, rule.version) == (50, 1)
    assert not GateRule.objects.filter(name="Large refunds").exists()


def test_history_cannot_be_reverted(client, policy_admin, rule):
    client.force_login(policy_admin)
    record = rule.history.latest()
    url = reverse("admin:policies_gaterule_simple_history", args=[rule.pk, record.history_id])

    assert client.get(url).status_code == 200
    assert client.post(url, rule_form(rule, priority="1")).status_code == 403
    rule.refresh_from_db()
    assert rule.priority == 50


def test_policy_admin_may_delete_rules(client, policy_admin, rule):
    client.force_login(policy_admin)
    response = client.post(reverse("admin:policies_gaterule_delete", args=[rule.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not GateRule.objects.exists()
    assert not GateCondition.objects.exists()


# --- The safety policy page ----------------------------------------------------------------------


@pytest.fixture
def policy_rules(rule):
    payments = QueueFactory(slug="payments", name="Money movement", sla_minutes=90, required_approvals=2)
    transfers = GateRuleFactory(name="Irreversible actions", queue=payments, priority=10, risk_level="high")
    GateConditionFactory(
        rule=transfers, field="action.type", op="in", value=["payment.transfer", "payment.refund"]
    )
    blocked = GateRuleFactory(name="Known-bad content", outcome="block", queue=None, priority=1)
    GateConditionFactory(rule=blocked, field="signals.filter_flags", op="contains", value="csam")
    sampled = GateRuleFactory(
        name="Sample everything", outcome="spot_check", queue=rule.queue, sample_rate=0.05
    )
    watched = GateRuleFactory(name="Watch unattributed", mode="shadow", queue=rule.queue)
    GateConditionFactory(rule=watched, field="metadata.user_id", op="not_exists", value=None)
    GateRuleFactory(name="Old experiment", enabled=False, queue=rule.queue)
    return [rule, transfers, blocked, sampled, watched]


@pytest.mark.parametrize("persona", ["reviewer", "compliance", "policy_admin"])
def test_safety_policy_reads_as_plain_english(client, request, policy_rules, persona):
    client.force_login(request.getfixturevalue(persona))

    response = client.get(SAFETY_POLICY)

    assert response.status_code == 200
    assert response.templates[0].name == "admin/policies/safety_policy.html"
    html = response.content.decode()
    assert "Anything no rule matches is auto-approved." in html
    assert "signals.confidence</span>" not in html  # the whole condition is one phrase
    assert "signals.confidence is less than 0.7" in html
    assert '<span class="joiner">or</span>' in html
    assert "action.type is one of “payment.transfer” or “payment.refund”" in html
    assert "metadata.user_id is missing" in html
    assert "Money movement" in html and "1 hour 30 minutes" in html and "four-eyes" in html
    assert "applies to 5% of matching items" in html
    assert "Model self-reported uncertainty." in html
    # Outcome sections in precedence order, then shadow and disabled rules.
    order = [
        "<h2>Blocked</h2>",
        "Known-bad content",
        "<h2>Held for review</h2>",
        "Irreversible actions",
        "Low confidence",
        "<h2>Spot-checked</h2>",
        "Sample everything",
        "<h2>Auto-approved</h2>",
        "<h2>Watched, not enforced</h2>",
        "Watch unattributed",
        "<h2>Disabled</h2>",
        "Old experiment",
    ]
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_safety_policy_needs_a_staff_login(client):
    response = client.get(SAFETY_POLICY)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]

    client.force_login(UserFactory(username="customer"))
    assert client.get(SAFETY_POLICY).status_code == 302


def test_safety_policy_needs_the_view_permission(client):
    staff = UserFactory(username="staff-without-roles", is_staff=True)
    client.force_login(staff)
    assert client.get(SAFETY_POLICY).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_gaterule"))
    assert client.get(SAFETY_POLICY).status_code == 200


def _queries(client) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(SAFETY_POLICY).status_code == 200
    return [query["sql"] for query in queries.captured_queries]


def test_safety_policy_query_count_does_not_grow_with_rules(client, compliance, queue):
    client.force_login(compliance)

    def add_rules(count: int) -> None:
        for _ in range(count):
            new = GateRuleFactory(queue=QueueFactory())
            GateConditionFactory(rule=new)
            GateConditionFactory(rule=new, field="signals.category", op="eq", value="finance")

    add_rules(2)
    few = _queries(client)
    add_rules(10)
    many = _queries(client)

    assert len(many) == len(few)
    # One query for the rules with their queues, one for all their conditions.
    assert sum('FROM "policies_gaterule"' in sql for sql in many) == 1
    assert sum('FROM "policies_gatecondition"' in sql for sql in many) == 1
    assert not any('FROM "reviews_queue"' in sql for sql in many)


def test_safety_policy_says_escalation_keeps_four_eyes(client, policy_admin):
    client.force_login(policy_admin)
    page = client.get(SAFETY_POLICY).content.decode()
    assert 'id="four-eyes-rule"' in page
    assert "cannot be the only one to approve it afterwards" in page
