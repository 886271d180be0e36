"""Admin for the review domain.

Policy admins edit queues, reason codes and integrations here. Items are shown
scoped to the queues the user may review; decisions and history are read-only
for everyone, superusers included.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from rest_framework.authtoken.models import TokenProxy
from simple_history.admin import SimpleHistoryAdmin

from reviews import services
from reviews.access import may_read_item, readable_queues, sees_everything
from reviews.delivery import worker as delivery
from reviews.exceptions import DomainError
from reviews.models import (
    ApiKey,
    BacklogItem,
    Decision,
    DeliveryAttempt,
    Incident,
    Integration,
    OutboxMessage,
    Queue,
    ReasonCode,
    ReviewItem,
    StaffToken,
)
from reviews.selectors import records_naming
from reviews.workspace import workspace_urls

admin.site.site_header = "HITL review gates"
admin.site.site_title = "HITL review gates"
admin.site.index_title = "Review workspace"


MAX_DATABASE_ID = 2**63 - 1


def parse_id(value) -> int | None:
    """A database id from a URL or a query string: plain ASCII digits in bigint range
    (`"²".isdigit()` is true and `int()` takes it; databases overflow past 2**63)."""
    value = str(value if value is not None else "")
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_DATABASE_ID:
        return None
    return int(value)


class GuardedChangeList(ChangeList):
    """Django parses the date drill-down (`created_at__year=…`) with int() and catches
    ValueError only; a year of 10**20 overflows. Any such value is a bad lookup, which
    the changelist answers with its "?e=1" redirect."""

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except OverflowError as exc:
            raise IncorrectLookupParameters(exc) from exc


class GuardedAdmin:
    """Mixed into every admin of the project: URL and query parameters are parsed, not trusted."""

    def get_changelist(self, request, **kwargs):
        return GuardedChangeList

    def changelist_view(self, request, extra_context=None):
        # PostgreSQL text cannot hold NUL, so a NUL in a search or filter would fail the query.
        if any("\x00" in key or "\x00" in value for key, values in request.GET.lists() for value in values):
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")
        # An action runs on the posted selection, which Django filters on without parsing.
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) if request.method == "POST" else []
        if not all(self._is_primary_key(value) for value in selected):
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")
        return super().changelist_view(request, extra_context)

    def _is_primary_key(self, value: str) -> bool:
        field = self.model._meta.pk
        if isinstance(field, models.AutoField | models.BigAutoField | models.IntegerField):
            return parse_id(value) is not None
        try:
            field.to_python(value)
        except ValidationError:
            return False
        return "\x00" not in value


class ReadOnlyHistoryAdmin(GuardedAdmin, SimpleHistoryAdmin):
    """History pages may be read, never reverted: reverting rewrites the past
    (and for rules would restore the row without its conditions or a new version)."""

    def revert_disabled(self, request, obj=None) -> bool:
        return True

    def history_view(self, request, object_id, extra_context=None):
        self._ensure_visible(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # simple-history saves a POST to this view even for view-only users.
        if request.method == "POST":
            raise PermissionDenied
        if parse_id(version_id) is None:
            raise Http404
        self._ensure_visible(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def _ensure_visible(self, request, object_id) -> None:
        """simple-history falls back to the history table for objects outside
        get_queryset, which would show other queues' items: scope it first."""
        try:
            visible = self.get_queryset(request).filter(pk=unquote(object_id)).exists()
        except (ValueError, ValidationError, OverflowError):
            visible = False
        if not visible:
            raise Http404


class QueueScopedAdmin(GuardedAdmin, admin.ModelAdmin):
    """Rows limited to the queues whose items the user may read (`reviews.access`),
    reached through `queue_lookup`.

    `editors_see_every_row`: for rows that carry no item content (queues, backlog
    entries, delivery status), whoever may change the model sees them all, so policy
    admins can edit queues and retry deliveries without reading any item.
    """

    queue_lookup = "queue"
    editors_see_every_row = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        opts = self.model._meta
        if self.editors_see_every_row and request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"):
            return queryset
        return queryset.filter(**{f"{self.queue_lookup}__in": readable_queues(request.user)})


@admin.register(Queue)
class QueueAdmin(QueueScopedAdmin, ReadOnlyHistoryAdmin):
    queue_lookup = "pk"
    editors_see_every_row = True
    list_display = [
        "slug",
        "name",
        "sla_minutes",
        "required_approvals",
        "timeout_outcome",
        "escalation_queue",
    ]
    list_select_related = ["escalation_queue"]
    search_fields = ["slug", "name"]
    filter_horizontal = ["reviewer_groups"]
    prepopulated_fields = {"slug": ["name"]}

    fieldsets = [
        (None, {"fields": ["name", "slug", "description"]}),
        (
            "Review",
            {"fields": ["required_approvals", "checklist", "reviewer_groups", "bulk_approve_allowed"]},
        ),
        ("Deadline", {"fields": ["sla_minutes", "timeout_outcome", "escalation_queue"]}),
    ]


@admin.register(ReasonCode)
class ReasonCodeAdmin(ReadOnlyHistoryAdmin):
    list_display = ["code", "label", "applies_to", "active", "creates_backlog_item"]
    list_filter = ["active", "creates_backlog_item"]
    search_fields = ["code", "label"]

    def get_readonly_fields(self, request, obj=None):
        # Decisions cite codes by their code: renaming one would rewrite what they say.
        return ["code"] if obj is not None and obj.is_cited else []

    def has_delete_permission(self, request, obj=None) -> bool:
        # Decisions cite their codes; deleting one would rewrite them. Retire it (active off).
        return False


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "revoked_at", "last_used_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        # A key's secret is shown once, so keys are made by create_integration.
        return False


class IntegrationForm(forms.ModelForm):
    """The SSRF guard on the callback and action URLs, as `create_integration` applies it."""

    def clean(self):
        data = super().clean()
        for name, error in services.unsafe_url_errors(
            callback_url=data.get("callback_url", ""), action_url=data.get("action_url", "")
        ).items():
            self.add_error(name, error)
        return data


@admin.register(Integration)
class IntegrationAdmin(ReadOnlyHistoryAdmin):
    form = IntegrationForm
    list_display = ["name", "slug", "is_active", "callback_url", "action_url", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fields = ["name", "slug", "is_active", "callback_url", "action_url", "action_delivery"]
    # Record only marks actions executed without calling anything: set when an integration
    # is made (the demo's), never switched here, where it would silence a live integration.
    readonly_fields = ["action_delivery"]
    inlines = [ApiKeyInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyHistoryAdmin):
    list_display = ["integration", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["integration"]
    list_select_related = ["integration"]
    fields = ["integration", "name", "prefix", "expires_at", "revoked_at", "created_at", "last_used_at"]
    # Revocation is final: a key is revoked with the action, never un-revoked (issue a new one).
    readonly_fields = ["integration", "prefix", "revoked_at", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.revoked_at is not None:
            return [*self.readonly_fields, "name", "expires_at"]
        return self.readonly_fields

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            services.revoke_api_key(api_key=key)
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)


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


class QueueFilter(admin.SimpleListFilter):
    """Only the queues the user may see, so a filter never reveals other queues' names."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(queue.slug, queue.name) for queue in readable_queues(request.user).order_by("name")]

    def queryset(self, request, queryset):
        return queryset.filter(queue__slug=self.value()) if self.value() else queryset


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
        users = get_user_model().objects.filter(decisions__isnull=False).distinct().order_by("username")
        if not sees_everything(request.user):
            users = users.filter(decisions__queue__in=readable_queues(request.user))
        return [(str(user.pk), user.get_username()) for user in users[:200]]

    def queryset(self, request, queryset):
        reviewer = parse_id(self.value())
        if reviewer is None:
            return queryset
        decided = Decision.objects.filter(item=OuterRef("pk"), reviewer_id=reviewer)
        return queryset.filter(Q(claimed_by_id=reviewer) | Exists(decided))


@admin.register(ReviewItem)
class ReviewItemAdmin(QueueScopedAdmin, ReadOnlyHistoryAdmin):
    list_display = [
        "__str__", "review_link", "queue", "status", "risk_level", "kind", "integration", "sla", "claimed_by",
        "created_at",
    ]  # fmt: skip
    list_filter = [QueueFilter, "status", "risk_level", SlaFilter, ReviewerFilter, "kind", "execution_status"]
    list_select_related = ["queue", "integration", "claimed_by"]
    search_fields = ["external_id", "output__text", "input__prompt"]
    search_help_text = "External id, prompt or output text; paste an item id to find it exactly."
    show_full_result_count = False
    date_hierarchy = "created_at"
    list_per_page = 50
    inlines = [DecisionInline]
    readonly_fields = [
        *(field.name for field in ReviewItem._meta.get_fields() if field.concrete and not field.many_to_many),
        "deliveries",
    ]
    actions = ["bulk_approve", "retry_failed_deliveries"]

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
        return [*workspace_urls(self), *super().get_urls()]

    def has_add_permission(self, request) -> bool:
        return False  # items arrive through the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # state changes go through the decision services

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "status_code", "duration_ms", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(QueueScopedAdmin):
    """Deliveries. Policy admins see every one, to retry failed ones, but the payload
    (the item's content) only for items they may read."""

    queue_lookup = "item__queue"
    editors_see_every_row = True
    list_display = ["created_at", "item", "kind", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status", "kind"]
    list_select_related = ["item"]
    search_fields = ["=msg_id", "=item__id"]
    show_full_result_count = False
    fields = [
        "item", "kind", "msg_id", "url", "status", "attempts", "max_attempts", "next_attempt_at",
        "delivered_at", "last_error", "payload", "created_at",
    ]  # fmt: skip
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["retry"]

    def get_fields(self, request, obj=None):
        if obj is not None and not may_read_item(request.user, obj.item):
            return [name for name in self.fields if name != "payload"]
        return self.fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Retry the selected failed deliveries", permissions=["change"])
    def retry(self, request, queryset):
        failed = list(queryset.filter(status=OutboxMessage.Status.FAILED))
        for message in failed:
            delivery.retry(message=message)
        self.message_user(request, f"Retrying {len(failed)} failed delivery(ies).", messages.SUCCESS)


@admin.register(Decision)
class DecisionAdmin(QueueScopedAdmin):
    # By the item's queue now, as everywhere: a decision shows the item's content, and
    # an escalated item leaves its earlier queue's reviewers behind.
    queue_lookup = "item__queue"
    list_display = ["created_at", "item", "queue", "reviewer", "action", "is_final"]
    list_filter = ["action", QueueFilter, "is_final"]
    list_select_related = ["item", "queue", "reviewer"]
    show_full_result_count = False
    readonly_fields = [
        "item",
        "reviewer",
        "queue",
        "action",
        "justification",
        "cited_codes",
        "edited_output",
        "edited_action",
        "checklist",
        "round",
        "step",
        "is_final",
        "seconds_spent",
        "created_at",
    ]

    # Append-only for everyone: decisions are made through the review services.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BacklogItem)
class BacklogItemAdmin(QueueScopedAdmin, ReadOnlyHistoryAdmin):
    """Root causes to fix. Policy admins work them, so they see every entry; the
    decisions behind one are linked only where the user may read the item."""

    editors_see_every_row = True
    list_display = ["title", "reason_code", "queue", "status", "updated_at"]
    list_filter = ["status", "reason_code", QueueFilter]
    list_select_related = ["reason_code", "queue"]
    fields = ["title", "reason_code", "queue", "status", "notes", "raised_by"]
    readonly_fields = ["reason_code", "queue", "raised_by"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.update_backlog_item(
            backlog=obj, title=data["title"], status=data["status"], notes=data.get("notes", "")
        )

    def get_object(self, request, object_id, from_field=None):
        backlog = super().get_object(request, object_id, from_field)
        if backlog is not None:
            # Read by `raised_by`, which is given only the object.
            backlog.readable_queue_ids = set(readable_queues(request.user).values_list("pk", flat=True))
        return backlog

    @admin.display(description="Raised by decisions")
    def raised_by(self, backlog):
        decisions = list(backlog.decisions.select_related("reviewer", "item").order_by("created_at"))
        visible = getattr(backlog, "readable_queue_ids", set())
        readable = [d for d in decisions if d.item.queue_id in visible]
        links = format_html_join(
            ", ",
            '<a href="{}">{} by {}</a>',
            (
                (reverse("admin:reviews_review", args=[d.item_id]), d.get_action_display(), d.reviewer)
                for d in readable
            ),
        )
        hidden = len(decisions) - len(readable)
        if hidden:
            return format_html("{}{}{} in queues you do not review", links, "; " if readable else "", hidden)
        return links or "–"

    def has_add_permission(self, request) -> bool:
        return False  # opened by decisions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(QueueScopedAdmin, ReadOnlyHistoryAdmin):
    queue_lookup = "item__queue"
    list_display = ["created_at", "item", "severity", "source", "status"]
    list_filter = ["severity", "source", "status"]
    list_select_related = ["item"]
    show_full_result_count = False
    fields = [
        "item",
        "severity",
        "source",
        "status",
        "description",
        "decision",
        "reported_by",
        "reported_by_integration",
        "created_at",
    ]
    readonly_fields = [
        "item",
        "source",
        "decision",
        "reported_by",
        "reported_by_integration",
        "created_at",
    ]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.update_incident(
            incident=obj, severity=data["severity"], status=data["status"], description=data["description"]
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- People: accounts on the audit trail are deactivated, never deleted -------------------------------

admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class AuditedUserAdmin(GuardedAdmin, UserAdmin):
    """A user named in decisions, claims, incidents or history is kept, under the same
    username: deleting them would leave records that say "changed by None", renaming
    them would change who those records say acted. Untick Active instead."""

    def get_readonly_fields(self, request, obj=None):
        # Decisions show the reviewer's username: renaming would rewrite who decided.
        if obj is not None and records_naming(obj):
            return [*super().get_readonly_fields(request, obj), "username"]
        return super().get_readonly_fields(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        user = self.get_object(request, unquote(object_id))
        if user is not None:
            named_in = records_naming(user)
            if named_in:
                self.message_user(request, self._kept_message(user, named_in), messages.ERROR)
                return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        kept = [self._kept_message(user, named) for user in objs if (named := records_naming(user))]
        if kept:
            # The reason, rather than "you may not delete decisions": nobody may.
            return deleted, counts, set(), [*kept, *protected]
        return deleted, counts, perms_needed, protected

    @staticmethod
    def _kept_message(user, named_in: list[str]) -> str:
        return (
            f"{user.get_username()} appears in {', '.join(named_in)} and cannot be deleted: "
            "the audit trail keeps who acted. Deactivate the account instead (untick Active)."
        )


admin.site.unregister(TokenProxy)


@admin.register(StaffToken)
class StaffTokenAdmin(GuardedAdmin, admin.ModelAdmin):
    """Staff API tokens by prefix only; `manage.py drf_create_token USER` makes one and
    shows it once. A token's primary key is the token itself, so no page here links to
    a token by its key: the list goes by user, and "Revoke" deletes the user's token."""

    list_display = ["prefix", "user", "created", "revoke_link"]
    list_display_links = None
    list_select_related = ["user"]
    search_fields = ["user__username"]
    actions = None  # selection checkboxes would carry the keys

    @admin.display(description="Token")
    def prefix(self, token) -> str:
        return f"{token.key[:6]}…"

    @admin.display(description="")
    def revoke_link(self, token) -> str:
        return format_html(
            '<a href="{}">Revoke</a>', reverse("admin:reviews_stafftoken_revoke", args=[token.user_id])
        )

    def get_urls(self):
        revoke = self.admin_site.admin_view(self.revoke_view)
        return [path("<str:user_id>/revoke/", revoke, name="reviews_stafftoken_revoke"), *super().get_urls()]

    def revoke_view(self, request, user_id: str):
        if parse_id(user_id) is None:
            raise Http404
        token = get_object_or_404(StaffToken.objects.select_related("user"), user_id=parse_id(user_id))
        if not self.has_delete_permission(request, token):
            raise PermissionDenied
        if request.method == "POST":
            with transaction.atomic():
                # Logged by the prefix and the user; the key in the log's id is dead once deleted.
                self.log_deletions(request, StaffToken.objects.filter(pk=token.pk))
                token.delete()
            self.message_user(request, f"Revoked the API token of {token.user}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:reviews_stafftoken_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Revoke the API token of {token.user}",
            "token": token,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/reviews/stafftoken/revoke.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:reviews_stafftoken_changelist"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def guard_other_admins() -> None:
    """The admins of other apps (django-axes' lockout pages, auth groups) parse their
    query strings the same way: re-register each with the GuardedAdmin mixin."""
    for model, model_admin in list(admin.site._registry.items()):
        if not isinstance(model_admin, GuardedAdmin):
            guarded = type(f"Guarded{type(model_admin).__name__}", (GuardedAdmin, type(model_admin)), {})
            admin.site.unregister(model)
            admin.site.register(model, guarded)


guard_other_admins()
