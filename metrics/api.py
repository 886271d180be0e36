"""`GET /api/v1/metrics/` (SPEC section 4): review effectiveness per queue, reviewer
workload and incidents over a window, as `metrics.selectors.metrics_answer` computes
them (the definitions are in that module's docstring).

Reviewers get their own queues; compliance staff and superusers every queue;
integrations (API keys), policy admins and everyone else a 403. Filters: `queue` (a
slug; one the caller may not read is a 404, as if it did not exist), `since` and
`until` (ISO 8601 dates or date-times; a bad one is a 400 naming the field).

Routed from `hitl_project/api.py` by `include("metrics.api")`: the project's URL
configuration names this module, it never imports it (nothing outside `metrics`
imports `metrics`).
"""

from __future__ import annotations

from datetime import datetime

from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from hitl_project.replica import reading_from_replica
from metrics.selectors import DEFAULT_WINDOW, metrics_answer
from reviews.access import is_staff_reader, readable_queues, sees_everything
from reviews.api.authentication import integration_of
from reviews.api.views import ERROR_RESPONSES
from reviews.audit import parse_moment
from reviews.models import Incident

MOMENT_HELP = "An ISO 8601 date (2025-06-30) or date and time (2025-06-30T14:05:00Z; naive ones are UTC)."


@extend_schema_field(OpenApiTypes.STR)
class MomentField(serializers.Field):
    """A query parameter read by `parse_moment`; blank is absent."""

    MAX_LENGTH = 64

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> datetime | None:
        if not isinstance(data, str) or len(data) > self.MAX_LENGTH:
            raise serializers.ValidationError(f"Not a date or date and time. {MOMENT_HELP}")
        if not data.strip():
            return None  # `?since=` is no since
        try:
            return parse_moment(data, end_of_day=self.end_of_day)
        except ValueError as exc:
            raise serializers.ValidationError(f"Not a date or date and time. {MOMENT_HELP}") from exc

    def to_representation(self, value):
        return value


class MetricsQuerySerializer(serializers.Serializer):
    queue = serializers.SlugField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="One queue's slug (among those you may read).",
    )
    since = MomentField(required=False, help_text=f"Start of the window (included). {MOMENT_HELP}")
    until = MomentField(
        required=False,
        end_of_day=True,
        help_text=f"End of the window (excluded; a date: up to its end). Default now. {MOMENT_HELP}",
    )

    def validate(self, data):
        """Fill in the default window: until now, since 7 days before `until`."""
        until = data.get("until") or timezone.now()
        try:
            since = data.get("since") or until - DEFAULT_WINDOW
        except OverflowError as exc:
            raise serializers.ValidationError({"until": [f"Too early for a window. {MOMENT_HELP}"]}) from exc
        if since >= until:
            field = "until" if data.get("until") else "since"
            raise serializers.ValidationError({field: ["The window must start before it ends (until: now)."]})
        return {**data, "since": since, "until": until}


class QueueMetricsSerializer(serializers.Serializer):
    queue = serializers.SlugField(help_text="The queue's slug.")
    decisions = serializers.IntegerField(
        help_text="Items finally decided in this queue in the window (a four-eyes item once)."
    )
    approval_rate = serializers.FloatField(allow_null=True, help_text="Fraction approved as proposed.")
    edit_rate = serializers.FloatField(allow_null=True, help_text="Fraction approved as edited.")
    rejection_rate = serializers.FloatField(allow_null=True, help_text="Fraction rejected.")
    median_review_seconds = serializers.FloatField(
        allow_null=True, help_text="From entering the queue to the final decision."
    )
    p90_review_seconds = serializers.FloatField(allow_null=True)
    backlog = serializers.IntegerField(help_text="Open items (pending and in review) now.")
    oldest_pending_seconds = serializers.IntegerField(
        allow_null=True, help_text="Age in the queue of its oldest open item now."
    )
    sla_breaches = serializers.IntegerField(
        help_text="Items decided at or after their deadline in the window, plus items that expired in it."
    )


class ReviewerMetricsSerializer(serializers.Serializer):
    reviewer = serializers.CharField(help_text="The reviewer's username.")
    decisions = serializers.IntegerField(help_text="Every decision made in the window, escalations included.")
    median_review_seconds = serializers.FloatField(
        allow_null=True, help_text="Median time from taking the claim to deciding."
    )


IncidentsBySeveritySerializer = type(
    "IncidentsBySeveritySerializer",
    (serializers.Serializer,),
    {severity: serializers.IntegerField() for severity in Incident.Severity.values},
)


class IncidentCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_severity = IncidentsBySeveritySerializer()


class MetricsSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    queues = QueueMetricsSerializer(many=True)
    reviewers = ReviewerMetricsSerializer(many=True)
    incidents = IncidentCountsSerializer(
        help_text="Incidents created in the window on items of these queues "
        "(for those who read everything, with no queue asked: also on items that never entered one)."
    )


class ReadsMetrics(BasePermission):
    message = "Metrics are for reviewers, compliance staff and superusers."

    def has_permission(self, request, view) -> bool:
        return integration_of(request) is None and is_staff_reader(request.user)


class MetricsView(APIView):
    permission_classes = [ReadsMetrics]

    @extend_schema(
        operation_id="metrics",
        tags=["metrics"],
        parameters=[MetricsQuerySerializer],
        responses={
            200: MetricsSerializer,
            404: OpenApiResponse(description="No such queue among those you may read"),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        """Per queue approval, edit and rejection rates, review times, backlog and SLA
        breaches; each reviewer's decisions; incidents. The window defaults to the
        last 7 days; an item counts when its final decision falls in it."""
        query = MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        asked = query.validated_data
        slug = asked.get("queue")
        queues = readable_queues(request.user).order_by("slug")
        if slug:
            queues = queues.filter(slug=slug)
        queues = list(queues.only("slug"))
        if slug and not queues:
            raise NotFound("No such queue among those you may read.")
        unqueued = not slug and sees_everything(request.user)
        # Who may read which queue is decided above, on the default database; the figures
        # may lag a little behind it.
        with reading_from_replica():
            answer = metrics_answer(
                queues=queues, since=asked["since"], until=asked["until"], include_unqueued_incidents=unqueued
            )
        return Response(MetricsSerializer(answer).data)


urlpatterns = [path("", MetricsView.as_view(), name="metrics")]
