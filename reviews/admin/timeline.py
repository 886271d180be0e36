"""The item timeline page (SPEC section 10): `/admin/reviews/reviewitem/<id>/timeline/`.

Whoever may read the item (`reviews.access.may_read_item`) may read its timeline;
anyone else, and any id that is not an item's, gets a 404. The events come from
`reviews.timeline.item_timeline` in a fixed number of queries; here they are made
ready for the template: hidden characters marked in every value, long values split
into a preview and the rest (shown by a <details>, no script), and links kept only
where the reader has the permission to follow them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from reviews.access import may_read_item
from reviews.admin.presentation import marked
from reviews.models import ReviewItem
from reviews.timeline import INCLUDED_CHARS, Detail, TimelineEvent, Value, item_timeline

Parts = list[tuple[bool, str]]


@dataclass(frozen=True)
class ValueShown:
    preview: Parts  # the whole value when it is short
    rest: Parts | None  # the whole value again, for "Show all", when it is long
    length: int
    cut: bool  # longer than what the page holds
    url: str
    is_code: bool
    empty: bool

    @property
    def length_text(self) -> str:
        return f"{self.length:,}"

    @property
    def included_text(self) -> str:
        return f"{INCLUDED_CHARS:,}"

    @property
    def has_hidden(self) -> bool:
        return any(hidden for hidden, _ in self.rest or self.preview)


@dataclass(frozen=True)
class DetailShown:
    label: str
    value: ValueShown | None
    old: ValueShown | None
    entries: list[ValueShown]


@dataclass
class EventShown:
    event: TimelineEvent
    details: list[DetailShown] = field(default_factory=list)
    links: list = field(default_factory=list)


def parse_item_id(value: str) -> uuid.UUID | None:
    """Items are keyed by UUID (integer ids go through `base.parse_id`)."""
    if not value.isascii() or len(value) > 36:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def shown_value(value: Value) -> ValueShown:
    if value.is_long:
        preview, rest = marked(value.preview), marked(value.text)
    else:
        preview, rest = marked(value.text), None
    return ValueShown(preview, rest, value.length, value.cut, value.url, value.is_code, value.empty)


def shown_detail(detail: Detail) -> DetailShown:
    return DetailShown(
        label=detail.label,
        value=shown_value(detail.value) if detail.value is not None else None,
        old=shown_value(detail.old) if detail.old is not None else None,
        entries=[shown_value(entry) for entry in detail.entries],
    )


def shown_event(event: TimelineEvent, user) -> EventShown:
    links = [link for link in event.links if link.url and (not link.perm or user.has_perm(link.perm))]
    return EventShown(event, [shown_detail(d) for d in event.details], links)


class TimelinePage:
    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site

    def view(self, request, object_id: str):
        item_id = parse_item_id(object_id)
        if item_id is None:
            raise Http404("No such item.")
        item = (
            ReviewItem.objects.select_related("integration", "queue", "claimed_by").filter(pk=item_id).first()
        )
        if item is None or not may_read_item(request.user, item):
            raise Http404("No such item.")
        request.current_app = self.admin_site.name
        events = [shown_event(event, request.user) for event in item_timeline(item)]
        opts = ReviewItem._meta
        user = request.user
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": f"Timeline of {item.external_id or item.pk}",
            "item": item,
            "events": events,
            "kinds": sorted({shown.event.kind for shown in events}),
            "time_zone": timezone.get_current_timezone_name(),
            "hidden_characters": any(
                value.has_hidden
                for shown in events
                for detail in shown.details
                for value in [detail.value, detail.old, *detail.entries]
                if value is not None
            ),
            "review_url": self.url("reviews_review", item.pk),
            "change_url": self.url("reviews_reviewitem_change", item.pk)
            if user.has_perm("reviews.view_reviewitem")
            else "",
            "history_url": self.url("reviews_reviewitem_history", item.pk)
            if user.has_perm("reviews.view_reviewitem")
            else "",
        }
        return TemplateResponse(request, "admin/reviews/reviewitem/timeline.html", context)

    def url(self, name: str, *args) -> str:
        return reverse(f"admin:{name}", args=args, current_app=self.admin_site.name)


def timeline_urls(model_admin) -> list:
    """URL patterns to prepend to `ReviewItemAdmin.get_urls()` (before the admin's catch-all)."""
    view = model_admin.admin_site.admin_view(require_GET(TimelinePage(model_admin).view))
    return [path("<str:object_id>/timeline/", view, name="reviews_reviewitem_timeline")]
