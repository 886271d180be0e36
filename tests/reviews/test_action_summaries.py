"""What approving will execute: the one-line summary of an action ("If you approve: ...")."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviews.delivery import executors
from reviews.delivery.executors import ActionSummary, Executor, generic_summary, summary_for
from reviews.models import Integration

CAP = executors.MAX_SUMMARY_CHARS + 1  # the cap, and the "…" that marks a cut


def summary(params, action_type: str = "payment.refund") -> ActionSummary:
    result = summary_for({"type": action_type, "params": params})
    assert result is not None
    return result


def assert_plain_and_capped(result: ActionSummary) -> None:
    """Every string is a str the page can encode, at most CAP characters long."""
    texts = [result.type, *(text for pair in result.key_params for text in pair), *result.other_keys]
    for text in texts:
        assert isinstance(text, str) and len(text) <= CAP
        text.encode("utf-8")
    assert len(result.other_keys) <= executors.MAX_OTHER_KEYS


@pytest.fixture
def registered():
    """Register executors for the test only."""
    added = []

    def register(action_type: str, executor: Executor) -> None:
        executors.register(action_type, executor)
        added.append(action_type)

    yield register
    for action_type in added:
        executors._registry.pop(action_type, None)


# --- Amounts in their currency ------------------------------------------------------------


def test_a_refund_shows_the_amount_in_its_currency_then_the_charge_then_the_rest():
    result = summary({"charge_id": "ch_3Mx", "amount": 12.99, "currency": "USD", "reason": "duplicate"})
    assert result == ActionSummary(
        type="payment.refund",
        key_params=[("amount", "12.99 USD"), ("charge_id", "ch_3Mx")],
        other_keys=["reason"],
    )


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (12.99, "USD", "12.99 USD"),
        ("12.99", "usd", "12.99 USD"),  # a numeric string, a lower-case code
        (12, "USD", "12.00 USD"),
        (-5, "USD", "-5.00 USD"),
        (1250, "EUR", "1,250.00 EUR"),
        ("1250.5", "EUR", "1,250.50 EUR"),
        (" 1,250.00 ", "EUR", "1,250.00 EUR"),
        (1500, "JPY", "1,500 JPY"),  # no decimals
        ("1500", "JPY", "1,500 JPY"),
        (50000, "KRW", "50,000 KRW"),
        ("1.25", "KWD", "1.250 KWD"),  # three decimals
        (3, "BHD", "3.000 BHD"),
        (12.999, "USD", "12.999 USD"),  # more decimals than the currency: shown, never rounded away
        (0.1 + 0.2, "USD", "0.30000000000000004 USD"),  # exactly what will be sent
        (12.99, None, "12.99"),
        (12.99, "euros", "12.99 euros"),  # not a currency code: shown as it came
        ("lots", "USD", "lots USD"),
        (True, "USD", "true USD"),
        (None, "USD", "null USD"),
        ("1e999999", "USD", "1e999999 USD"),
        ("12,99", "EUR", "12,99 EUR"),  # a decimal comma is not guessed at
        ({"value": "9.5", "currency": "GBP"}, None, "9.50 GBP"),  # a money object
    ],
)
def test_amounts_are_formatted_in_their_currency_or_shown_as_they_came(amount, currency, shown):
    params = {"amount": amount} if currency is None else {"amount": amount, "currency": currency}
    assert summary(params).key_params == [("amount", shown)]


def test_an_amount_in_minor_units_is_converted_only_when_the_currency_is_known():
    assert summary({"amount_cents": 1299, "currency": "usd"}).key_params == [("amount_cents", "12.99 USD")]
    assert summary({"amount_minor": 1299, "currency": "JPY"}).key_params == [("amount_minor", "1,299 JPY")]
    assert summary({"amount_cents": 1299}).key_params == [("amount_cents", "1299")]


def test_a_currency_without_an_amount_is_just_another_key():
    assert summary({"currency": "USD", "note": "x"}) == ActionSummary(
        type="payment.refund", other_keys=["currency", "note"]
    )


# --- Recipient, target, scope -------------------------------------------------------------


def test_a_transfer_shows_the_amount_then_the_recipient_and_the_iban():
    result = summary(
        {
            "memo": "invoice 7",
            "iban": "DE89 3704 0044 0532 0130 00",
            "amount": "1250",
            "currency": "EUR",
            "recipient": "ACME GmbH",
            "from_account": "ops-main",  # the source is not the recipient
        },
        action_type="bank.transfer",
    )
    assert result == ActionSummary(
        type="bank.transfer",
        key_params=[
            ("amount", "1,250.00 EUR"),
            ("iban", "DE89 3704 0044 0532 0130 00"),
            ("recipient", "ACME GmbH"),
        ],
        other_keys=["memo", "from_account"],
    )


def test_an_access_grant_shows_who_gets_what_on_which_resource():
    result = summary(
        {
            "role": "admin",
            "expires_in": 3600,
            "scopes": ["read", "write"],
            "userEmail": "dana@example.com",
            "resource": "repo:payments-core",
            "environment": "production",
            "justification": "on-call",
        },
        action_type="access.grant",
    )
    assert result == ActionSummary(
        type="access.grant",
        key_params=[
            ("userEmail", "dana@example.com"),
            ("resource", "repo:payments-core"),
            ("role", "admin"),
            ("scopes", "read, write"),
            ("environment", "production"),
        ],
        other_keys=["expires_in", "justification"],
    )


@pytest.mark.parametrize(
    ("key", "role"),
    [
        ("to", "recipient"),
        ("payee", "recipient"),
        ("account", "recipient"),
        ("customerId", "recipient"),  # an id that names a person is a recipient
        ("user-id", "recipient"),
        ("chargeId", "target"),
        ("order", "target"),
        ("record_id", "target"),
        ("id", "target"),
        ("target", "target"),
        ("permission", "scope"),
        ("role_id", "scope"),
        ("env", "scope"),
        ("sender_email", None),
        ("note", None),
    ],
)
def test_parameters_are_recognised_by_the_words_of_their_names(key, role):
    # One parameter per role to place the tested one against: recipients, then targets, then scopes.
    anchors = {"recipient": "beneficiary", "target": "resource", "scope": "permissions"}
    result = summary({key: "value", **{anchor: "x" for anchor in anchors.values()}})
    expected = [name for r, anchor in anchors.items() for name in ([key] if r == role else []) + [anchor]]
    assert [label for label, _ in result.key_params] == expected
    assert result.other_keys == ([key] if role is None else [])


def test_unknown_keys_land_in_other_keys_in_their_original_order():
    result = summary({"zeta": 1, "amount": 5, "alpha": 2, "currency": "USD", "mid": {"x": 1}, "beta": None})
    assert result.key_params == [("amount", "5.00 USD")]
    assert result.other_keys == ["zeta", "alpha", "mid", "beta"]


def test_at_most_three_parameters_per_role_the_rest_are_other_keys():
    result = summary({"to": "a", "cc_email": "b", "bcc_email": "c", "reply_to": "d", "body": "hi"})
    assert result.key_params == [("to", "a"), ("cc_email", "b"), ("bcc_email", "c")]
    assert result.other_keys == ["reply_to", "body"]


def test_values_are_plain_one_line_strings():
    result = summary(
        {"to": ["a@x.org", "b@x.org"], "target": {"kind": "repo", "ids": [1, 2]}, "scope": False}
    )
    assert result.key_params == [
        ("to", "a@x.org, b@x.org"),
        ("target", '{"kind": "repo", "ids": [1, 2]}'),
        ("scope", "false"),
    ]


# --- Odd and hostile input ----------------------------------------------------------------


def deep(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"to": value}
    return value


ODD_ACTIONS = [
    {"type": "x"},
    {"type": "x", "params": None},
    {"type": "x", "params": "not an object"},
    {"type": "x", "params": [1, 2, 3]},
    {"type": "x", "params": {"amount": "lots", "currency": {"code": "USD"}}},
    {"type": "x", "params": {"amount": float("nan"), "currency": 5}},
    {"type": "x", "params": {"amount": float("inf"), "currency": "USD"}},
    {"type": "x", "params": {"amount": 10**5000, "currency": "USD"}},
    {"type": "x", "params": {"amount": "9" * 20_000, "currency": "U" * 20_000}},
    {"type": "x", "params": {"recipient": "A" * 20_000, "k" * 20_000: "v" * 20_000}},
    {"type": "x", "params": {"to": {"nested": {"deeper": ["a" * 20_000] * 1_000}}}},
    {"type": "x", "params": {"to": deep(5_000), "target": [[[[[[]]]]]]}},
    {"type": "x", "params": {f"key_{n}": n for n in range(5_000)}},
    {"type": "x", "params": {1: "non-string key", "to": "\ud800\u202e\x00"}},
    {"type": "t" * 20_000, "params": {}},
]


@pytest.mark.parametrize("action", ODD_ACTIONS, ids=range(len(ODD_ACTIONS)))
def test_odd_actions_never_raise_and_every_string_is_capped(action):
    result = summary_for(action)
    assert isinstance(result, ActionSummary)
    assert_plain_and_capped(result)


def test_long_values_and_keys_are_cut_with_a_mark():
    result = summary({"recipient": "A" * 20_000, "k" * 20_000: 1})
    assert result.key_params == [("recipient", "A" * executors.MAX_SUMMARY_CHARS + "…")]
    assert result.other_keys == ["k" * executors.MAX_SUMMARY_CHARS + "…"]


def test_many_parameters_keep_the_first_fifty_other_keys_and_count_the_rest():
    result = summary({f"key_{n}": n for n in range(5_000)})
    assert result.other_keys == [f"key_{n}" for n in range(executors.MAX_OTHER_KEYS)]
    assert result.other_keys_left_out == 5_000 - executors.MAX_OTHER_KEYS


@pytest.mark.parametrize(
    "action", [None, [], "payment.refund", 5, {}, {"type": ""}, {"type": 5}, {"params": {}}]
)
def test_there_is_no_summary_for_what_is_not_an_object_with_a_type(action):
    assert summary_for(action) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=30), children, max_size=5)
    ),
    max_leaves=30,
)
param_names = (
    st.sampled_from(["amount", "currency", "to", "iban", "charge_id", "role", "scopes", "x"]) | st.text()
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=json_values | st.dictionaries(param_names, json_values, max_size=8))
def test_any_json_parameters_give_a_plain_capped_summary(params):
    assert_plain_and_capped(summary(params, action_type="any.type"))


# --- Executors that know their type -------------------------------------------------------


class RefundExecutor(executors.WebhookExecutor):
    def summarize(self, action):
        params = action["params"]
        return ActionSummary(
            type="Refund",
            key_params=[("charge", f"{params['charge_id']} (card ending 4242)")],
            other_keys=["reason"],
        )


def test_a_registered_executors_own_summary_wins_for_its_type(registered):
    registered("payment.refund", RefundExecutor())
    refund = {"type": "payment.refund", "params": {"charge_id": "ch_1", "amount": 1, "reason": "dup"}}
    assert summary_for(refund) == ActionSummary("Refund", [("charge", "ch_1 (card ending 4242)")], ["reason"])
    # Other types keep the generic summary.
    other = {"type": "payment.charge", "params": {"charge_id": "ch_1"}}
    assert (
        summary_for(other)
        == generic_summary(other)
        == ActionSummary("payment.charge", [("charge_id", "ch_1")])
    )


def test_a_registered_summary_is_capped_and_one_that_fails_falls_back_to_the_generic_one(registered):
    class Verbose(Executor):
        def summarize(self, action):
            return ActionSummary("v" * 20_000, [("label", "x" * 20_000)], ["k"] * 500)

    class Broken(Executor):
        def summarize(self, action):
            return action["params"]["missing"]

    class Wrong(Executor):
        def summarize(self, action):
            return "Refund 12.99"

    registered("verbose", Verbose())
    registered("broken", Broken())
    registered("wrong", Wrong())
    verbose = summary({}, action_type="verbose")
    assert_plain_and_capped(verbose)
    assert verbose.other_keys_left_out == 500 - executors.MAX_OTHER_KEYS
    for action_type in ("broken", "wrong"):
        action = {"type": action_type, "params": {"amount": 12.99, "currency": "USD"}}
        assert summary_for(action) == ActionSummary(action_type, [("amount", "12.99 USD")])


def test_a_record_only_integration_gets_the_same_summary_marked_as_recorded_only(registered):
    registered("payment.refund", RefundExecutor())
    refund = {"type": "payment.refund", "params": {"charge_id": "ch_1"}}
    recording = Integration(slug="demo", action_delivery=Integration.ActionDelivery.RECORD)
    sending = Integration(slug="live", action_delivery=Integration.ActionDelivery.WEBHOOK)
    assert summary_for(refund, recording).recorded_only is True
    assert summary_for(refund, recording).type == "Refund"
    assert summary_for(refund, sending) == summary_for(refund)
    assert summary_for(refund, sending).recorded_only is False
