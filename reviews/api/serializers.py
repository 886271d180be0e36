"""The API's input serializers (one per command) and its answers other than the item
representation (`reviews.representation`)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reviews.models import DecisionAction, Incident, ItemKind, ReviewItem
from reviews.representation import DecisionSerializer, ItemSerializer, JSONObjectField, review_url
from reviews.webhooks.urlguard import UnsafeURL, check_outbound_url

MAX_EXTERNAL_ID = 255
MAX_ACTION_TYPE = 100
MAX_URL = 2000


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# The signals the gate rules and the metrics read, with the type each must have
# (SPEC section 10 amendments). A wrong type would make a rule's condition false
# and so fail open: "0.1" as a string was auto-approved where 0.1 was reviewed.
DOCUMENTED_SIGNALS = {
    "confidence": (lambda v: _is_number(v) and 0 <= v <= 1, "A number from 0 to 1."),
    "rubric_score": (_is_number, "A number."),
    "evaluator_disagreement": (_is_number, "A number."),
    "category": (lambda v: isinstance(v, str), "A string."),
    "filter_flags": (
        lambda v: isinstance(v, list) and all(isinstance(flag, str) for flag in v),
        "A list of strings.",
    ),
}


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "properties": {
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "rubric_score": {"type": "number"},
            "evaluator_disagreement": {"type": "number"},
            "category": {"type": "string"},
            "filter_flags": {"type": "array", "items": {"type": "string"}},
        },
    }
)
class SignalsField(JSONObjectField):
    """`signals`: the documented keys are type-checked, any other key is free."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        errors = {
            key: [message]
            for key, (valid, message) in DOCUMENTED_SIGNALS.items()
            if key in data and not valid(data[key])
        }
        if errors:
            raise serializers.ValidationError(errors)
        return data


class StrictSerializer(serializers.Serializer):
    """Unknown keys are an error, so a typo (`signal` for `signals`) never passes silently."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class ActionSerializer(StrictSerializer):
    type = serializers.CharField(max_length=MAX_ACTION_TYPE)
    params = JSONObjectField(required=False, default=dict)


class SubmissionSerializer(StrictSerializer):
    """The body of `POST /api/v1/items/` and `POST /api/v1/evaluate/`."""

    external_id = serializers.CharField(
        max_length=MAX_EXTERNAL_ID, required=False, allow_blank=True, default=""
    )
    kind = serializers.ChoiceField(choices=ItemKind.choices)
    input = JSONObjectField(required=False, default=dict)
    output = JSONObjectField(required=False, allow_null=True, default=None)
    action = ActionSerializer(required=False, allow_null=True, default=None)
    context = JSONObjectField(required=False, default=dict)
    signals = SignalsField(required=False, default=dict)
    metadata = JSONObjectField(required=False, default=dict)
    callback_url = serializers.URLField(max_length=MAX_URL, required=False, allow_blank=True, default="")

    def validate_callback_url(self, value: str) -> str:
        if value:
            try:
                check_outbound_url(value)
            except UnsafeURL as exc:
                raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate(self, attrs: dict) -> dict:
        if attrs["kind"] == ItemKind.OUTPUT and attrs.get("output") is None:
            raise serializers.ValidationError({"output": ["Required when kind is output."]})
        if attrs["kind"] == ItemKind.ACTION and attrs.get("action") is None:
            raise serializers.ValidationError({"action": ["Required when kind is action (with a type)."]})
        if attrs["kind"] == ItemKind.OUTPUT and attrs.get("action") is not None:
            raise serializers.ValidationError({"action": ["Only action items carry an action."]})
        if attrs.get("action") is not None:
            attrs["action"] = dict(attrs["action"])
        return attrs

    def payload(self) -> dict:
        """What the gate sees and the item stores (the callback URL is kept apart)."""
        data = dict(self.validated_data)
        data.pop("callback_url", None)
        return data


def rule_summaries(snapshots: list[dict]) -> list[dict]:
    """The short form of matched-rule snapshots that submit and evaluate answer with."""
    return [
        {"id": rule.get("id"), "name": rule.get("name"), "outcome": rule.get("outcome")} for rule in snapshots
    ]


class MatchedRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    outcome = serializers.CharField()


class SubmitResponseSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    queue = serializers.CharField(allow_null=True)
    matched_rules = MatchedRuleSerializer(many=True)
    due_at = serializers.DateTimeField(allow_null=True)
    url = serializers.URLField()
    review_url = serializers.URLField()

    @staticmethod
    def for_item(item: ReviewItem, request, *, as_submitted: bool = False) -> dict:
        """The answer to a submission; for a replay, the first answer again (the
        item as it was when submitted, from its first history record)."""
        state = item.history.earliest("history_date") if as_submitted else item
        return {
            "id": item.pk,
            "status": state.status,
            "queue": state.queue.slug if state.queue_id else None,
            "matched_rules": rule_summaries(item.matched_rules),
            "due_at": state.due_at,
            "url": request.build_absolute_uri(reverse("api:item-detail", args=[item.pk])),
            "review_url": review_url(item.pk, request),
        }


class EvaluateResponseSerializer(serializers.Serializer):
    status = serializers.CharField()
    queue = serializers.CharField(allow_null=True)
    matched_rules = MatchedRuleSerializer(many=True)


class IncidentInputSerializer(StrictSerializer):
    item = serializers.UUIDField()
    severity = serializers.ChoiceField(choices=Incident.Severity.choices)
    description = serializers.CharField(max_length=10_000)


class IncidentSerializer(serializers.ModelSerializer):
    item = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Incident
        fields = ["id", "item", "severity", "description", "source", "status", "created_at"]
        read_only_fields = fields


class QueueSummarySerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    sla_minutes = serializers.IntegerField()
    required_approvals = serializers.IntegerField()
    pending = serializers.IntegerField()
    in_review = serializers.IntegerField()
    at_risk = serializers.IntegerField()
    oldest_pending_seconds = serializers.SerializerMethodField()
    sla_breaches = serializers.IntegerField()

    def get_oldest_pending_seconds(self, queue) -> int | None:
        if queue.oldest_entered_at is None:
            return None
        return max(0, int((self.context["now"] - queue.oldest_entered_at).total_seconds()))


class DecisionInputSerializer(StrictSerializer):
    action = serializers.ChoiceField(choices=DecisionAction.choices)
    justification = serializers.CharField(max_length=10_000, allow_blank=True, trim_whitespace=False)
    reason_codes = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=50
    )
    edited_output = JSONObjectField(required=False, allow_null=True, default=None)
    edited_action = JSONObjectField(required=False, allow_null=True, default=None)
    checklist = serializers.ListField(
        child=serializers.JSONField(), required=False, default=list, max_length=100
    )
    escalate_to = serializers.SlugField(max_length=100, required=False, allow_blank=True, default="")


class DecisionResultSerializer(DecisionSerializer):
    item = serializers.SerializerMethodField()

    class Meta(DecisionSerializer.Meta):
        fields = ["id", *DecisionSerializer.Meta.fields, "item"]

    def get_item(self, decision) -> dict:
        return ItemSerializer(self.context["item"], context=self.context).data
