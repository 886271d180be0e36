"""The item as the outside world sees it (SPEC section 4): API answers, webhook bodies
and claim answers all use these, so the representation is written once."""

from __future__ import annotations

import json

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from reviews.models import Decision, ReviewItem


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """A JSON object (a dict), not any JSON value."""

    default_error_messages = {"not_object": "Expected a JSON object."}

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            self.fail("not_object")
        return data


class DecisionSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username")
    reason_codes = serializers.SerializerMethodField()

    class Meta:
        model = Decision
        fields = ["action", "reviewer", "justification", "reason_codes", "created_at"]

    def get_reason_codes(self, decision: Decision) -> list[str]:
        return list(decision.cited_codes)


def review_url(item_id, request=None) -> str:
    """The item's review page in the admin (SPEC section 10 amendments).

    Absolute from the request in API answers; without one (webhook bodies, written
    by a service or a task) from HITL_PUBLIC_URL, or a path when that is unset.
    """
    path = reverse("admin:reviews_review", args=[item_id])
    if request is not None:
        return request.build_absolute_uri(path)
    return settings.HITL_PUBLIC_URL + path


# API answers pass `context={"request": request}`, so that `review_url` is absolute.
class ItemSerializer(serializers.ModelSerializer):
    queue = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    claimed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    input = JSONObjectField()
    output = serializers.JSONField(allow_null=True)
    action = serializers.JSONField(allow_null=True)
    context = JSONObjectField()
    signals = JSONObjectField()
    metadata = JSONObjectField()
    matched_rules = serializers.ListField(child=JSONObjectField())
    final_output = serializers.JSONField(allow_null=True)
    final_action = serializers.JSONField(allow_null=True)
    decisions = DecisionSerializer(many=True, read_only=True)
    review_url = serializers.SerializerMethodField()

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "external_id",
            "kind",
            "status",
            "queue",
            "input",
            "output",
            "action",
            "context",
            "signals",
            "metadata",
            "matched_rules",
            "due_at",
            "claimed_by",
            "claim_expires_at",
            "final_output",
            "final_action",
            "execution_status",
            "decisions",
            "created_at",
            "decided_at",
            "review_url",
        ]
        read_only_fields = fields

    def get_review_url(self, item: ReviewItem) -> str:
        return review_url(item.pk, self.context.get("request"))


# Left out of list pages: each may be up to HITL_MAX_SUBMISSION_BYTES, and a page of 200
# such items would be hundreds of megabytes. `GET /api/v1/items/{id}/` has them.
CONTENT_FIELDS = ("input", "output", "action", "context", "final_output", "final_action")


class ItemSummarySerializer(ItemSerializer):
    """An item in `GET /api/v1/items/`: the item without its content (CONTENT_FIELDS)."""

    class Meta(ItemSerializer.Meta):
        fields = [name for name in ItemSerializer.Meta.fields if name not in CONTENT_FIELDS]
        read_only_fields = fields


def item_representation(item: ReviewItem) -> dict:
    """The item as `GET /api/v1/items/{id}/` shows it, as plain JSON (webhook bodies;
    `review_url` from HITL_PUBLIC_URL, since there is no request to build it from)."""
    item = ReviewItem.objects.select_related("queue", "claimed_by").get(pk=item.pk)
    return json.loads(JSONRenderer().render(ItemSerializer(item).data))
