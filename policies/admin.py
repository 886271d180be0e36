"""Gate rules in the admin: editing with versioned history, and the readable safety policy page."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse

from policies.models import VALUELESS_OPERATORS, GateCondition, GateRule, Match, Mode, Operator, Outcome
from policies.services import record_rule_change
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


class GateConditionInline(admin.TabularInline):
    model = GateCondition
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

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # One new version per save, whether the rule, its conditions or both changed.
        if change and (form.has_changed() or any(formset.has_changed() for formset in formsets)):
            record_rule_change(rule=form.instance)

    def get_urls(self):
        safety_policy = path(
            "safety-policy/",
            self.admin_site.admin_view(self.safety_policy_view),
            name="policies_safety_policy",
        )
        return [safety_policy, *super().get_urls()]

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
