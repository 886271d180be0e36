"""The item as the outside world sees it (SPEC section 4): API answers, webhook bodies
and claim answers all use these, so the representation is written once."""

from __future__ import annotations

import functools
import json
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.renderers import JSONRenderer

from reviews.models import Decision, ReviewItem


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """A JSON object (a dict), not any JSON value."""

    default_error_messages = {"not_object": "Expected a JSON object."}

    def to_internal_value(self, data):
        # DRF's JSONField checks that the value serialises by serialising it whole (up to
        # HITL_MAX_SUBMISSION_BYTES). The API's bodies are parsed from JSON, bounded and
        # checked (BoundedJSONParser), so anything they hold serialises: only the type is left.
        if not isinstance(data, dict):
            self.fail("not_object")
        return data


# DRF's `to_representation`, with what DRF works out again for every instance (the
# readable fields, and for each how it finds its value) worked out once per serializer:
# a list page serialises up to 200 items with the same fields. A field that reads one of
# the model's columns as it is gets it with `getattr`; every other field (related, nested,
# method fields, dotted sources) goes through DRF's `get_attribute` as before; a time
# field looks the current time zone up once per answer, not once per value. The values
# and their representations are DRF's own. (A comment, not a docstring: drf-spectacular
# would take a docstring for the description of every serializer that mixes this in.)
class FieldsOnce:
    def to_representation(self, instance):
        plan = self.__dict__.get("_fields_once")
        if plan is None:
            columns = {field.attname for field in self.Meta.model._meta.concrete_fields}
            plan = self._fields_once = []
            for field in self._readable_fields:
                if isinstance(field, serializers.DateTimeField) and not hasattr(field, "timezone"):
                    field.timezone = field.default_timezone()  # the current one, for this answer
                plan.append((field.field_name, field, _column_read_as_is(field, columns)))
        answer = {}
        for name, field, column in plan:
            if column is None:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
                if isinstance(value, PKOnlyObject):
                    answer[name] = None if value.pk is None else field.to_representation(value)
                    continue
            else:
                value = getattr(instance, column)
            answer[name] = None if value is None else field.to_representation(value)
        return answer


def _column_read_as_is(field: serializers.Field, columns: set[str]) -> str | None:
    if type(field).get_attribute is not serializers.Field.get_attribute or len(field.source_attrs) != 1:
        return None
    return field.source_attrs[0] if field.source_attrs[0] in columns else None


class ReviewerName(serializers.CharField):
    """The decision's reviewer by username, asked of the user directly: DRF's dotted
    source would inspect the signature of `get_username` on every decision shown."""

    def get_attribute(self, decision: Decision) -> str:
        return decision.reviewer.get_username()


class DecisionSerializer(FieldsOnce, serializers.ModelSerializer):
    reviewer = ReviewerName(source="reviewer.get_username")
    reason_codes = serializers.SerializerMethodField()

    class Meta:
        model = Decision
        fields = ["action", "reviewer", "justification", "reason_codes", "created_at"]

    def get_reason_codes(self, decision: Decision) -> list[str]:
        return list(decision.cited_codes)


# Where `decisions_shown()` puts an item's decisions: a plain list, so that a page of
# items costs no queryset per item (as the default prefetch cache does).
SHOWN_DECISIONS = "shown_decisions"


def decisions_shown() -> Prefetch:
    """An item's decisions as the representation shows them: the reviewer's name read
    with them, and nothing it leaves out (the edited versions, the checklist)."""
    return Prefetch(
        "decisions",
        queryset=Decision.objects.select_related("reviewer").only(
            "item",
            "action",
            f"reviewer__{get_user_model().USERNAME_FIELD}",
            "justification",
            "cited_codes",
            "created_at",
        ),
        to_attr=SHOWN_DECISIONS,
    )


class ShownDecisions(serializers.ListSerializer):
    """An item's decisions: those `decisions_shown()` read, else read now."""

    def get_attribute(self, instance):
        shown = getattr(instance, SHOWN_DECISIONS, None)
        return instance.decisions.all() if shown is None else shown


def review_url(item_id, request=None) -> str:
    """The item's review page in the admin (SPEC section 10 amendments).

    Absolute from the request in API answers; without one (webhook bodies, written
    by a service or a task) from HITL_PUBLIC_URL, or a path when that is unset.
    """
    path = reverse("admin:reviews_review", args=[item_id])
    if request is not None:
        return request.build_absolute_uri(path)
    return settings.HITL_PUBLIC_URL + path


URL_PLACEHOLDER = uuid.UUID(int=0)


# API answers pass `context={"request": request}`, so that `review_url` is absolute.
class ItemSerializer(FieldsOnce, serializers.ModelSerializer):
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
    decisions = ShownDecisions(child=DecisionSerializer(), read_only=True)
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
        # Resolved once per answer (a list page has up to 200 items), then filled in.
        template = getattr(self, "_review_url_template", None)
        if template is None:
            template = self._review_url_template = review_url(URL_PLACEHOLDER, self.context.get("request"))
        head, _, tail = template.rpartition(str(URL_PLACEHOLDER))
        return f"{head}{item.pk}{tail}"


# Left out of list pages: each may be up to HITL_MAX_SUBMISSION_BYTES, and a page of 200
# such items would be hundreds of megabytes. `GET /api/v1/items/{id}/` has them.
CONTENT_FIELDS = ("input", "output", "action", "context", "final_output", "final_action")


class ItemSummarySerializer(ItemSerializer):
    """An item in `GET /api/v1/items/`: the item without its content (CONTENT_FIELDS)."""

    class Meta(ItemSerializer.Meta):
        fields = [name for name in ItemSerializer.Meta.fields if name not in CONTENT_FIELDS]
        read_only_fields = fields


# Columns no representation shows: a read leaves them in the database.
NOT_SHOWN = ("shadow_matches", "executed_action", "request_hash")
# What a summary shows, as values (`summary_rows`): its columns, and its queue's slug
# and claimant's name in their place.
RELATED_VALUES = {"queue": "queue__slug", "claimed_by": "claimed_by__username"}
SUMMARY_VALUES = tuple(
    RELATED_VALUES.get(name, name)
    for name in ItemSummarySerializer.Meta.fields
    if name not in ("decisions", "review_url")
)
SHOWN_DECISION_VALUES = (
    "item_id",
    "action",
    f"reviewer__{get_user_model().USERNAME_FIELD}",
    "justification",
    "cited_codes",
    "created_at",
)


def for_representation(items: QuerySet[ReviewItem]) -> QuerySet[ReviewItem]:
    """`items` with what the representation shows read alongside, in two statements
    whatever their number: the items with their queue and claimant, then their
    decisions with the reviewers."""
    return items.select_related("queue", "claimed_by").prefetch_related(decisions_shown()).defer(*NOT_SHOWN)


def summary_values(items: QuerySet[ReviewItem]) -> QuerySet:
    """`items` as the plain rows a summary is made of (`summary_rows`): a list page of
    up to 200 items builds no model instance for them, their queues or claimants."""
    return items.values(*SUMMARY_VALUES)


@functools.cache
def _summary_fields() -> tuple[list, dict]:
    """The fields of a summary and of a shown decision, built once per process: DRF's
    own, which turn a value into its answer without keeping any state (a time field
    asks for the current time zone at each value, as none is set on it)."""
    item_fields = ItemSummarySerializer().fields
    plan = [(name, RELATED_VALUES.get(name, name), field) for name, field in item_fields.items()]
    return plan, dict(DecisionSerializer().fields)


def summary_rows(rows: list[dict], request=None) -> list[dict]:
    """Items of `summary_values` as `ItemSummarySerializer` shows them, their decisions
    read in one statement. Each value is turned into its answer by the serializer's own
    field; only the model instances and DRF's lookups are left out (tests compare the
    two, key for key)."""
    plan, fields = _summary_fields()
    action, reviewer, justification, made_at = (
        fields[name].to_representation for name in ("action", "reviewer", "justification", "created_at")
    )
    shown: dict = {row["id"]: [] for row in rows}
    decisions = Decision.objects.filter(item_id__in=list(shown)).order_by("created_at")
    for item_id, verb, by, why, codes, at in decisions.values_list(*SHOWN_DECISION_VALUES):
        shown[item_id].append(
            {
                "action": action(verb),
                "reviewer": reviewer(by),
                "justification": justification(why),
                "reason_codes": list(codes),
                "created_at": made_at(at),
            }
        )
    head, _, tail = review_url(URL_PLACEHOLDER, request).rpartition(str(URL_PLACEHOLDER))
    answers = []
    for row in rows:
        answer = {}
        for name, key, field in plan:
            if name == "decisions":
                answer[name] = shown[row["id"]]
            elif name == "review_url":
                answer[name] = f"{head}{row['id']}{tail}"
            else:
                value = row[key]
                # A related value (queue slug, claimant's name) is shown as it was read.
                answer[name] = value if value is None or key != name else field.to_representation(value)
        answers.append(answer)
    return answers


def shows_decisions(item: ReviewItem, decisions: list[Decision]) -> None:
    """Tell the representation that `item` holds every decision it has, each with its
    reviewer, in the order they were made: a service that holds the item locked and
    has just written a decision (`reviews.services.decisions`) has them at hand, so
    neither the webhook body nor the API's answer reads them again."""
    setattr(item, SHOWN_DECISIONS, decisions)


def item_representation(item: ReviewItem) -> dict:
    """The item as `GET /api/v1/items/{id}/` shows it, as plain JSON (webhook bodies;
    `review_url` from HITL_PUBLIC_URL, since there is no request to build it from).

    An item with its decisions at hand (`shows_decisions`) is the row its service
    read under the lock with the changes it is writing: it is shown as it is. Any
    other is read back from the database, as that answer would read it, and the
    decisions read are left on `item` as well: a service calls this last, once the
    decisions are written, and the API's answer after the commit shows the same ones."""
    if getattr(item, SHOWN_DECISIONS, None) is None:
        stored = for_representation(ReviewItem.objects.all()).get(pk=item.pk)
        shows_decisions(item, getattr(stored, SHOWN_DECISIONS))
    else:
        stored = item
    return json.loads(JSONRenderer().render(ItemSerializer(stored).data))
