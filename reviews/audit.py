"""Reading the audit trail: what each history table is about, who acted, what changed.

Every audited model has a history table (simple-history) whose rows carry the
actor (`reviews.history`). This module knows, for each of them, which item and
queue a row belongs to (for the filters and the item timeline), and turns a row
and the one before it into an event: `created`, `changed` or `deleted`, with the
fields that changed as `{field: [old, new]}`.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from itertools import compress, repeat
from operator import is_not, itemgetter, ne

from django import forms
from django.apps import apps
from django.db import connections, models, router
from django.db.models import Case, OuterRef, Q, Subquery, When
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from reviews.models import ActorKind, AuditedHistory, OutboxMessage, Queue

EVENT_TYPES = {"+": "created", "~": "changed", "-": "deleted"}
EMPTY_VALUES = (None, "", [], {})  # left out of a creation's changes
EMPTY_JSON = frozenset({"null", '""', "[]", "{}"})  # the text of each, as both databases write it
HISTORY_COLUMNS = frozenset(
    {
        "history_id",
        "history_date",
        "history_type",
        "history_user_id",
        "history_change_reason",
        "history_actor",
        "history_actor_kind",
        "history_relation_id",
    }
)


@dataclass(frozen=True)
class HistorySource:
    """One audited model and its history table."""

    model: type[models.Model]  # the audited model
    history: type[models.Model]  # its history table
    item_path: str | None  # the history column naming the item, if any
    queue_path: str | None  # the history column naming the queue, if any

    @property
    def label(self) -> str:
        """The model's name in events and filters, e.g. `reviews.reviewitem`."""
        return self.model._meta.label_lower

    @property
    def verbose_name(self) -> str:
        return str(self.model._meta.verbose_name)

    def tracked_fields(self) -> list[models.Field]:
        return [f for f in self.history._meta.concrete_fields if f.attname not in HISTORY_COLUMNS]


# For models whose rows belong to an item or a queue: the history column saying which.
ITEM_PATHS = {
    "reviews.reviewitem": "id",
    "reviews.decision": "item_id",
    "reviews.incident": "item_id",
    "reviews.outboxmessage": "item_id",
}
QUEUE_PATHS = {
    "reviews.reviewitem": "queue_id",
    "reviews.decision": "queue_id",
    "reviews.queue": "id",
    "reviews.backlogitem": "queue_id",
    "policies.gaterule": "queue_id",
}


@cache
def history_sources() -> tuple[HistorySource, ...]:
    """Every audited model, in a stable order (by label)."""
    sources = []
    for history in apps.get_models():
        if not issubclass(history, AuditedHistory):
            continue
        model = history.instance_type
        label = model._meta.label_lower
        sources.append(HistorySource(model, history, ITEM_PATHS.get(label), QUEUE_PATHS.get(label)))
    return tuple(sorted(sources, key=lambda s: s.label))


def source_for(label: str) -> HistorySource | None:
    return next((s for s in history_sources() if s.label == label), None)


_AS_THEY_ARE = frozenset({str, int, bool, float, list, dict, type(None)})


def plain(value):
    """A history value as JSON can carry it."""
    if type(value) in _AS_THEY_ARE:  # most of them, and the quickest to tell
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


def event_type(row) -> str:
    return EVENT_TYPES.get(row.history_type, row.history_type)


def actor(row) -> dict:
    """`{"kind": "user" | "integration" | "system", "name": ...}` as the row recorded it."""
    return {"kind": row.history_actor_kind or ActorKind.SYSTEM, "name": row.history_actor or "unattributed"}


def changes(source: HistorySource, row, previous=None) -> dict[str, list]:
    """`{field: [old, new]}`: every non-empty field of a creation, the fields a change
    changed (against the row before it of the same object), nothing for a deletion."""
    kind = event_type(row)
    if kind == "deleted":
        return {}
    result = {}
    for field in source.tracked_fields():
        new = getattr(row, field.attname)
        old = getattr(previous, field.attname) if previous is not None else None
        if kind == "created" and new in EMPTY_VALUES:
            continue
        if previous is None or old != new:
            result[field.name] = [plain(old), plain(new)]
    return result


# --- The audit log and its export: every event, newest first, a page at a time -----------------
#
# The log is the union of every history table, ordered newest first by (history_date,
# model label, history_id), so that events written in the same microsecond still have
# one place each. A page of the log asks each table for its next `limit + 1` rows after
# the cursor (one query per table, each an index scan on history_date) and merges them;
# a second query per table on the page fetches the versions before the changed rows,
# for their diffs. The export walks each table on its own, `EXPORT_PAGE_SIZE` rows a
# query, and merges the tables as it goes (`all_audit_events`). Nothing is counted.
#
# Rows are read as plain tuples, with their date-times and JSON as the database's text:
# the export reads millions of them, and turning every value of a row and of the
# version before it into Python objects would take most of its time. Equal text is an
# equal value, so a diff decodes only the values whose text changed (`_Table.changes`).

AUDIT_PAGE_SIZE = 50
EXPORT_PAGE_SIZE = 2000
# Delivery attempts belong to an item through their outbox message.
ITEM_VIA_MESSAGE = "reviews.deliveryattempt"
SYSTEM_PREFIX = "system:"
DATE_HELP = "Enter a date (2025-06-30) or a date and time (2025-06-30 14:05)."
MAX_HISTORY_ID = 2**63 - 1


@dataclass(frozen=True)
class AuditPosition:
    """Where an event stands in the log; a cursor names the last event of a page."""

    at: datetime
    label: str
    history_id: int

    @property
    def key(self) -> tuple:
        return (self.at, self.label, self.history_id)

    def encode(self) -> str:
        text = f"{self.at.isoformat(timespec='microseconds')}|{self.label}|{self.history_id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> AuditPosition:
        """The position a cursor names; ValueError for anything `encode` did not write."""
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            at_text, label, history_id = text.split("|")
            at = datetime.fromisoformat(at_text)
            number = int(history_id)
            if at.tzinfo is not None:
                at.astimezone(UTC)  # out of range near year 1 or 9999
        except (ValueError, OverflowError, UnicodeError, binascii.Error) as exc:
            raise ValueError("Not a cursor of the audit log.") from exc
        if at.tzinfo is None or source_for(label) is None or not 0 < number <= MAX_HISTORY_ID:
            raise ValueError("Not a cursor of the audit log.")
        return cls(at, label, number)


def _older_than(position: AuditPosition, label: str) -> Q:
    """The rows of table `label` that come after `position` in the log. Written as
    `history_date <= t AND NOT (...)` rather than an OR, so the database walks the
    history_date index in order instead of sorting everything older."""
    if label == position.label:
        return Q(history_date__lte=position.at) & ~Q(
            history_date=position.at, history_id__gte=position.history_id
        )
    if label < position.label:
        return Q(history_date__lte=position.at)
    return Q(history_date__lt=position.at)


def _queue_named(text: str) -> Q:
    """The queue whose slug (or id) `text` is."""
    lookup = Q(slug=text)
    if text.isascii() and text.isdigit() and int(text) <= MAX_HISTORY_ID:
        lookup |= Q(pk=int(text))
    return lookup


def _queue_ids(queue) -> list:
    """A queue given as a Queue, its id, or its slug (or id) as text."""
    if isinstance(queue, Queue):
        return [queue.pk]
    if isinstance(queue, int):
        return [queue]
    return list(Queue.objects.filter(_queue_named(str(queue))).values_list("pk", flat=True))


def _item_condition(source: HistorySource, item) -> Q | None:
    if source.label == ITEM_VIA_MESSAGE:
        return Q(message_id__in=OutboxMessage.objects.filter(item_id=item).values("pk"))
    if source.item_path:
        return Q(**{source.item_path: item})
    return None


def _selected(
    *,
    actor: str | None = None,
    actor_kind: str | None = None,
    model: str | None = None,
    queue=None,
    item: uuid.UUID | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[HistorySource, Q]]:
    """The tables the filters (`audit_events`) can select rows of, each with its condition."""
    sources = history_sources()
    if model:
        found = source_for(model)
        if found is None:
            raise ValueError(f"No history for {model!r}.")
        sources = (found,)
    common = Q()
    if actor:
        if actor.startswith(SYSTEM_PREFIX):
            common &= Q(history_actor_kind=ActorKind.SYSTEM, history_actor=actor[len(SYSTEM_PREFIX) :])
        else:
            common &= Q(history_actor=actor)
    if actor_kind:
        common &= Q(history_actor_kind=actor_kind)
    if since is not None:
        common &= Q(history_date__gte=since)
    if until is not None:
        common &= Q(history_date__lt=until)
    queue_ids = _queue_ids(queue) if queue is not None else None
    selected = []
    for source in sources:
        conditions = common
        if queue_ids is not None:
            if not source.queue_path:
                continue
            conditions &= Q(**{f"{source.queue_path}__in": queue_ids})
        if item is not None:
            by_item = _item_condition(source, item)
            if by_item is None:
                continue
            conditions &= by_item
        selected.append((source, conditions))
    return selected


def _moment(text: str) -> datetime:
    """A date-time column read as text, as Django reads the column itself: PostgreSQL
    writes it in the connection's time zone, with its offset; SQLite keeps it naive."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=connections[router.db_for_read(AuditedHistory)].timezone)
    return value


class _Table:
    """How the log reads one history table: the columns of its rows (date-times and
    JSON as text), where each value sits in the tuple, and how a row and the version
    before it become an event.

    A row is its tracked values, then its history id, date, type, reason, actor and
    kind of actor, the id of the version before it and (delivery attempts) its item;
    a version before is the tracked values and the history id, so that the two line
    up column by column."""

    def __init__(self, source: HistorySource):
        self.source = source
        fields = [f for f in source.history._meta.concrete_fields if f.attname not in HISTORY_COLUMNS]
        self.texts = {"audit_text_history_date": Cast("history_date", models.TextField())}
        columns = []
        for field in fields:
            if isinstance(field, models.DateTimeField | models.JSONField):
                self.texts[f"audit_text_{field.attname}"] = Cast(field.attname, models.TextField())
                columns.append(f"audit_text_{field.attname}")
            else:
                columns.append(field.attname)
        self.version_columns = [*columns, "history_id"]
        self.row_columns = [
            *self.version_columns,
            "audit_text_history_date",
            "history_type",
            "history_change_reason",
            "history_actor",
            "history_actor_kind",
            "audit_previous_id",
        ]
        n = len(fields)
        self.history_id, self.date, self.type, self.reason, self.actor, self.actor_kind = range(n, n + 6)
        self.previous_id = n + 6
        names = [field.attname for field in fields]
        self.pk = names.index(source.model._meta.pk.attname)
        if source.label == ITEM_VIA_MESSAGE:
            self.row_columns.append("audit_item_id")
            self.item = n + 7
        else:
            self.item = names.index(source.item_path) if source.item_path else None
        # (index, name, decode): decode turns the text of a date-time or JSON value into
        # the value (None: the column is read as its value).
        self.tracked = [(index, field.name, self._decoder(field)) for index, field in enumerate(fields)]

    @staticmethod
    def _decoder(field: models.Field):
        if isinstance(field, models.DateTimeField):
            return _moment
        if isinstance(field, models.JSONField):
            return lambda text: field.from_db_value(text, None, None)
        return None

    def rows(self, conditions: Q, position: AuditPosition | None, limit: int) -> list[tuple]:
        """One query: the table's next `limit` rows of the log, each with the id of the
        version before it (for changes) and, for delivery attempts, its item."""
        manager = self.source.history._default_manager
        pk = self.source.model._meta.pk.attname
        rows = manager.filter(conditions)
        if position is not None:
            rows = rows.filter(_older_than(position, self.source.label))
        earlier = (
            manager.filter(**{pk: OuterRef(pk)}, history_id__lt=OuterRef("history_id"))
            .order_by("-history_id")
            .values("history_id")[:1]
        )
        # Typed as the history id (the subquery's), which Django reads without converting.
        rows = rows.annotate(
            **self.texts, audit_previous_id=Case(When(history_type="~", then=Subquery(earlier)))
        )
        if self.source.label == ITEM_VIA_MESSAGE:
            message_item = OutboxMessage.objects.filter(pk=OuterRef("message_id")).values("item_id")[:1]
            rows = rows.annotate(audit_item_id=Subquery(message_item, output_field=models.UUIDField()))
        rows = rows.order_by("-history_date", "-history_id").values_list(*self.row_columns)
        return list(rows[:limit])

    def previous_versions(self, rows: list[tuple]) -> dict[int, tuple]:
        """The versions before the changed rows among `rows`, by history id (one query, none
        when no row is a change)."""
        ids = {row[self.previous_id] for row in rows if row[self.previous_id] is not None}
        if not ids:
            return {}
        found = (
            self.source.history._default_manager.filter(history_id__in=ids)
            .annotate(**self.texts)
            .order_by()
            .values_list(*self.version_columns)
        )
        return {row[self.history_id]: row for row in found}

    def position(self, row: tuple) -> AuditPosition:
        return AuditPosition(_moment(row[self.date]), self.source.label, row[self.history_id])

    def events(self, rows: list[tuple], previous: dict[int, tuple]) -> Iterator[tuple[tuple, dict]]:
        """Each row's (place in the log, event)."""
        label, pk, item_at = self.source.label, self.pk, self.item
        for row in rows:
            at = _moment(row[self.date])
            kind = EVENT_TYPES.get(row[self.type], row[self.type])
            object_id = str(row[pk])
            if item_at == pk:
                item = object_id
            else:
                item = row[item_at] if item_at is not None else None
                item = str(item) if item is not None else None
            event = {
                "at": at.isoformat(),
                "actor": {
                    "kind": row[self.actor_kind] or ActorKind.SYSTEM,
                    "name": row[self.actor] or "unattributed",
                },
                "model": label,
                "object_id": object_id,
                "item": item,
                "event": kind,
                "changes": self.changes(kind, row, previous.get(row[self.previous_id])),
                "reason": row[self.reason] or None,
            }
            yield (at, label, row[self.history_id]), event

    def changes(self, kind: str, row: tuple, previous: tuple | None) -> dict[str, list]:
        """What `changes()` says of the row (as model instances), from its tuple."""
        if kind == "deleted":
            return {}
        if previous is None:
            return self._created(row) if kind == "created" else self._from_nothing(row)
        result = {}
        # Only the columns whose text or value differs; the same text is the same value.
        for index, name, decode in compress(self.tracked, map(ne, row, previous)):
            new, old = row[index], previous[index]
            if decode is not None:
                new = None if new is None else decode(new)
                old = None if old is None else decode(old)
                if old == new:
                    continue
            result[name] = [plain(old), plain(new)]
        return result

    def _created(self, row: tuple) -> dict[str, list]:
        """A creation: every field that is not empty."""
        result = {}
        for index, name, decode in compress(self.tracked, map(is_not, row, repeat(None))):
            new = row[index]
            if decode is not None:
                if new in EMPTY_JSON:
                    continue
                new = decode(new)
            if not new and (new is None or isinstance(new, str | list | dict)):
                continue  # `new in EMPTY_VALUES`, without comparing every value with each
            result[name] = [None, plain(new)]
        return result

    def _from_nothing(self, row: tuple) -> dict[str, list]:
        """A change without a version before it: every field, from None."""
        return {
            name: [None, plain(row[index] if decode is None or row[index] is None else decode(row[index]))]
            for index, name, decode in self.tracked
        }


@cache
def _table(source: HistorySource) -> _Table:
    return _Table(source)


def audit_events(
    *,
    actor: str | None = None,
    actor_kind: str | None = None,
    model: str | None = None,
    queue=None,
    item: uuid.UUID | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: str | None = None,
    limit: int = AUDIT_PAGE_SIZE,
) -> tuple[list[dict], str | None]:
    """One page of the audit log, newest first, and the cursor of the next (or None).

    - `actor`: a name as the rows recorded it; `system:<name>` is a system actor;
    - `actor_kind`: user, integration or system; `model`: a label (`reviews.decision`);
    - `queue`: a Queue, its id or slug: the rows of items in it, its decisions, the
      queue itself, its backlog items and the gate rules that send to it;
    - `item`: the item's rows, its decisions, incidents, outbox messages and their
      delivery attempts;
    - `since` <= event time < `until`; `before`: the cursor a previous page returned.

    Queries: one per history table (fewer with `model`, `queue` or `item`), one more
    per table whose changed rows are on the page, whatever the tables hold.
    """
    selected = _selected(
        actor=actor, actor_kind=actor_kind, model=model, queue=queue, item=item, since=since, until=until
    )
    position = AuditPosition.decode(before) if before else None

    fetched = []
    for source, conditions in selected:
        table = _table(source)
        for row in table.rows(conditions, position, limit + 1):
            fetched.append((table.position(row), table, row))
    fetched.sort(key=lambda entry: entry[0].key, reverse=True)
    page = fetched[:limit]

    by_table: dict[_Table, list[tuple]] = {}
    for _, table, row in page:
        by_table.setdefault(table, []).append(row)
    previous = {table: table.previous_versions(rows) for table, rows in by_table.items()}
    events = [event for _, table, row in page for _, event in table.events([row], previous[table])]
    next_cursor = page[-1][0].encode() if len(fetched) > limit else None
    return events, next_cursor


def _table_events(source: HistorySource, conditions: Q, page_size: int) -> Iterator[tuple[tuple, dict]]:
    """One table's events for the export, newest first, `page_size` rows a query (and
    one more query for the versions before the changed ones)."""
    table = _table(source)
    position = None
    while True:
        rows = table.rows(conditions, position, page_size)
        yield from table.events(rows, table.previous_versions(rows))
        if len(rows) < page_size:
            return
        position = table.position(rows[-1])


def all_audit_events(*, page_size: int | None = None, **filters) -> Iterator[dict]:
    """Every event the filters select, newest first (for the export). Each table is read
    a page at a time and the tables are merged as they are read, so memory stays
    bounded by a page per table, whatever the log holds."""
    size = page_size or EXPORT_PAGE_SIZE
    tables = [_table_events(source, conditions, size) for source, conditions in _selected(**filters)]
    for _, event in heapq.merge(*tables, key=itemgetter(0), reverse=True):
        yield event


def parse_moment(value: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date and time (naive ones in the site's time zone), or a date: its
    first moment, or with `end_of_day` the first moment of the next day. ValueError
    for anything else, or a moment databases cannot store."""
    value = value.strip()
    try:
        day = parse_date(value)  # first: a date alone also reads as a datetime (midnight)
        if day is not None:
            moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time.min)
        else:
            moment = parse_datetime(value)
            if moment is None:
                raise ValueError(value)
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        moment.astimezone(UTC)  # how databases store it; out of range near year 1 or 9999
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"Not a date or time: {value!r}.") from exc
    return moment


class AuditFilterForm(forms.Form):
    """The audit log's filters, as the admin page and the export both read them from
    a query string: `cleaned_data` becomes `audit_events` keywords (`filters()`)."""

    actor = forms.CharField(
        required=False,
        max_length=len(SYSTEM_PREFIX) + 150,
        help_text="A username, an integration's slug, or system:<task>.",
    )
    actor_kind = forms.ChoiceField(required=False, choices=[("", "Anyone"), *ActorKind.choices])
    model = forms.ChoiceField(required=False)
    queue = forms.CharField(required=False, max_length=100, help_text="Slug or id.")
    item = forms.UUIDField(required=False, label="Item id")
    since = forms.CharField(required=False, max_length=40, help_text="A date, or a date and time.")
    until = forms.CharField(required=False, max_length=40, help_text="Up to the end of a date, or a time.")
    before = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [
            ("", "All models"),
            *((s.label, f"{s.verbose_name} ({s.label})") for s in history_sources()),
        ]

    def clean_queue(self):
        text = self.cleaned_data["queue"].strip()
        if not text:
            return None
        found = Queue.objects.filter(_queue_named(text)).order_by("pk").first()
        if found is None:
            raise forms.ValidationError("No queue has this slug or id.")
        return found

    def _moment(self, name: str, *, end_of_day: bool = False) -> datetime | None:
        text = self.cleaned_data[name].strip()
        if not text:
            return None
        try:
            return parse_moment(text, end_of_day=end_of_day)
        except ValueError as exc:
            raise forms.ValidationError(DATE_HELP) from exc

    def clean_since(self):
        return self._moment("since")

    def clean_until(self):
        return self._moment("until", end_of_day=True)

    def clean_before(self):
        cursor = self.cleaned_data["before"].strip()
        if cursor:
            try:
                AuditPosition.decode(cursor)
            except ValueError as exc:
                raise forms.ValidationError("This page link is broken: start again from the newest.") from exc
        return cursor or None

    def clean(self):
        data = super().clean()
        name, kind = (data.get("actor") or "").strip(), data.get("actor_kind")
        if name.startswith(SYSTEM_PREFIX) and kind and kind != ActorKind.SYSTEM:
            self.add_error("actor_kind", f"{name} is a system actor.")
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be later than since.")
        return data

    def filters(self) -> dict:
        """`audit_events` keywords (the cursor excepted) of a valid form."""
        data = self.cleaned_data
        return {
            "actor": data["actor"].strip() or None,
            "actor_kind": data["actor_kind"] or None,
            "model": data["model"] or None,
            "queue": data["queue"],
            "item": data["item"],
            "since": data["since"],
            "until": data["until"],
        }
