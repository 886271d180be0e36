"""Setting the gate up: queues, reason codes, integrations and their API keys, and the
people (accounts on the audit trail are kept, staff API tokens shown by prefix)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from rest_framework.authtoken.models import TokenProxy

from reviews import services
from reviews.admin.base import GuardedAdmin, QueueScopedAdmin, ReadOnlyHistoryAdmin, parse_id
from reviews.models import (
    ApiKey,
    Integration,
    Queue,
    ReasonCode,
    StaffToken,
)
from reviews.selectors import records_naming


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
