"""The audit log (SPEC section 10): every history event across the audited models,
newest first, filtered, a page at a time, for Compliance and superusers only.

`install(site)` mounts it at `<admin>/audit-log/` (URL name `admin:audit_log`) next
to the admin site's own URLs, and links it from the index for those who may read it.
The events come from `reviews.audit.audit_events` (keyset pages, no counts); the
"Download" links are the export (`GET /api/v1/audit/events/`) with the same filters.

Values in the log are untrusted (an integration's output ends up in an item's
history): shown as plain text, autoescaped, hidden characters marked, each value
isolated (dir="auto") and long ones cut behind an expand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib.admin import AdminSite
from django.contrib.admin.utils import quote
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.views.decorators.http import require_GET

from hitl_project.replica import reading_from_replica
from reviews.access import sees_everything
from reviews.admin.presentation import marked
from reviews.audit import AUDIT_PAGE_SIZE, AuditFilterForm, audit_events, source_for
from reviews.models import ActorKind
from reviews.selectors import latest_audit_check

FILTER_NAMES = ("actor", "actor_kind", "model", "queue", "item", "since", "until")
PREVIEW_CHARS = 120  # of a value, before its expand
SHOWN_CHARS = 20_000  # of a value, expanded; the export carries all of it
INLINE_FIELDS = 6  # of a change; the rest behind "n more fields"
EXPORT_FORMATS = (("jsonl", "JSON Lines"), ("csv", "CSV"))


@dataclass(frozen=True)
class ValueShown:
    """One old or new value: text (a string as written, anything else as JSON)."""

    text: str
    length: int
    is_none: bool = False
    exact: str = ""  # a moment shown to the second: its exact value, for the tooltip

    @property
    def is_long(self) -> bool:
        return self.length > PREVIEW_CHARS

    @property
    def preview(self) -> list[tuple[bool, str]]:
        return marked(self.text[:PREVIEW_CHARS] + "…" if self.is_long else self.text)

    @property
    def parts(self) -> list[tuple[bool, str]]:
        return marked(self.text)

    @property
    def left_out(self) -> int:
        return self.length - len(self.text)


def show_value(value: Any, *, moment: bool = False) -> ValueShown:
    """`moment`: the value of a date-time field, shown to the second in the site's zone."""
    if value is None:
        return ValueShown("", 0, is_none=True)
    if moment and isinstance(value, str):
        try:
            text = date_format(localtime(datetime.fromisoformat(value)), "Y-m-d H:i:s")
        except (ValueError, OverflowError):
            pass
        else:
            return ValueShown(text, len(text), exact=value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return ValueShown(text[:SHOWN_CHARS], len(text))


def is_moment(source, name: str) -> bool:
    try:
        return isinstance(source.history._meta.get_field(name), models.DateTimeField)
    except FieldDoesNotExist:
        return False


@dataclass(frozen=True)
class ChangeShown:
    field: str
    old: ValueShown
    new: ValueShown
    created: bool  # a creation has new values only

    @property
    def values(self) -> list[ValueShown]:
        return [self.new] if self.created else [self.old, self.new]


@dataclass(frozen=True)
class ChangeGroup:
    """Changes shown together; a group with a summary is behind an expand."""

    summary: str | None
    changes: list[ChangeShown]


@dataclass
class EventRow:
    """An event of `audit_events` as the page shows it."""

    at: datetime
    actor_kind: str
    actor_kind_label: str
    actor_label: list[tuple[bool, str]]
    model_name: str
    model: str
    object_id: str
    object_url: str | None
    item: str | None
    item_url: str | None
    event: str
    change_groups: list[ChangeGroup]
    reason: list[tuple[bool, str]] | None


ACTOR_KINDS = dict(ActorKind.choices)
ITEM = "reviews.reviewitem"


class AuditLog:
    """The audit log view of one admin site."""

    def __init__(self, site: AdminSite):
        self.site = site

    def change_url(self, label: str, object_id: str) -> str | None:
        source = source_for(label)
        if source is None or not self.site.is_registered(source.model):
            return None
        opts = source.model._meta
        try:
            return reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[quote(object_id)],
                current_app=self.site.name,
            )
        except NoReverseMatch:
            return None

    def item_url(self, item_id: str) -> str:
        """An item's timeline (its whole story), or its change page where there is none."""
        try:
            return reverse("admin:reviews_reviewitem_timeline", args=[item_id], current_app=self.site.name)
        except NoReverseMatch:
            return self.change_url(ITEM, item_id)

    def row(self, event: dict) -> EventRow:
        source = source_for(event["model"])
        name = event["actor"]["name"]
        kind = event["actor"]["kind"]
        created = event["event"] == "created"
        changes = []
        for field, (old, new) in event["changes"].items():
            moment = source is not None and is_moment(source, field)
            changes.append(
                ChangeShown(field, show_value(old, moment=moment), show_value(new, moment=moment), created)
            )
        groups = [ChangeGroup(None, changes[:INLINE_FIELDS])] if changes else []
        if len(changes) > INLINE_FIELDS:
            more = len(changes) - INLINE_FIELDS
            groups.append(ChangeGroup(f"{more} more field{'s' if more > 1 else ''}", changes[INLINE_FIELDS:]))
        return EventRow(
            at=datetime.fromisoformat(event["at"]),
            actor_kind=kind,
            actor_kind_label=str(ACTOR_KINDS.get(kind, kind)),
            actor_label=marked(f"system:{name}" if kind == ActorKind.SYSTEM else name),
            model_name=source.verbose_name if source else event["model"],
            model=event["model"],
            object_id=event["object_id"],
            object_url=(
                self.item_url(event["object_id"])
                if event["model"] == ITEM
                else self.change_url(event["model"], event["object_id"])
            ),
            item=event["item"],
            item_url=self.item_url(event["item"]) if event["item"] else None,
            event=event["event"],
            change_groups=groups,
            reason=marked(event["reason"]) if event["reason"] else None,
        )

    def view(self, request):
        """The filter form, one page of events, "Older" and the download links."""
        if not sees_everything(request.user):
            raise PermissionDenied("The audit log is for compliance staff and superusers.")
        form = AuditFilterForm(request.GET)
        rows, older_url, newest_url, downloads = [], None, None, []
        with reading_from_replica():  # the history, and the queue filter's lookup
            if form.is_valid():
                filters = form.filters()
                cursor = form.cleaned_data["before"]
                events, next_cursor = audit_events(**filters, before=cursor, limit=AUDIT_PAGE_SIZE)
                rows = [self.row(event) for event in events]
                chosen = {name: form.data[name] for name in FILTER_NAMES if form.data.get(name)}
                if next_cursor:
                    older_url = "?" + urlencode({**chosen, "before": next_cursor})
                if cursor:
                    newest_url = "?" + urlencode(chosen)
                export = reverse("api:audit-events")
                downloads = [
                    (label, f"{export}?{urlencode({**chosen, 'format': fmt})}")
                    for fmt, label in EXPORT_FORMATS
                ]
        request.current_app = self.site.name
        context = {
            **self.site.each_context(request),
            "title": "Audit log",
            "is_nav_sidebar_enabled": False,  # the table needs the width
            "form": form,
            "rows": rows,
            "older_url": older_url,
            "newest_url": newest_url,
            "downloads": downloads,
            "page_size": AUDIT_PAGE_SIZE,
        }
        return TemplateResponse(request, "admin/audit_log.html", context)


def install(site: AdminSite) -> None:
    """Mount the audit log at `<site>/audit-log/` and link it from the site's index for
    those who may read it (`audit_log_url` in the index's context), with the result of
    the last audit check (`audit_check`)."""
    site_urls, site_index = site.get_urls, site.index
    audit_log = AuditLog(site)

    def get_urls():
        view = site.admin_view(require_GET(audit_log.view))
        return [path("audit-log/", view, name="audit_log"), *site_urls()]

    def index(request, extra_context=None):
        audit = {}
        if sees_everything(request.user):
            audit = {
                "audit_log_url": reverse("admin:audit_log", current_app=site.name),
                "audit_check": latest_audit_check(),
            }
        return site_index(request, {**audit, **(extra_context or {})})

    site.get_urls = get_urls
    site.index = index
