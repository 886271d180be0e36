"""Gate rules in the admin: editing with versioned history, and the readable safety policy page."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.urls import path, reverse

from policies.backtest_admin import backtest_selected, backtest_view
from policies.models import VALUELESS_OPERATORS, GateCondition, GateRule, Match, Mode, Operator, Outcome
from policies.services import record_new_rule, record_rule_change
from reviews.admin.base import ReadOnlyHistoryAdmin
from reviews.admin.presentation import duration_in_words

# Section headings of the safety policy page, in outcome precedence order.
OUTCOME_SECTIONS = (
    (Outcome.BLOCK, "Blocked", "Never executed or delivered."),
    (Outcome.REVIEW, "Held for review", "Nothing happens until a reviewer approves or edits the item."),
    (Outcome.SPOT_CHECK, "Spot-checked", "Answered at once; a reviewer checks the item afterwards."),
    (Outcome.AUTO_APPROVE, "Auto-approved", "Answered at once, without review."),
)
OPERATOR_LABELS = dict(Operator.choices)


def _value_in_words(value) -> str:
    if isinstance(value, list):
        words = [_value_in_words(v) for v in value]
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    if isinstance(value, str):
        return f"“{value}”"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def condition_in_words(condition: GateCondition) -> str:
    """``signals.confidence is less than 0.7``."""
    label = OPERATOR_LABELS.get(condition.op, condition.op)
    if condition.op in VALUELESS_OPERATORS:
        return f"{condition.field} {label}"
    return f"{condition.field} {label} {_value_in_words(condition.value)}"


@dataclass
class RuleSummary:
    """One rule as the safety policy page shows it."""

    rule: GateRule
    url: str
    conditions: list[str] = field(default_factory=list)

    @property
    def joiner(self) -> str:
        return "or" if self.rule.match == Match.ANY else "and"

    @property
    def sample_percent(self) -> str | None:
        rate = self.rule.sample_rate
        return f"{rate * 100:g}%" if rate < 1 else None

    @property
    def queue_sla(self) -> str | None:
        return duration_in_words(self.rule.queue.sla_minutes) if self.rule.queue_id else None


class _AsTyped(str):
    """Text exactly as the person typed it, shown again when the form comes back with errors."""


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: plain text, like any other word


def read_condition_value(text: str):
    """What a person typed as a condition's value: JSON when it reads as JSON (a number,
    true, false, null, a "quoted string", a list or an object), otherwise the text itself.

    So ``abc`` and ``"abc"`` are both the string abc, ``0.7`` is a number, ``"0.7"`` a
    string. An empty field is no value (null).
    """
    if text == "":
        return None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError:  # not JSON (JSONDecodeError is a ValueError): a string
        return text


def value_as_typed(value) -> str:
    """The inverse, for showing a stored value: a string without quotes when typing it
    back would read as that same string, JSON otherwise (``"123"`` stays quoted)."""
    if value is None:
        return ""
    if isinstance(value, str) and value == value.strip() and read_condition_value(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _unstorable(value) -> str | None:
    """Why JSON storage would refuse a value read from JSON text, if it would."""
    if isinstance(value, float) and not math.isfinite(value):
        return "not_finite"  # 1e999 reads as infinity, which JSON cannot hold
    if isinstance(value, str) and "\x00" in value:
        return "nul"  # PostgreSQL's jsonb refuses \u0000
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        children = value
    else:
        children = []
    for child in children:
        problem = _unstorable(child)
        if problem:
            return problem
    return None


class ConditionValueField(forms.CharField):
    """A condition's value as a person types it (see `read_condition_value`).

    Only the reading is done here; whether the value suits the operator is
    GateCondition.clean's to judge, so its messages show on this field.
    """

    default_error_messages = {
        "not_finite": "That number is too large to store.",
        "nul": "A value cannot contain the NUL character (\\u0000).",
    }

    def to_python(self, value):
        value = read_condition_value(super().to_python(value))
        problem = _unstorable(value)
        if problem:
            raise ValidationError(self.error_messages[problem], code=problem)
        return value

    def bound_data(self, data, initial):
        return None if data is None else _AsTyped(data)

    def prepare_value(self, value):
        return value if isinstance(value, _AsTyped) else value_as_typed(value)

    def has_changed(self, initial, data) -> bool:
        # As JSON, so that true is not 1 and 1 is not 1.0, while "EU" and EU are the same.
        try:
            typed = self.to_python(data)
        except ValidationError:
            return True
        return json.dumps(initial, sort_keys=True) != json.dumps(typed, sort_keys=True)


CONDITION_VALUE_HELP = (
    'Type it as you would write it: a number (0.7), true, false or null, a JSON list (["EU", "UK"]) '
    'or object; plain text is taken as a string, so EU means "EU". Quote text that would read as '
    'something else ("123", "true"). Leave it empty for "is present" and "is missing".'
)


class GateConditionForm(forms.ModelForm):
    value = ConditionValueField(
        required=False,
        strip=True,
        help_text=CONDITION_VALUE_HELP,
        widget=forms.TextInput(attrs={"class": "vTextField", "placeholder": '0.7 · EU · ["EU", "UK"]'}),
    )

    class Meta:
        model = GateCondition
        fields = ["field", "op", "value", "position"]


class GateConditionInline(admin.TabularInline):
    model = GateCondition
    form = GateConditionForm
    fields = ["field", "op", "value", "position"]
    extra = 1


@admin.register(GateRule)
class GateRuleAdmin(ReadOnlyHistoryAdmin):
    list_display = [
        "name",
        "enabled",
        "mode",
        "priority",
        "outcome",
        "queue",
        "risk_level",
        "sample_rate",
        "version",
    ]
    list_filter = ["enabled", "outcome", "mode", "queue", "risk_level"]
    search_fields = ["name", "description"]
    list_select_related = ["queue"]
    readonly_fields = ["version"]
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled", "mode", "version"]}),
        ("When it applies", {"fields": ["priority", "match", "sample_rate"]}),
        ("What it does", {"fields": ["outcome", "queue", "risk_level"]}),
    ]
    inlines = [GateConditionInline]
    change_list_template = "admin/policies/gaterule/change_list.html"
    actions = [backtest_selected]

    def save_model(self, request, obj, form, change):
        # The version (the history row) is written once the conditions are saved too.
        obj.save_without_historical_record()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # One new version per save, whether the rule, its conditions or both changed.
        if not change:
            record_new_rule(rule=form.instance)
        elif form.has_changed() or any(formset.has_changed() for formset in formsets):
            record_rule_change(rule=form.instance)

    def get_urls(self):
        safety_policy = path(
            "safety-policy/",
            self.admin_site.admin_view(self.safety_policy_view),
            name="policies_safety_policy",
        )
        backtest = path(
            "<path:object_id>/backtest/",
            self.admin_site.admin_view(self.backtest_view),
            name="policies_gaterule_backtest",
        )
        return [safety_policy, backtest, *super().get_urls()]

    def backtest_view(self, request, object_id):
        """The rule backtested over a past window (`policies.backtest_admin`)."""
        return backtest_view(self, request, object_id)

    def safety_policy_view(self, request):
        """The rules in force in plain English, so engineers know when outputs get queued."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rules = (
            GateRule.objects.select_related("queue")
            .prefetch_related("conditions")
            .order_by("priority", "name")
        )
        summaries = [
            RuleSummary(
                rule=rule,
                url=reverse(
                    "admin:policies_gaterule_change", args=[rule.pk], current_app=self.admin_site.name
                ),
                conditions=[condition_in_words(c) for c in rule.conditions.all()],
            )
            for rule in rules
        ]
        enforced = [s for s in summaries if s.rule.enabled and s.rule.mode == Mode.ENFORCE]
        sections = [
            {
                "heading": heading,
                "meaning": meaning,
                "rules": [s for s in enforced if s.rule.outcome == outcome],
            }
            for outcome, heading, meaning in OUTCOME_SECTIONS
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Safety policy",
            "opts": self.model._meta,
            "sections": sections,
            "shadow_rules": [s for s in summaries if s.rule.enabled and s.rule.mode == Mode.SHADOW],
            "disabled_rules": [s for s in summaries if not s.rule.enabled],
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/policies/safety_policy.html", context)
