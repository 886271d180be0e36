"""GET /api/v1/metrics/: the figures worked out by hand, who may ask, bad filters, queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hitl_project.wsgi import application
from reviews import services
from tests.conftest import make_reviewer
from tests.factories import GateConditionFactory, GateRuleFactory, QueueFactory, submission
from tests.metrics import expected
from tests.metrics.conftest import clock
from tests.reviews.test_api import ApiClient, token_client

METRICS = "/api/v1/metrics/"


def moment(value) -> str:
    return serializers.DateTimeField().to_representation(value)


def ask(story, user_or_client, **params):
    client = user_or_client if isinstance(user_or_client, ApiClient) else token_client(user_or_client)
    params.setdefault("since", moment(story.since))
    params.setdefault("until", moment(story.until))
    with clock(story.now):
        return client.get(METRICS, params)


def test_compliance_gets_every_queue_with_the_figures_worked_out_by_hand(story, compliance):
    response = ask(story, compliance)
    assert response.status_code == 200
    assert response.json() == {
        "since": moment(story.since),
        "until": moment(story.until),
        "queues": [expected.QUEUES[slug] for slug in ("expert", "four-eyes", "general")],
        "reviewers": expected.REVIEWERS_ALL,
        "incidents": expected.INCIDENTS_ALL,
    }


def test_superusers_read_everything_too(story, superuser):
    body = ask(story, superuser).json()
    assert [row["queue"] for row in body["queues"]] == ["expert", "four-eyes", "general"]
    assert body["incidents"] == expected.INCIDENTS_ALL


def test_a_reviewer_sees_only_their_queues(story, reviewer):
    body = ask(story, reviewer).json()
    assert body["queues"] == [expected.QUEUES["four-eyes"], expected.QUEUES["general"]]
    assert body["reviewers"] == expected.REVIEWERS_WITHOUT_EXPERT
    assert body["incidents"] == expected.INCIDENTS_OF_REVIEWER


def test_another_reviewer_sees_the_expert_queue_but_no_queueless_incident(story, other_reviewer):
    body = ask(story, other_reviewer).json()
    assert [row["queue"] for row in body["queues"]] == ["expert", "four-eyes", "general"]
    assert body["reviewers"] == expected.REVIEWERS_ALL
    assert body["incidents"] == expected.incidents(medium=1, high=1, critical=1)


def test_a_reviewer_of_no_queue_gets_an_empty_answer(story, outsider):
    body = ask(story, outsider).json()
    assert body["queues"] == [] and body["reviewers"] == []
    assert body["incidents"] == expected.incidents()


def test_one_queue(story, compliance):
    body = ask(story, compliance, queue="four-eyes").json()
    assert body["queues"] == [expected.QUEUES["four-eyes"]]
    assert body["reviewers"] == [  # F1 (600 s), F2 and F3 each; a tie goes by name
        {"reviewer": "other_reviewer", "decisions": 3, "median_review_seconds": 600.0},
        {"reviewer": "reviewer", "decisions": 3, "median_review_seconds": 600.0},
    ]
    assert body["incidents"] == expected.incidents(medium=1)  # only this queue's: not A1's


@pytest.mark.parametrize("slug", ["expert", "no-such-queue"])
def test_a_queue_the_caller_may_not_read_is_404_like_one_that_does_not_exist(story, reviewer, slug):
    response = ask(story, reviewer, queue=slug)
    assert response.status_code == 404
    assert response.json() == {"detail": "No such queue among those you may read.", "code": "not_found"}


def test_the_window_defaults_to_the_week_before_now(story, compliance):
    with clock(story.now):
        body = token_client(compliance).get(METRICS).json()
    assert (body["since"], body["until"]) == (moment(story.now - timedelta(days=7)), moment(story.now))
    assert body["incidents"] == expected.incidents(low=2, medium=1, high=1, critical=1)  # G0's too
    assert [row["decisions"] for row in body["queues"]] == [1, 3, 3]  # G0 is eight days old


def test_dates_are_whole_days_until_the_end_of_the_last(story, compliance):
    day = story.since.date()
    body = ask(story, compliance, since=day.isoformat(), until=day.isoformat()).json()
    assert body["since"] == f"{day.isoformat()}T00:00:00Z"
    assert body["until"] == f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"


def test_since_alone_runs_until_now(story, compliance):
    body = ask(story, compliance, until="", since=moment(story.now - timedelta(hours=1))).json()
    assert body["until"] == moment(story.now)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-01"}, "until"),
        ({"since": "2025-06-30T25:00"}, "since"),
        ({"since": "2025-06-02", "until": "2025-06-01"}, "until"),
        ({"since": "2025-06-01T10:00Z", "until": "2025-06-01T10:00Z"}, "until"),
        ({"since": "9999-12-31T23:00:00Z", "until": ""}, "since"),  # after now
        ({"until": "9999-12-31"}, "until"),  # its end is past what databases store
        ({"until": "0001-01-02T00:00Z", "since": ""}, "until"),  # no week before it
        ({"queue": "not a slug"}, "queue"),
        ({"since": "x" * 100}, "since"),
    ],
)
def test_bad_filters_are_400_naming_the_field(story, compliance, params, field):
    response = ask(story, compliance, **params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_integrations_are_refused(story, integration):
    api = ApiClient(f"Api-Key {services.issue_api_key(integration=integration)}")
    response = ask(story, api)
    assert response.status_code == 403
    assert set(response.json()) == {"detail", "code"}


def test_policy_admins_are_refused(story, policy_admin):
    assert ask(story, policy_admin).status_code == 403


def test_anonymous_callers_are_refused(story):
    assert ask(story, ApiClient()).status_code in (401, 403)


def test_the_number_of_queries_does_not_grow_with_queues_and_items(story, compliance, integration, reviewer):
    client = token_client(compliance)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert ask(story, client).status_code == 200
        return len(captured)

    before = queries()
    for n in range(4):
        extra = QueueFactory(slug=f"extra-{n}", required_approvals=1)
        extra.reviewer_groups.add(*story.general.reviewer_groups.all())
        rule = GateRuleFactory(name=f"Extra {n}", priority=5, queue=extra)
        GateConditionFactory(rule=rule, field="signals.category", op="eq", value=f"extra-{n}")
        for _ in range(3):
            with clock(story.now - timedelta(hours=2)):
                item = services.submit_item(
                    integration=integration, payload=submission(signals={"category": f"extra-{n}"})
                ).item
            with clock(story.now - timedelta(hours=1)):
                services.decide(item=item, user=reviewer, action="approve", justification="Fine.")
        make_reviewer(f"extra-reviewer-{n}", extra)
    assert len(ask(story, client).json()["queues"]) == 7
    # The token; the caller's roles (staff reader? reads everything? twice: the queues,
    # then the queue-less incidents); the queues; the items decided in the window, the
    # open ones, the reviewers' decisions, their names, the incidents; and where the
    # database has no percentile_cont, the ranked review times of queues and reviewers.
    assert before == queries() == (10 if connection.vendor == "postgresql" else 12)


# --- The OpenAPI document ------------------------------------------------------------------

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def headers(compliance) -> Iterator[dict[str, str]]:
    """Compliance's token; requests through the WSGI handler stay in the test transaction
    (it would close "old" connections as each starts and ends; Django's client does not)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {"Authorization": f"Token {Token.objects.get_or_create(user=compliance)[0].key}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_answer_matches_the_schema(story, headers):
    case = schema[METRICS]["GET"].Case(query={"since": moment(story.since), "until": moment(story.until)})
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    assert response.status_code == 200 and len(response.json()["queues"]) == 3


@given(data=st.data())
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_filters_get_a_documented_answer(story, headers, data):
    case = data.draw(schema[METRICS]["GET"].as_strategy())
    case.call_and_validate(headers=headers, checks=CHECKS)
