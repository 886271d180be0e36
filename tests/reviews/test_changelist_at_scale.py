"""The item changelist stays cheap on big tables: counts stop at a cap, the reviewer
filter looks items up by key, and dates filter by range."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews import services
from reviews.admin.base import CappedCountPaginator
from reviews.models import ReviewItem
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, submission

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:reviews_reviewitem_changelist")


@pytest.fixture
def items(integration, queue):
    GateRuleFactory(name="Review everything", queue=queue)
    return [
        services.submit_item(integration=integration, payload=submission(external_id=f"cl-{n}")).item
        for n in range(7)
    ]


def test_past_the_cap_the_list_says_more_than_and_never_counts_everything(
    client, superuser, items, monkeypatch
):
    monkeypatch.setattr(CappedCountPaginator, "CAP", 5)
    client.force_login(superuser)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "more than 5 review items" in response.content.decode()
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 6" in sql for sql in counts), counts
    # In no order: a count that follows the list's order reads rows in that order.
    assert not any("ORDER BY" in sql.upper() for sql in counts), counts


def test_under_the_cap_the_list_gives_the_exact_count(client, superuser, items):
    client.force_login(superuser)
    response = client.get(CHANGELIST, {"q": "cl-3"})
    assert response.status_code == 200
    assert "1 review item" in response.content.decode()
    assert "more than" not in response.content.decode()


def test_the_reviewer_filter_finds_what_they_decided_and_what_they_hold(client, superuser, items, queue):
    first, second = make_reviewer("first", queue), make_reviewer("second", queue)
    services.decide(item=items[0], user=first, action="approve", justification="Fine.")
    services.claim(item=items[1], user=first)
    services.claim(item=items[2], user=second)
    client.force_login(superuser)

    response = client.get(CHANGELIST, {"reviewer": first.pk})
    shown = {item.external_id for item in response.context["cl"].result_list}
    assert shown == {"cl-0", "cl-1"}
    lookups = dict(response.context["cl"].get_filters(response.wsgi_request)[0][4].lookup_choices)
    assert lookups == {str(first.pk): "first"}  # only people who decided something


def test_submission_dates_filter_by_range(client, superuser, items):
    old = items[0]
    ReviewItem.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    client.force_login(superuser)
    # The "Past 7 days" choice of the list's date filter, as its link gives it.
    changelist = client.get(CHANGELIST).context["cl"]
    choices = changelist.filter_specs[-1].choices(changelist)
    past_week = next(choice for choice in choices if choice["display"] == "Past 7 days")
    response = client.get(f"{CHANGELIST}{past_week['query_string']}")
    assert response.status_code == 200
    shown = {item.pk for item in response.context["cl"].result_list}
    assert old.pk not in shown and len(shown) == 6


def test_a_reviewer_is_offered_only_people_who_decided_in_their_own_queues(client, items, queue):
    from django.contrib.auth.models import Group

    from tests.factories import QueueFactory

    other = QueueFactory(slug="elsewhere", name="Elsewhere")
    other.reviewer_groups.add(Group.objects.create(name="elsewhere-reviewers"))
    colleague, stranger = make_reviewer("colleague", queue), make_reviewer("stranger", other)
    me = make_reviewer("me", queue)
    services.decide(item=items[0], user=colleague, action="approve", justification="Fine.")
    ReviewItem.objects.filter(pk=items[1].pk).update(queue=other)  # an item of the other queue
    services.decide(item=items[1], user=stranger, action="approve", justification="Fine.")

    client.force_login(me)
    response = client.get(CHANGELIST)
    reviewer_filter = next(
        spec
        for spec in response.context["cl"].filter_specs
        if getattr(spec, "parameter_name", "") == "reviewer"
    )
    assert dict(reviewer_filter.lookup_choices) == {str(colleague.pk): "colleague"}
