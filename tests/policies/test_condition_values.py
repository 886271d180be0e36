"""A gate condition's value in the admin is typed as a person would write it.

Numbers, true/false/null, JSON lists and objects are read as JSON; anything else is
plain text, taken as a string. The model (GateCondition.clean) still judges whether
the value suits the operator, and its errors show on the form.
"""

from __future__ import annotations

import pytest

from policies.models import GateRule
from tests.factories import GateConditionFactory, GateRuleFactory
from tests.policies.test_policy_admin import ADD, change_url, rule_form

pytestmark = pytest.mark.django_db


def add_rule(client, queue, *conditions: tuple[str, str, str]):
    rows = [
        {"field": field, "op": op, "value": value, "position": str(index)}
        for index, (field, op, value) in enumerate(conditions)
    ]
    return client.post(ADD, rule_form(queue=str(queue.pk), new_conditions=rows))


def stored_values() -> list:
    return [c.value for c in GateRule.objects.get(name="Large refunds").conditions.all()]


@pytest.mark.parametrize(
    ("field", "op", "typed", "stored"),
    [
        ("metadata.region", "eq", "EU", "EU"),
        ("metadata.reason", "ne", "chargeback fraud", "chargeback fraud"),
        ("metadata.region", "eq", "  EU  ", "EU"),  # the surrounding blanks of plain text go
        ("output.text", "matches", r"refund\s+\d+ EUR", r"refund\s+\d+ EUR"),  # no JSON escaping needed
        ("metadata.note", "eq", "it's [draft]", "it's [draft]"),
        ("metadata.score", "eq", "NaN", "NaN"),  # not a float NaN, which PostgreSQL's jsonb refuses
    ],
)
def test_plain_text_is_taken_as_a_string(client, policy_admin, queue, field, op, typed, stored):
    client.force_login(policy_admin)

    response = add_rule(client, queue, (field, op, typed))

    assert response.status_code == 302, response.context and response.context["errors"]
    assert stored_values() == [stored]


def test_numbers_booleans_null_lists_and_objects_are_json_and_a_quoted_string_is_the_plain_one(
    client, policy_admin, queue
):
    client.force_login(policy_admin)

    response = add_rule(
        client,
        queue,
        ("signals.confidence", "lt", "0.7"),
        ("signals.rubric_score", "lte", "2"),
        ("metadata.vip", "eq", "true"),
        ("metadata.test", "eq", "false"),
        ("metadata.region", "exists", "null"),
        ("metadata.country", "exists", ""),
        ("action.type", "in", '["payment.refund", "payment.payout"]'),
        ("metadata.customer", "eq", '{"tier": "gold"}'),
        ("external_id", "eq", '"123"'),  # quoted: the string, not the number
        ("metadata.flag", "eq", '"true"'),
        ("metadata.region", "eq", '"EU"'),
        ("metadata.region", "eq", "EU"),
        ("metadata.empty", "eq", '""'),
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    assert stored_values() == [
        0.7,
        2,
        True,
        False,
        None,
        None,
        ["payment.refund", "payment.payout"],
        {"tier": "gold"},
        "123",
        "true",
        "EU",
        "EU",
        "",
    ]
    assert type(stored_values()[1]) is int


@pytest.mark.parametrize(
    ("field", "op", "typed", "message"),
    [
        ("signals.confidence", "lt", "true", "compares with a number or a string"),
        ("action.type", "in", "payment.refund", "needs a non-empty list of values"),
        ("action.type", "in", "[]", "needs a non-empty list of values"),
        ("metadata.region", "in", "[EU, UK]", "needs a non-empty list of values"),  # not JSON: text
        ("metadata.region", "eq", "", "needs a value"),  # empty is no value (as before)
        ("output.text", "matches", "(unclosed", "Not a regular expression"),
    ],
)
def test_a_value_that_does_not_suit_the_operator_is_the_models_form_error(
    client, policy_admin, queue, field, op, typed, message
):
    client.force_login(policy_admin)

    response = add_rule(client, queue, (field, op, typed))

    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert "Enter a valid JSON" not in html
    assert f'value="{typed}"' in html or typed == ""  # shown again as typed
    assert not GateRule.objects.exists()


def test_the_value_field_explains_what_to_type(client, policy_admin):
    client.force_login(policy_admin)

    html = client.get(ADD).content.decode()

    assert "plain text is taken as a string" in html
    assert 'placeholder="0.7 · EU · [&quot;EU&quot;, &quot;UK&quot;]"' in html


def test_a_stored_string_is_shown_as_a_person_would_type_it(client, policy_admin, queue):
    rule = GateRuleFactory(name="Regions", queue=queue)
    GateConditionFactory(rule=rule, field="metadata.region", op="eq", value="EU", position=0)
    GateConditionFactory(rule=rule, field="external_id", op="eq", value="123", position=1)
    GateConditionFactory(rule=rule, field="action.type", op="in", value=["a", "b"], position=2)
    client.force_login(policy_admin)

    html = client.get(change_url(rule)).content.decode()

    assert 'name="conditions-0-value" value="EU"' in html
    # Plain 123 would read back as a number, so this string stays quoted.
    assert 'name="conditions-1-value" value="&quot;123&quot;"' in html
    assert 'name="conditions-2-value" value="[&quot;a&quot;, &quot;b&quot;]"' in html


def test_saving_values_as_shown_keeps_the_version_and_a_changed_one_bumps_it(client, policy_admin, queue):
    rule = GateRuleFactory(name="Regions", queue=queue)
    region = GateConditionFactory(rule=rule, field="metadata.region", op="eq", value="EU", position=0)
    number_like = GateConditionFactory(rule=rule, field="external_id", op="eq", value="123", position=1)
    threshold = GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.7, position=2)
    client.force_login(policy_admin)
    as_shown = [
        {"instance": region, "value": "EU"},
        {"instance": number_like, "value": '"123"'},
        {"instance": threshold, "value": "0.7"},
    ]

    assert client.post(change_url(rule), rule_form(rule, conditions=as_shown)).status_code == 302
    rule.refresh_from_db()
    assert rule.version == 1

    as_shown[0]["value"] = "UK"
    assert client.post(change_url(rule), rule_form(rule, conditions=as_shown)).status_code == 302
    rule.refresh_from_db()
    assert rule.version == 2
    assert [c.value for c in rule.conditions.all()] == ["UK", "123", 0.7]
    assert rule.history.latest().version == 2
