"""Every admin page opens for a superuser, on demo data; history cannot be rewritten."""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from reviews.models import Decision, ReviewItem

MODELS = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.fixture
def demo(db):
    call_command("seed_demo", stdout=io.StringIO())


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model._meta.label)
def test_every_changelist_add_and_change_page_opens(client, rf, superuser, demo, model):
    client.force_login(superuser)
    assert client.get(_url(model, "changelist")).status_code == 200
    request = rf.get("/")
    request.user = superuser
    addable = admin.site._registry[model].has_add_permission(request)
    assert client.get(_url(model, "add")).status_code == (200 if addable else 403)
    model_admin = admin.site._registry[model]
    obj = model._default_manager.order_by("pk").first()
    if obj is not None:
        assert client.get(_url(model, "change", obj.pk)).status_code == 200
        if hasattr(model_admin, "history_view"):
            assert client.get(_url(model, "history", obj.pk)).status_code == 200


def test_nobody_can_change_or_delete_a_decision_in_the_admin(client, superuser, demo):
    client.force_login(superuser)
    decision = Decision.objects.first()
    before = Decision.objects.count()
    client.post(_url(Decision, "change", decision.pk), {"justification": "rewritten"})
    client.post(_url(Decision, "delete", decision.pk), {"post": "yes"})
    decision.refresh_from_db()
    assert decision.justification != "rewritten"
    assert Decision.objects.count() == before


def test_history_versions_cannot_be_saved_back(client, superuser, demo):
    client.force_login(superuser)
    item = ReviewItem.objects.exclude(queue=None).first()
    version = item.history.earliest()
    url = reverse("admin:reviews_reviewitem_simple_history", args=[item.pk, version.history_id])
    versions = item.history.count()
    assert client.get(url).status_code == 200
    assert client.post(url, {"external_id": "rewritten"}).status_code == 403
    assert item.history.count() == versions
    item.refresh_from_db()
    assert item.external_id != "rewritten"


def test_history_of_another_queues_item_is_404(client, demo):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    outsider = UserFactory(username="staff-outsider", is_staff=True)
    outsider.groups.add(Group.objects.get(name="Reviewers"))
    client.force_login(outsider)
    item = ReviewItem.objects.exclude(queue=None).first()
    version = item.history.earliest()
    assert client.get(_url(ReviewItem, "history", item.pk)).status_code == 404
    url = reverse("admin:reviews_reviewitem_simple_history", args=[item.pk, version.history_id])
    assert client.get(url).status_code == 404
    assert client.get(_url(ReviewItem, "change", item.pk)).status_code in (302, 404)


def test_changelist_query_count_does_not_grow_with_items(
    client, superuser, demo, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(superuser)
    with CaptureQueriesContext(connection) as before:
        assert client.get(_url(ReviewItem, "changelist")).status_code == 200
    from reviews import services
    from reviews.models import Integration
    from tests.factories import submission

    integration = Integration.objects.get(slug="demo-assistant")
    for index in range(30):
        services.submit_item(integration=integration, payload=submission(external_id=f"more-{index}"))
    with django_assert_max_num_queries(len(before)):
        assert client.get(_url(ReviewItem, "changelist")).status_code == 200


@pytest.mark.parametrize(
    "model", ["queue", "incident", "backlogitem", "decision", "reviewitem", "outboxmessage"]
)
def test_a_reviewer_sees_only_rows_of_their_queues(client, demo, model):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from reviews import services
    from reviews.models import Queue

    for queue in Queue.objects.all():  # an incident in every queue
        item = ReviewItem.objects.filter(queue=queue).first()
        if item:
            services.report_incident(item=item, severity="low", description="Seen in the wild.")
    reviewer = get_user_model().objects.get(username="reviewer")
    group = Group.objects.get(name="payments-reviewers")
    reviewer.groups.set([Group.objects.get(name="Reviewers"), group])
    client.force_login(reviewer)
    response = client.get(f"/admin/reviews/{model}/")
    assert response.status_code == 200
    others = {queue.name for queue in Queue.objects.exclude(reviewer_groups=group)}

    def queue_name(row):
        if model == "queue":
            return row.name
        item = getattr(row, "item", None)
        queue = item.queue if item is not None else getattr(row, "queue", None)
        return queue.name if queue else None

    shown = {queue_name(row) for row in response.context["cl"].result_list} - {None}
    assert shown == {"Money movement"}
    assert not shown & others


def test_reason_codes_cannot_be_deleted_since_decisions_cite_them(client, demo, policy_admin, superuser):
    from reviews.models import ReasonCode

    code = ReasonCode.objects.filter(decisions__isnull=False).first()
    cited = list(code.decisions.values_list("pk", flat=True))
    for user in (policy_admin, superuser):
        client.force_login(user)
        assert client.post(_url(ReasonCode, "delete", code.pk), {"post": "yes"}).status_code == 403
    assert list(code.decisions.values_list("pk", flat=True)) == cited
    assert "delete_reasoncode" not in {p.codename for p in policy_admin.groups.get().permissions.all()}


def test_an_integration_url_on_a_private_address_is_a_form_error(client, policy_admin, settings):
    from reviews.models import Integration

    settings.HITL_WEBHOOK_ALLOW_PRIVATE = False
    integration = Integration.objects.create(name="Bot", slug="bot")
    client.force_login(policy_admin)
    response = client.post(
        _url(Integration, "change", integration.pk),
        {
            "name": "Bot",
            "slug": "bot",
            "is_active": "on",
            "callback_url": "http://169.254.169.254/latest/",
            "action_url": "",
            "api_keys-TOTAL_FORMS": 0,
            "api_keys-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200 and "callback_url" in response.context["adminform"].form.errors
    integration.refresh_from_db()
    assert integration.callback_url == ""
