"""No admin page answers 500, whatever is typed into its URL: every changelist filter,
the date drill-down, ordering, paging and search, and every object URL (change,
history, one history version, delete) get garbage and must answer 2xx, 3xx or 4xx."""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import NoReverseMatch, reverse

MODELS = sorted(admin.site._registry, key=lambda model: model._meta.label)
GARBAGE = [
    "abc",
    "99999999999999999999999",  # past bigint
    "²",  # str.isdigit() says yes, the database says no
    "-1",
    "1.5",
    "",
    "\x00",  # PostgreSQL text cannot hold it
    "2024-13-45",
]
# What the changelist itself reads from the query string, besides the filters.
CHANGELIST_PARAMETERS = ["o", "p", "q", "all", "_to_field", "e"]


@pytest.fixture
def demo(db):
    call_command("seed_demo", stdout=io.StringIO())


def admin_url(model, view, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def filter_parameters(client, model) -> list[str]:
    """The query parameters the changelist's filters and date drill-down understand."""
    response = client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    changelist = response.context["cl"]
    names = [name for spec in changelist.filter_specs for name in spec.expected_parameters()]
    hierarchy = changelist.date_hierarchy
    if hierarchy:
        names += [f"{hierarchy}__year", f"{hierarchy}__month", f"{hierarchy}__day"]
    return names + CHANGELIST_PARAMETERS


def test_every_changelist_parameter_with_garbage_is_not_a_server_error(client, superuser, demo):
    # One test over every model, so the demo data is loaded once.
    client.force_login(superuser)
    failures = []
    for model in MODELS:
        for name in filter_parameters(client, model):
            for value in GARBAGE:
                response = client.get(admin_url(model, "changelist"), {name: value})
                if response.status_code >= 500:
                    failures.append(f"{model._meta.label} {name}={value!r}: {response.status_code}")
    assert not failures, failures


def test_every_object_url_with_a_garbage_id_is_not_a_server_error(client, superuser, demo):
    client.force_login(superuser)
    failures = []
    for model in MODELS:
        failures += object_url_failures(client, model)
    assert not failures, failures


def object_url_failures(client, model) -> list[str]:
    model_admin = admin.site._registry[model]
    real = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
    failures = []
    for value in [v for v in GARBAGE if v and "\x00" not in v] + ["%C2%B2"]:
        for view in ("change", "delete", "history"):
            try:
                url = admin_url(model, view, value)
            except NoReverseMatch:
                continue
            status = client.get(url).status_code
            if status >= 500:
                failures.append(f"{view} {value!r}: {status}")
        if real is not None and hasattr(model_admin, "history_form_view"):
            opts = model._meta
            url = f"/admin/{opts.app_label}/{opts.model_name}/{real}/history/{value}/"
            status = client.get(url).status_code
            if status >= 500:
                failures.append(f"history version {value!r}: {status}")
    return [f"{model._meta.label} {failure}" for failure in failures]


def test_every_admin_action_with_a_garbage_selection_is_not_a_server_error(client, rf, superuser, demo):
    client.force_login(superuser)
    request = rf.get("/")
    request.user = superuser
    failures = []
    for model in MODELS:
        actions = admin.site._registry[model].get_actions(request)
        for action in actions:
            for value in GARBAGE:
                data = {"action": action, "index": 0, "_selected_action": [value]}
                status = client.post(admin_url(model, "changelist"), data).status_code
                if status >= 500:
                    failures.append(f"{model._meta.label} {action} {value!r}: {status}")
    assert not failures, failures


def test_the_admins_own_pages_with_garbage_ids_are_not_server_errors(client, superuser, demo):
    client.force_login(superuser)
    for value in ("abc", "99999999999999999999999", "%C2%B2", "-1"):
        assert client.get(f"/admin/reviews/stafftoken/{value}/revoke/").status_code == 404
    for path in ("workspace/nope/next/", "not-a-uuid/review/", "0/claim/", "x/release/"):
        assert client.get(f"/admin/reviews/reviewitem/{path}").status_code < 500


def test_every_registered_admin_parses_its_parameters():
    from reviews.admin.base import GuardedAdmin

    unguarded = [model._meta.label for model, model_admin in admin.site._registry.items()
                 if not isinstance(model_admin, GuardedAdmin)]  # fmt: skip
    assert not unguarded
