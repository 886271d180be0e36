"""Review quality in the admin: seeding gold items (a superuser's action on the item
list) and the list of gold answers, read by compliance staff and superusers only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from reviews import services
from reviews.access import sees_everything
from reviews.admin.base import GuardedAdmin
from reviews.exceptions import DomainError
from reviews.models import GoldAnswer, Queue


class SeedGoldForm(forms.Form):
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.order_by("name"), help_text="Where reviewers will meet it."
    )
    answer = forms.ChoiceField(choices=GoldAnswer.Answer.choices, label="Right answer")
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why (shown to compliance, never reviewers).",
    )


def seed_gold_items(model_admin, request, queryset):
    """Copy the selected items into a queue as gold items with a known right answer."""
    items = list(queryset.select_related("integration"))
    form = SeedGoldForm(request.POST if "answer" in request.POST else None)
    if form.is_bound and form.is_valid():
        seeded, failed = 0, []
        for item in items:
            try:
                services.seed_gold_item(
                    item=item,
                    queue=form.cleaned_data["queue"],
                    answer=form.cleaned_data["answer"],
                    note=form.cleaned_data["note"],
                    user=request.user,
                )
            except DomainError as exc:
                failed.append(f"{item}: {exc.detail}")
                continue
            seeded += 1
        model_admin.message_user(
            request, f"Seeded {seeded} gold item(s) into {form.cleaned_data['queue']}.", messages.SUCCESS
        )
        for failure in failed:
            model_admin.message_user(request, failure, messages.WARNING)
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Seed gold items",
        "items": items,
        "form": form,
        "opts": model_admin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/reviews/reviewitem/seed_gold.html", context)


seed_gold_items.short_description = "Seed as gold items (known right answer) into a queue"
seed_gold_items.allowed_permissions = ["seed_gold"]


@admin.register(GoldAnswer)
class GoldAnswerAdmin(GuardedAdmin, admin.ModelAdmin):
    list_display = ["created_at", "gold_item", "answer", "copied_from", "seeded_by"]
    list_filter = ["answer"]
    list_select_related = ["item", "copied_from", "seeded_by"]
    fields = ["item", "answer", "copied_from", "note", "seeded_by", "created_at"]
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description="Gold item")
    def gold_item(self, gold):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:reviews_review", args=[gold.item_id]), gold.item
        )

    # Which items are gold is for compliance and superusers: a reviewer must not know.
    def has_module_permission(self, request) -> bool:
        return sees_everything(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return sees_everything(request.user)

    def has_add_permission(self, request) -> bool:
        return False  # seeded from the item list

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
