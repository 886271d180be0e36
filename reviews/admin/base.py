"""What every admin of the project shares: query and URL parameters parsed, not trusted
(`GuardedAdmin`), history read-only (`ReadOnlyHistoryAdmin`), rows scoped to what the
user may read (`QueueScopedAdmin`, `reviews.access`), and the queue filter."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import Http404, HttpResponseRedirect
from simple_history.admin import SimpleHistoryAdmin

from reviews.access import readable_queues, visible_rows

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
        return visible_rows(request.user, queryset, queue_lookup=self.queue_lookup)


class QueueFilter(admin.SimpleListFilter):
    """Only the queues the user may see, so a filter never reveals other queues' names."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(queue.slug, queue.name) for queue in readable_queues(request.user).order_by("name")]

    def queryset(self, request, queryset):
        return queryset.filter(queue__slug=self.value()) if self.value() else queryset
