"""Review items in the admin: the changelist with its filters, bulk approval in low-risk
queues, deliveries on the item page, and the workspace's URLs."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from reviews import services
from reviews.access import readable_queues, sees_everything
from reviews.admin.base import QueueFilter, QueueScopedAdmin, ReadOnlyHistoryAdmin, parse_id
from reviews.admin.quality import seed_gold_items
from reviews.admin.timeline import timeline_urls
from reviews.admin.workspace import workspace_urls
from reviews.delivery import worker as delivery
from reviews.exceptions import DomainError
from reviews.models import (
    Decision,
    DeliveryAttempt,
    OutboxMessage,
    Queue,
    ReviewItem,
)


class BulkApproveForm(forms.Form):
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded on every approved item. Checklists count as ticked.",
    )

    def clean_justification(self):
        value = self.cleaned_data["justification"].strip()
        if not value:
            raise forms.ValidationError("A justification is required.")
        return value


class DecisionInline(admin.TabularInline):
    model = Decision
    extra = 0
    can_delete = False
    fields = ["created_at", "reviewer", "action", "justification", "round", "step", "is_final"]
    readonly_fields = fields
    ordering = ["created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class SlaFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return [("at_risk", "At risk (half the SLA used)"), ("overdue", "Past the deadline")]

    def queryset(self, request, queryset):
        if self.value() == "at_risk":
            return queryset.at_risk()
        if self.value() == "overdue":
            return queryset.overdue()
        return queryset


class ReviewerFilter(admin.SimpleListFilter):
    """Items a reviewer decided or holds, among the reviewers of the user's queues."""

    title = "reviewer"
    parameter_name = "reviewer"

    def lookups(self, request, model_admin):
        # One index probe per person (decision_reviewer_created), never a join over decisions.
        decided = Decision.objects.filter(reviewer=OuterRef("pk"))
        if not sees_everything(request.user):
            # The queue ids as values, so each probe is on (reviewer, queue) in the index.
            queue_ids = list(readable_queues(request.user).values_list("pk", flat=True))
            decided = decided.filter(queue_id__in=queue_ids)
        users = get_user_model().objects.filter(Exists(decided)).order_by("username")
        return [(str(user.pk), user.get_username()) for user in users[:200]]

    def queryset(self, request, queryset):
        reviewer = parse_id(self.value())
        if reviewer is None:
            return queryset
        # The reviewer's items by key (their decisions, their claims), not a test of every item.
        decided = Decision.objects.filter(reviewer_id=reviewer).values("item_id")
        claimed = ReviewItem.objects.filter(claimed_by_id=reviewer).values("pk")
        return queryset.filter(Q(pk__in=decided) | Q(pk__in=claimed))


@admin.register(ReviewItem)
class ReviewItemAdmin(QueueScopedAdmin, ReadOnlyHistoryAdmin):
    list_display = [
        "__str__", "review_link", "queue", "status", "risk_level", "kind", "integration", "sla", "claimed_by",
        "created_at",
    ]  # fmt: skip
    # Submission dates as ranges (today, the past 7 days, ...) over the item_created index;
    # a year/month drill-down would read every item's date to list the years.
    list_filter = [
        QueueFilter, "status", "risk_level", SlaFilter, ReviewerFilter, "kind", "execution_status",
        ("created_at", admin.DateFieldListFilter),
    ]  # fmt: skip
    list_select_related = ["queue", "integration", "claimed_by"]
    search_fields = ["external_id", "output__text", "input__prompt"]
    search_help_text = "External id, prompt or output text; paste an item id to find it exactly."
    list_per_page = 50
    inlines = [DecisionInline]
    readonly_fields = [
        *(field.name for field in ReviewItem._meta.get_fields() if field.concrete and not field.many_to_many),
        "deliveries",
    ]
    actions = ["bulk_approve", "retry_failed_deliveries", seed_gold_items]

    class Media:
        css = {"all": ["reviews/admin.css"]}

    @admin.display(description="Open")
    def review_link(self, item):
        return format_html('<a href="{}">Review</a>', reverse("admin:reviews_review", args=[item.pk]))

    @admin.display(description="SLA", ordering="due_at")
    def sla(self, item):
        if item.is_overdue():
            return format_html('<span class="sla-overdue">{}</span>', "overdue")
        if item.is_at_risk():
            return format_html('<span class="sla-at-risk">{}</span>', "at risk")
        return item.due_at.strftime("%Y-%m-%d %H:%M") if item.due_at else "–"

    def get_search_results(self, request, queryset, search_term):
        try:
            return queryset.filter(pk=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)

    @admin.action(description="Approve the selected items (low-risk queues only)", permissions=["review"])
    def bulk_approve(self, request, queryset):
        """One justification for many items, only in queues an admin marked for bulk approval
        and never for an item that needs two reviewers."""
        items = list(queryset.select_related("queue"))
        refused = [item for item in items if not item.may_be_bulk_approved]
        if refused:
            self.message_user(
                request,
                f"{len(refused)} selected item(s) cannot be bulk approved (their queue does not allow it, "
                "or they need two reviewers); nothing was approved.",
                messages.ERROR,
            )
            return None
        form = BulkApproveForm(request.POST if "justification" in request.POST else None)
        if form.is_bound and form.is_valid():
            approved, first_of_two, failed = 0, 0, []
            for item in items:
                try:
                    decision = services.decide(
                        item=item,
                        user=request.user,
                        action="approve",
                        justification=form.cleaned_data["justification"],
                        checklist=[True] * len(item.queue.checklist),
                        bulk=True,
                    )
                except DomainError as exc:
                    failed.append(f"{item}: {exc.detail}")
                    continue
                if decision.is_final:
                    approved += 1
                else:
                    first_of_two += 1
            self.message_user(request, f"Approved {approved} item(s).", messages.SUCCESS)
            if first_of_two:
                self.message_user(
                    request,
                    f"{first_of_two} item(s) got their first approval and wait for another reviewer.",
                    messages.INFO,
                )
            for failure in failed:
                self.message_user(request, failure, messages.WARNING)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Approve the selected items",
            "items": items,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/reviews/reviewitem/bulk_approve.html", context)

    def has_review_permission(self, request) -> bool:
        return Queue.objects.reviewable_by(request.user).exists()

    def has_seed_gold_permission(self, request) -> bool:
        return request.user.is_superuser

    @admin.display(description="Deliveries (callbacks and action execution)")
    def deliveries(self, item):
        attempts = (
            DeliveryAttempt.objects.filter(message__item=item)
            .select_related("message")
            .order_by("message__kind", "number")
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    attempt.message.get_kind_display(),
                    attempt.number,
                    attempt.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                    attempt.status_code or "–",
                    f"{attempt.duration_ms} ms" if attempt.duration_ms is not None else "no answer",
                    attempt.error or "",
                )
                for attempt in attempts
            ),
        )
        if not rows:
            return "No deliveries yet."
        columns = ("Kind", "Attempt", "Started", "Status", "Latency", "Error")
        head = format_html_join("", "<th>{}</th>", ((column,) for column in columns))
        return format_html("<table><tr>{}</tr>{}</table>", head, rows)

    @admin.action(description="Retry failed deliveries of the selected items", permissions=["retry"])
    def retry_failed_deliveries(self, request, queryset):
        retried = 0
        for message in OutboxMessage.objects.filter(item__in=queryset, status=OutboxMessage.Status.FAILED):
            delivery.retry(message=message)
            retried += 1
        self.message_user(request, f"Retrying {retried} failed delivery(ies).", messages.SUCCESS)

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("reviews.change_outboxmessage")

    def get_urls(self):
        return [*workspace_urls(self), *timeline_urls(self), *super().get_urls()]

    def has_add_permission(self, request) -> bool:
        return False  # items arrive through the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # state changes go through the decision services

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
