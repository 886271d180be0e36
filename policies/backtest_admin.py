"""The backtest in the admin: an action on the rule changelist and a page per rule.

Whoever may change gate rules may backtest them. The page shows counts and item
ids (linked to the review page, which checks its own access), never item content:
policy admins read no item.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from policies.backtest import BacktestError, backtest
from policies.models import GateRule
from reviews.admin.base import parse_id
from reviews.models import Queue

DEFAULT_DAYS = 30
MOMENT_FORMAT = "%Y-%m-%dT%H:%M"


class BacktestWindowForm(forms.Form):
    since = forms.DateTimeField(
        label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=MOMENT_FORMAT),
    )
    until = forms.DateTimeField(
        label="Until (not included)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=MOMENT_FORMAT),
    )
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="Every queue",
        help_text="Only the items placed in this queue before or after.",
    )

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("The window is empty: “From” must be before “Until”.")
        return data


def default_window() -> dict:
    until = timezone.localtime().replace(second=0, microsecond=0) + timedelta(minutes=1)
    return {"since": until - timedelta(days=DEFAULT_DAYS), "until": until}


@admin.action(description=f"Backtest over the last {DEFAULT_DAYS} days", permissions=["change"])
def backtest_selected(model_admin, request, queryset):
    ids = list(queryset.values_list("pk", flat=True)[:2])
    if len(ids) != 1:
        model_admin.message_user(request, "Select exactly one rule to backtest.", messages.WARNING)
        return None
    url = reverse("admin:policies_gaterule_backtest", args=[ids[0]], current_app=model_admin.admin_site.name)
    return HttpResponseRedirect(url)


def backtest_view(model_admin, request, object_id):
    """The report for one rule over a window (default: the last 30 days), with a form to change it."""
    pk = parse_id(object_id)
    rule = GateRule.objects.select_related("queue").filter(pk=pk).first() if pk is not None else None
    if rule is None:
        raise Http404
    if not model_admin.has_change_permission(request, rule):
        raise PermissionDenied

    bound = any(name in request.GET for name in ("since", "until", "queue"))
    form = BacktestWindowForm(request.GET if bound else None, initial=default_window())
    report, error = None, None
    if not bound or form.is_valid():
        window = form.cleaned_data if bound else {**default_window(), "queue": None}
        try:
            report = backtest(
                rule=rule,
                since=window["since"],
                until=window["until"],
                queue=window["queue"].slug if window["queue"] else None,
            )
        except BacktestError as exc:
            error = str(exc)

    site = model_admin.admin_site.name
    rows = []
    if report is not None:
        rows = [
            {
                "transition": t,
                "samples": [
                    (item_id, reverse("admin:reviews_review", args=[item_id], current_app=site))
                    for item_id in t.samples
                ],
            }
            for t in report.transitions
        ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Backtest of “{rule.name}”",
        "opts": model_admin.model._meta,
        "original": rule,
        "rule": rule,
        "form": form,
        "report": report,
        "rows": rows,
        "error": error,
    }
    request.current_app = site
    return TemplateResponse(request, "admin/policies/gaterule/backtest.html", context)
