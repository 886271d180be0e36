"""What metrics keeps: backlog snapshots taken by beat (the dashboard's trend), weekly
summaries of the headline figures, and feedback exports."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import Q
from django.utils import timezone

from reviews.models import audited_history


class QueueSnapshot(models.Model):
    """One queue's backlog at one moment (Celery beat takes one per queue periodically)."""

    taken_at = models.DateTimeField()
    queue = models.ForeignKey("reviews.Queue", on_delete=models.CASCADE, related_name="+")
    pending = models.PositiveIntegerField(help_text="Waiting for a reviewer.")
    in_review = models.PositiveIntegerField(help_text="Claimed by a reviewer.")
    at_risk = models.PositiveIntegerField(help_text="Open, past half their SLA.")
    past_sla = models.PositiveIntegerField(help_text="Open, past their deadline.")
    oldest_pending_seconds = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-taken_at", "queue"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "taken_at"], name="snapshot_one_per_queue_and_time")
        ]
        indexes = [models.Index(fields=["taken_at"], name="snapshot_taken")]

    def __str__(self) -> str:
        return f"{self.queue_id} at {self.taken_at:%Y-%m-%d %H:%M}"

    @property
    def backlog(self) -> int:
        return self.pending + self.in_review


class WeeklySummary(models.Model):
    """The headline figures of one queue for one week (Monday to Monday, UTC), kept for
    the weekly review: the queue's row of the metrics answer, and its incidents."""

    week_start = models.DateField()
    queue = models.ForeignKey("reviews.Queue", on_delete=models.CASCADE, related_name="+")
    figures = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-week_start", "queue"]
        constraints = [
            models.UniqueConstraint(
                fields=["week_start", "queue"], name="weekly_summary_one_per_queue_and_week"
            )
        ]

    def __str__(self) -> str:
        return f"Week of {self.week_start} for {self.queue_id}"


def export_storage() -> FileSystemStorage:
    return FileSystemStorage(location=settings.HITL_EXPORTS_DIR)


class FeedbackExport(models.Model):
    """A dataset of final decisions, written to a file by a Celery task, for
    evaluation sets and prompt work (SPEC section 4)."""

    class Format(models.TextChoices):
        JSONL = "jsonl", "JSON Lines: one final decision a line"
        PREFERENCE_PAIRS = "preference_pairs", "Preference pairs: edits as chosen and rejected"
        CSV = "csv", "CSV"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    format = models.CharField(max_length=20, choices=Format.choices)
    queue = models.ForeignKey(
        "reviews.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    rows = models.PositiveBigIntegerField(default=0, help_text="Rows written so far.")
    file = models.FileField(storage=export_storage, upload_to="feedback/", blank=True, max_length=300)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Progress (`rows`) is written as the task goes: not a change worth a history row.
    history = audited_history(excluded_fields=["rows"])

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["format", "queue", "status", "created_at"], name="export_latest_of_kind"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "succeeded", "failed"]),
                name="export_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(format__in=["jsonl", "preference_pairs", "csv"]), name="export_format_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} export ({self.get_status_display().lower()})"
