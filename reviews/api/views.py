"""The API's views, for integrations and staff (SPEC section 4).

Every queryset is scoped to the caller before any lookup, so another
integration's item, or an item of a queue the reviewer may not see, is a 404.
Each request reads the caller's groups once (`reviews.access.remembering_groups`).
"""

from __future__ import annotations

import uuid
from datetime import UTC

from django.db.models import prefetch_related_objects
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from policies.engine import evaluate
from reviews import services
from reviews.access import remembering_groups, visible_items
from reviews.api.authentication import integration_of
from reviews.api.filters import ItemFilter
from reviews.api.permissions import IsIntegration, IsReviewer, IsStaffReader
from reviews.api.serializers import (
    DecisionInputSerializer,
    DecisionResultSerializer,
    EvaluateResponseSerializer,
    IncidentInputSerializer,
    IncidentSerializer,
    QueueSummarySerializer,
    SubmissionSerializer,
    SubmitResponseSerializer,
    rule_summaries,
)
from reviews.models import Queue, ReviewItem
from reviews.representation import (
    ItemSerializer,
    ItemSummarySerializer,
    decisions_shown,
    for_representation,
    summary_rows,
    summary_values,
)
from reviews.selectors import queue_overview

MAX_IDEMPOTENCY_KEY = 255

ERROR_RESPONSES = {
    400: OpenApiResponse(description="Invalid input (DRF field errors or {detail, code})"),
    401: OpenApiResponse(description="Missing or invalid credentials"),
    403: OpenApiResponse(description="Not allowed"),
    429: OpenApiResponse(description="Rate limited; see Retry-After"),
}
ERRORS_WITH_BODY = {
    **ERROR_RESPONSES,
    413: OpenApiResponse(description="Body larger than HITL_MAX_SUBMISSION_BYTES"),
    415: OpenApiResponse(description="Not application/json"),
}

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Replays with the same key and body return the first item; another body is a 422.",
)


class ItemCursorPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        """DRF decodes the cursor but trusts its position; ours is a creation time, so
        anything else (or a time no database accepts) is an invalid cursor (404)."""
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        try:
            moment = parse_datetime(cursor.position)
            if moment is None or timezone.is_naive(moment):
                raise ValueError(cursor.position)
            moment = moment.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc
        return cursor._replace(position=moment.isoformat())


# Commands on one item: the lookup only turns an item the caller may not see into a
# 404; the service reads the row again under its lock, and that copy is the answer.
# A decision needs no lookup: the decision service finds the item under its lock and
# answers 404 itself for one the reviewer may not see.
ITEM_COMMANDS = ("cancel", "release")


def scoped_items(request):
    """The items the caller may see, ready for the item representation."""
    items = for_representation(ReviewItem.objects.all())
    return visible_items(user=request.user, integration=integration_of(request), items=items)


def as_answered(item: ReviewItem) -> ReviewItem:
    """A row a service has just locked and changed, with the decisions the answer shows
    (read after the commit, so they are the stored ones)."""
    prefetch_related_objects([item], decisions_shown())
    return item


class RemembersGroups:
    """The caller's groups are read once per request, whatever asks about them."""

    def dispatch(self, request, *args, **kwargs):
        with remembering_groups():
            return super().dispatch(request, *args, **kwargs)


def read_idempotency_key(request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise serializers.ValidationError(
            {"Idempotency-Key": [f"At most {MAX_IDEMPOTENCY_KEY} printable characters."]}
        )
    return key


class ItemViewSet(RemembersGroups, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ItemSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = ItemFilter
    pagination_class = ItemCursorPagination
    lookup_value_converter = "uuid"

    def get_permissions(self):
        if self.action in ("create", "cancel"):
            return [IsIntegration()]
        if self.action in ("release", "decisions"):
            return [IsReviewer()]
        return [(IsIntegration | IsStaffReader)()]

    def get_queryset(self):
        if self.action in ITEM_COMMANDS:
            visible = ReviewItem.objects.only("pk")
            return visible_items(
                user=self.request.user, integration=integration_of(self.request), items=visible
            )
        if self.action == "list":
            items = visible_items(user=self.request.user, integration=integration_of(self.request))
            return summary_values(items)
        return scoped_items(self.request)

    def filter_queryset(self, queryset):
        # Without query parameters every filter is empty and the queryset comes back as it
        # went in: the filter set and its form are not built (a command's lookup, a read).
        if not self.request.query_params:
            return queryset
        return super().filter_queryset(queryset)

    def get_serializer_class(self):
        return ItemSummarySerializer if self.action == "list" else ItemSerializer

    @extend_schema(
        responses={
            200: ItemSummarySerializer(many=True),
            404: OpenApiResponse(description="Invalid cursor"),
            **ERROR_RESPONSES,
        }
    )
    def list(self, request, *args, **kwargs):
        """Items the caller may see, newest first, filtered and cursor-paginated.

        Each item is a summary, without `input`, `output`, `action`, `context`,
        `final_output` and `final_action`, so a page stays small whatever the items
        hold; `GET /api/v1/items/{id}/` returns one item whole."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(summary_rows(page, request))

    @extend_schema(
        responses={200: ItemSerializer, 404: OpenApiResponse(description="No such item"), **ERROR_RESPONSES}
    )
    def retrieve(self, request, *args, **kwargs):
        """One item with its decisions and execution status."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        request=SubmissionSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: SubmitResponseSerializer,
            200: OpenApiResponse(SubmitResponseSerializer, description="Replay of an earlier submission"),
            422: OpenApiResponse(description="Idempotency-Key reused with another body"),
            **ERRORS_WITH_BODY,
        },
    )
    def create(self, request):
        """Submit a model output or agent action to the gate."""
        key = read_idempotency_key(request)
        submission = SubmissionSerializer(data=request.data)
        submission.is_valid(raise_exception=True)
        result = services.submit_item(
            integration=integration_of(request),
            payload=submission.payload(),
            idempotency_key=key,
            callback_url=submission.validated_data["callback_url"],
        )
        body = SubmitResponseSerializer.for_item(result.item, request, as_submitted=not result.created)
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    @extend_schema(
        request=None,
        responses={
            200: ItemSerializer,
            404: OpenApiResponse(description="No such item"),
            409: OpenApiResponse(description="Already decided, cancelled or expired"),
            **ERROR_RESPONSES,
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Withdraw an item while it is pending or in review."""
        item = services.cancel(item=self.get_object(), integration=integration_of(request))
        return Response(self.get_serializer(as_answered(item)).data)

    @extend_schema(
        request=None,
        responses={
            200: ItemSerializer,
            404: OpenApiResponse(description="No such item in your queues"),
            409: OpenApiResponse(description="Not claimed, or claimed by someone else"),
            **ERROR_RESPONSES,
        },
    )
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """Give a claim back; the item is pending again for anyone."""
        item = services.release(item=self.get_object(), user=request.user)
        return Response(self.get_serializer(as_answered(item)).data)

    @extend_schema(
        request=DecisionInputSerializer,
        responses={
            201: DecisionResultSerializer,
            404: OpenApiResponse(description="No such item in your queues"),
            409: OpenApiResponse(description="Already decided, or claimed by someone else"),
            **ERRORS_WITH_BODY,
        },
    )
    @action(detail=True, methods=["post"])
    def decisions(self, request, pk=None):
        """Approve, edit, reject or escalate (an unclaimed item is claimed implicitly)."""
        item = ReviewItem(pk=self.kwargs[self.lookup_field])
        body = DecisionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        decision = services.decide(
            item=item,
            user=request.user,
            action=data["action"],
            justification=data["justification"],
            reason_codes=data["reason_codes"],
            edited_output=data["edited_output"],
            edited_action=data["edited_action"],
            checklist=data["checklist"],
            escalate_to=data["escalate_to"] or None,
        )
        context = {"item": as_answered(decision.item), "request": request}
        return Response(
            DecisionResultSerializer(decision, context=context).data,
            status=status.HTTP_201_CREATED,
        )


class QueueViewSet(RemembersGroups, viewsets.GenericViewSet):
    """Queues for reviewers: what waits where, and the next item to take."""

    permission_classes = [IsReviewer]
    lookup_field = "slug"
    serializer_class = QueueSummarySerializer
    pagination_class = None

    def get_queryset(self):
        return queue_overview(self.request.user)

    @extend_schema(responses={200: QueueSummarySerializer(many=True), **ERROR_RESPONSES})
    def list(self, request):
        """The queues the caller may review, with pending work and SLA breaches."""
        context = {"now": timezone.now()}
        return Response(QueueSummarySerializer(self.get_queryset(), many=True, context=context).data)

    @extend_schema(
        request=None,
        responses={
            200: ItemSerializer,
            204: OpenApiResponse(description="Nothing to review in this queue"),
            404: OpenApiResponse(description="No such queue among yours"),
            **ERROR_RESPONSES,
        },
    )
    @action(detail=True, methods=["post"], url_path="claim-next")
    def claim_next(self, request, slug=None):
        """Claim the next item (priority, then deadline, then age) with a lease."""
        queue = get_object_or_404(Queue.objects.reviewable_by(request.user), slug=slug)
        item = services.claim_next(queue=queue, user=request.user)
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        item = scoped_items(request).get(pk=item.pk)
        return Response(ItemSerializer(item, context={"request": request}).data)


class EvaluateView(RemembersGroups, APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        request=SubmissionSerializer,
        responses={200: EvaluateResponseSerializer, **ERRORS_WITH_BODY},
    )
    def post(self, request):
        """Dry-run the gate on a submission; nothing is stored."""
        submission = SubmissionSerializer(data=request.data)
        submission.is_valid(raise_exception=True)
        integration = integration_of(request)
        gate = evaluate(submission.payload(), item_id=uuid.uuid4(), integration_slug=integration.slug)
        return Response(
            {
                "status": gate.status,
                "queue": gate.queue_slug,
                "matched_rules": rule_summaries(gate.matched_rules),
            }
        )


class IncidentView(RemembersGroups, APIView):
    permission_classes = [IsIntegration | IsReviewer]

    @extend_schema(
        request=IncidentInputSerializer,
        responses={
            201: IncidentSerializer,
            404: OpenApiResponse(description="No such item"),
            **ERRORS_WITH_BODY,
        },
    )
    def post(self, request):
        """Report something harmful that got past the gate or a reviewer."""
        data = IncidentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = get_object_or_404(scoped_items(request), pk=data.validated_data["item"])
        incident = services.report_incident(
            item=item,
            severity=data.validated_data["severity"],
            description=data.validated_data["description"],
            user=request.user if request.user.is_authenticated else None,
            integration=integration_of(request),
        )
        return Response(IncidentSerializer(incident).data, status=status.HTTP_201_CREATED)
