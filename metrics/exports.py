"""Feedback exports (SPEC section 4): final decisions written to a file by a Celery task,
for evaluation datasets and prompt work.

`start_export` records the request and hands it to a worker after the commit;
`write_export` (the task `metrics.run_export`) writes the file. One row per item
finally decided in the window [since, until), in the queue asked for or in every
queue, ordered by decision time. Gold items (seeded copies, `reviews.GoldAnswer`)
are left out: they measure reviewers, they are not traffic.

Formats, one final decision a line (the field list is `JSONL_FIELDS`):

- `jsonl`: the item (`item_id`, `external_id`, `kind`, `queue`, `input`), the
  original and final output and action, the `decision` (`approve`, `edit` or
  `reject`; an edit approved by a second reviewer is an edit, as in the metrics),
  the final decision's `justification` and `reviewer`, its `reason_codes` (an
  approved edit's own codes first), `submitted_at`, `decided_at` and the
  `matched_rules` snapshots the gate kept;
- `preference_pairs`: edits only, `{"prompt", "chosen", "rejected", "reason_codes"}`:
  the prompt is `input.prompt`, else `input.messages`, else the whole input; chosen
  is the edited version and rejected the original, of the action when the reviewer
  changed an action item's action, else of the output;
- `csv`: the `jsonl` fields as columns, nested values as JSON, null as an empty cell,
  and every cell a spreadsheet would run as a formula prefixed with `'`
  (`reviews.spreadsheet`).

Memory stays bounded whatever the window: rows come from a server-side cursor
(`.iterator()`) as plain values, a chunk at a time, and go to a temporary file that
is moved into place only once complete, so a failed export leaves no file behind.

With a read replica (DATABASE_REPLICA_URL) the rows are read there, once it has caught
up with the export's start (`_replica_caught_up`): a lagging replica would leave out the
last decisions before `until`, and the next incremental export starts at `until`, so
they would never be exported. Its progress and outcome are written to the default
database, as every write is.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from json.encoder import encode_basestring  # the C encoder of a JSON string
from pathlib import Path

from celery import current_app
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Case, Exists, JSONField, OuterRef, Q, QuerySet, Subquery, TextField, When
from django.db.models.functions import Cast
from django.utils import timezone

from hitl_project.replica import REPLICA, replica_usable
from metrics.models import FeedbackExport
from reviews.exceptions import InvalidInput, NotAllowed
from reviews.models import (
    COMPLIANCE_GROUP,
    POLICY_ADMINS_GROUP,
    Decision,
    DecisionAction,
    GoldAnswer,
    ItemKind,
    ItemStatus,
    Queue,
)
from reviews.spreadsheet import safe_row

logger = logging.getLogger(__name__)

EXPORT_TASK = "metrics.run_export"
CHUNK_ROWS = 2000  # fetched from the cursor, written and counted at a time
WRITE_BUFFER = 1 << 20
ERROR_CHARS = 2000
REPLICA_CATCH_UP_SECONDS = 30  # then the rows are read from the default database
REPLICA_POLL_SECONDS = 0.5

Format = FeedbackExport.Format
Status = FeedbackExport.Status

EXTENSIONS = {Format.JSONL: "jsonl", Format.PREFERENCE_PAIRS: "jsonl", Format.CSV: "csv"}
CONTENT_TYPES = {
    Format.JSONL: "application/x-ndjson; charset=utf-8",
    Format.PREFERENCE_PAIRS: "application/x-ndjson; charset=utf-8",
    Format.CSV: "text/csv; charset=utf-8",
}
JSONL_FIELDS = (
    "item_id",
    "external_id",
    "kind",
    "queue",
    "input",
    "original_output",
    "original_action",
    "final_output",
    "final_action",
    "decision",
    "justification",
    "reason_codes",
    "reviewer",
    "submitted_at",
    "decided_at",
    "matched_rules",
)
PREFERENCE_FIELDS = ("prompt", "chosen", "rejected", "reason_codes")
OUTCOMES = {ItemStatus.APPROVED: "approve", ItemStatus.EDITED: "edit", ItemStatus.REJECTED: "reject"}

# The nested values of `jsonl` and `csv` rows, read as JSON text straight from the
# database and written as they are: decoding and encoding them again would take most
# of an export's time. Each is annotated as `<field>_json`.
AS_JSON_TEXT = {
    "input": "item__input",
    "original_output": "item__output",
    "original_action": "item__action",
    "final_output": "item__final_output",
    "final_action": "item__final_action",
    "matched_rules": "item__matched_rules",
}
JSON_FIELDS = frozenset({*AS_JSON_TEXT, "reason_codes"})  # JSON text in CSV cells too
# The two moments, read as text too: a date-time column would be parsed in Python.
AS_TEXT = {"submitted_at_text": "item__created_at", "decided_at_text": "created_at"}
ROW_COLUMNS = (
    "item_id",
    "item__external_id",
    "item__kind",
    "queue__slug",
    "item__status",
    "action",
    "justification",
    "reviewer__username",
    "submitted_at_text",
    "decided_at_text",
    "codes_json",
    "edit_codes_json",
    *(f"{name}_json" for name in AS_JSON_TEXT),
)
# A preference pair needs the values themselves (the prompt is picked out of the input).
PAIR_COLUMNS = (
    "item__kind",
    "item__input",
    "item__output",
    "item__action",
    "item__final_output",
    "item__final_action",
    "cited_codes",
    "edit_codes",
)
_KEYS = tuple(f'"{name}": ' for name in JSONL_FIELDS)
_IS_JSON = tuple(name in JSON_FIELDS for name in JSONL_FIELDS)


# --- Who, and starting one ------------------------------------------------------------


def may_export(user) -> bool:
    """Compliance staff, policy admins and superusers start and download exports."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or user.groups.filter(name__in=[COMPLIANCE_GROUP, POLICY_ADMINS_GROUP]).exists()


def start_export(
    *,
    user,
    format: str,
    queue: Queue | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> FeedbackExport:
    """Record an export and hand it to a worker.

    1. Only compliance staff, policy admins and superusers (else NotAllowed).
    2. `format` one of jsonl, preference_pairs, csv; `queue` a queue or its slug
       (None: every queue); `until` defaults to now and is never later than now;
       `since` defaults to where the succeeded exports of the same format and queue
       left off (the latest `until` among them), so repeated exports are
       incremental; none yet: from the first decision. InvalidInput otherwise.
    3. Create the row (pending) and, after the commit, dispatch `metrics.run_export`.
    """
    if not may_export(user):
        raise NotAllowed("Feedback exports are for compliance staff, policy admins and superusers.")
    if format not in Format.values:
        message = f"Choose one of: {', '.join(Format.values)}."
        raise InvalidInput(f"Unknown export format {format!r}.", errors={"format": [message]})
    if isinstance(queue, str):
        slug = queue
        queue = Queue.objects.filter(slug=slug).first()
        if queue is None:
            raise InvalidInput(f"No queue {slug!r}.", errors={"queue": [f"No queue {slug!r}."]})
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and timezone.is_naive(moment):
            raise InvalidInput(f"{name} needs a time zone.", errors={name: ["Give a time zone (or Z)."]})

    now = timezone.now()
    # Later than now would move the next incremental export's start past decisions
    # that are yet to be made in the gap.
    until = now if until is None else min(until, now)
    with transaction.atomic():
        if since is None:
            since = (
                FeedbackExport.objects.filter(format=format, queue=queue, status=Status.SUCCEEDED)
                .exclude(until=None)
                .order_by("-until")
                .values_list("until", flat=True)
                .first()
            )
        if since is not None and since >= until:
            message = "The window must start before it ends (until: now, at most)."
            raise InvalidInput(message, errors={"since": [message]})
        export = FeedbackExport.objects.create(
            format=format, queue=queue, since=since, until=until, requested_by=user
        )
        transaction.on_commit(lambda: dispatch(export.pk))
    return export


def dispatch(export_id) -> None:
    """Hand the export to a worker (run here and now when tasks are eager, as under
    `make run`). It runs after the commit, so it never raises: an export that could
    not be queued is marked failed, saying why, and can be started again."""
    try:
        # By its fixed name: `metrics.tasks` imports this module (registered in MetricsConfig.ready()).
        current_app.tasks[EXPORT_TASK].delay(str(export_id))
    except Exception as exc:
        logger.exception("Could not queue feedback export %s", export_id)
        with transaction.atomic():
            export = FeedbackExport.objects.select_for_update().get(pk=export_id)
            if export.status == Status.PENDING:
                _fail(export, f"The export could not be queued: {exc}")


# --- Reading ------------------------------------------------------------------------------


def final_decisions(
    *, since: datetime | None, until: datetime, queue_id: int | None = None, edits_only: bool = False
) -> QuerySet:
    """The final decision of each item decided in [since, until), oldest first, as plain
    values, one query for the whole export: one row per item (one final decision each,
    by constraint), gold items left out. `edits_only` (preference pairs): edited items,
    with their values decoded (`PAIR_COLUMNS`); otherwise `ROW_COLUMNS`, nested values
    as JSON text. The edit codes are those an edit cited when a second reviewer
    approved it (null otherwise)."""
    # NOT EXISTS, not a left join on the gold answers: PostgreSQL estimates an anti-join
    # well, and a join's IS NULL filter as a handful of rows, which ruins the plan.
    is_gold = Exists(GoldAnswer.objects.filter(item_id=OuterRef("item_id")))
    rows = Decision.objects.filter(~is_gold, is_final=True, created_at__lt=until)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if queue_id is not None:
        rows = rows.filter(queue_id=queue_id)
    rows = rows.order_by("created_at", "pk")
    the_edit = Decision.objects.filter(
        item=OuterRef("item"), round=OuterRef("round"), action=DecisionAction.EDIT
    )
    approved_edit = Q(action=DecisionAction.APPROVE, item__status=ItemStatus.EDITED)
    if edits_only:
        edit_codes = Subquery(the_edit.values("cited_codes")[:1])
        rows = rows.filter(item__status=ItemStatus.EDITED).annotate(
            edit_codes=Case(When(approved_edit, then=edit_codes), default=None, output_field=JSONField())
        )
        return rows.values(*PAIR_COLUMNS)
    edit_codes = Subquery(the_edit.values(text=Cast("cited_codes", TextField()))[:1])
    return rows.annotate(
        codes_json=Cast("cited_codes", TextField()),
        edit_codes_json=Case(When(approved_edit, then=edit_codes), default=None, output_field=TextField()),
        **{f"{name}_json": Cast(path, TextField()) for name, path in AS_JSON_TEXT.items()},
        **{name: Cast(path, TextField()) for name, path in AS_TEXT.items()},
    ).values(*ROW_COLUMNS)


def _moment(text: str) -> str:
    """A date-time read as text (PostgreSQL: with its offset; SQLite: naive, in the
    connection's time zone) as ISO 8601 in UTC, `Z` for the offset."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=connections[DEFAULT_DB_ALIAS].timezone)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _merged_codes(edit_codes: list | None, codes: list | None) -> list[str]:
    """An approved edit's codes first, then the final decision's own."""
    return list(dict.fromkeys([*(edit_codes or []), *(codes or [])]))


def row_values(row: dict) -> tuple[str | None, ...]:
    """A row's `JSONL_FIELDS`, in order: scalars as text, nested values as JSON text,
    None for null."""
    codes = row["codes_json"] or "[]"
    if row["edit_codes_json"] is not None:
        merged = _merged_codes(json.loads(row["edit_codes_json"]), json.loads(codes))
        codes = json.dumps(merged, ensure_ascii=False)
    return (
        str(row["item_id"]),
        row["item__external_id"],
        row["item__kind"],
        row["queue__slug"],
        row["input_json"],
        row["original_output_json"],
        row["original_action_json"],
        row["final_output_json"],
        row["final_action_json"],
        OUTCOMES.get(row["item__status"], row["action"]),
        row["justification"],
        codes,
        row["reviewer__username"],
        _moment(row["submitted_at_text"]),
        _moment(row["decided_at_text"]),
        row["matched_rules_json"],
    )


def jsonl_line(row: dict) -> str:
    """One final decision as a JSON object on a line, its fields in `JSONL_FIELDS` order."""
    fields = [
        key + ("null" if value is None else value if is_json else encode_basestring(value))
        for key, is_json, value in zip(_KEYS, _IS_JSON, row_values(row), strict=True)
    ]
    return "{" + ", ".join(fields) + "}\n"


def prompt_of(item_input):
    """`input.prompt`, else `input.messages`, else the whole input."""
    if isinstance(item_input, dict):
        if item_input.get("prompt") not in (None, ""):
            return item_input["prompt"]
        if item_input.get("messages"):
            return item_input["messages"]
    return item_input


def preference_pair(row: dict) -> dict:
    """An edit as a preference pair: the edited version chosen over the original."""
    if row["item__kind"] == ItemKind.ACTION and row["item__final_action"] != row["item__action"]:
        chosen, rejected = row["item__final_action"], row["item__action"]
    else:
        chosen, rejected = row["item__final_output"], row["item__output"]
    return {
        "prompt": prompt_of(row["item__input"]),
        "chosen": chosen,
        "rejected": rejected,
        "reason_codes": _merged_codes(row["edit_codes"], row["cited_codes"]),
    }


def renderer(export_format: str) -> tuple[str, Callable[[dict], str]]:
    """The file's header (CSV only) and the function that turns a row into its line."""
    if export_format == Format.JSONL:
        return "", jsonl_line
    if export_format == Format.PREFERENCE_PAIRS:
        return "", lambda row: json.dumps(preference_pair(row), ensure_ascii=False) + "\n"
    return safe_row(JSONL_FIELDS), lambda row: safe_row(row_values(row))


# --- Writing --------------------------------------------------------------------------------


def file_name(export: FeedbackExport) -> str:
    """Where the file is kept, under HITL_EXPORTS_DIR (never served as a static URL)."""
    folder = FeedbackExport._meta.get_field("file").upload_to
    stamp = f"{export.created_at:%Y%m%d-%H%M%S}"
    return f"{folder}{stamp}-{export.format}-{export.pk}.{EXTENSIONS[export.format]}"


def download_name(export: FeedbackExport) -> str:
    """The name a download is saved under."""
    scope = export.queue.slug if export.queue_id else "all-queues"
    kind = export.format.replace("_", "-")
    return f"feedback-{kind}-{scope}-{export.until:%Y%m%d-%H%M%S}.{EXTENSIONS[export.format]}"


def write_export(export_id) -> str:
    """Write an export's file; returns its status. Safe to run twice: only a pending
    export is written, so a second run leaves a running or finished one alone.

    1. Lock the row; unless it is pending, stop. Mark it running (started_at).
    2. Stream the final decisions (`final_decisions`; from the replica once it shows
       the export running, see `_replica_caught_up`) to a temporary file in the
       exports folder, `CHUNK_ROWS` at a time, saving `rows` after each chunk (no
       history row: `rows` is left out of the history; on the default database).
    3. Move the file into place and mark the export succeeded (file, rows,
       finished_at); on any error remove the temporary file and mark it failed
       with the error.
    """
    with transaction.atomic():
        export = FeedbackExport.objects.select_for_update().filter(pk=export_id).first()
        if export is None or export.status != Status.PENDING:
            return export.status if export else "missing"
        export.status = Status.RUNNING
        export.started_at = timezone.now()
        export.rows = 0
        export.save(update_fields=["status", "started_at", "rows"])

    name = file_name(export)
    storage = FeedbackExport._meta.get_field("file").storage
    final_path = Path(storage.path(name))
    temporary = final_path.with_name(f".{final_path.name}.{uuid.uuid4().hex}.part")
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True)
        rows = final_decisions(
            since=export.since,
            until=export.until or export.started_at,
            queue_id=export.queue_id,
            edits_only=export.format == Format.PREFERENCE_PAIRS,
        )
        if _replica_caught_up(export):
            # This one query only (not `reading_from_replica()`, which would also take
            # the reads of the progress saves in between): they write the default database.
            rows = rows.using(REPLICA)
        with temporary.open("w", encoding="utf-8", newline="", buffering=WRITE_BUFFER) as out:
            _write(export, out, rows.iterator(chunk_size=CHUNK_ROWS))
        os.replace(temporary, final_path)
    except Exception as exc:
        logger.exception("Feedback export %s failed", export.pk)
        temporary.unlink(missing_ok=True)
        _fail(export, f"{type(exc).__name__}: {exc}")
        return export.status
    export.file.name = name
    export.status = Status.SUCCEEDED
    export.finished_at = timezone.now()
    export.save(update_fields=["file", "rows", "status", "finished_at"])
    return export.status


def _replica_caught_up(export: FeedbackExport) -> bool:
    """Whether the replica (if any) shows this export running, that is, holds every
    decision committed before it started (replicas apply commits in order). Waits up
    to REPLICA_CATCH_UP_SECONDS; False then, or without a replica."""
    if not replica_usable():
        return False
    started = FeedbackExport.objects.using(REPLICA).filter(
        pk=export.pk, status=Status.RUNNING, started_at=export.started_at
    )
    deadline = time.monotonic() + REPLICA_CATCH_UP_SECONDS
    while True:
        if started.exists():
            return True
        if time.monotonic() >= deadline:
            logger.warning("Feedback export %s reads the default database: the replica lags", export.pk)
            return False
        time.sleep(REPLICA_POLL_SECONDS)


def _write(export: FeedbackExport, out, rows: Iterable[dict]) -> None:
    """Write the rows a chunk at a time; after each chunk, record how many are
    written (a cheap one-column save, seen in the admin as progress)."""
    header, render = renderer(export.format)
    out.write(header)
    chunk: list[str] = []
    for row in rows:
        chunk.append(render(row))
        if len(chunk) >= CHUNK_ROWS:
            _flush(export, out, chunk)
    _flush(export, out, chunk)


def _flush(export: FeedbackExport, out, chunk: list[str]) -> None:
    if not chunk:
        return
    out.writelines(chunk)
    export.rows += len(chunk)
    chunk.clear()
    export.save(update_fields=["rows"])


def _fail(export: FeedbackExport, error: str) -> None:
    export.status = Status.FAILED
    export.error = error[:ERROR_CHARS]
    export.file.name = ""
    export.finished_at = timezone.now()
    export.save(update_fields=["status", "error", "file", "rows", "finished_at"])
