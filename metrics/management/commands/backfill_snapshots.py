"""`python manage.py backfill_snapshots --days N`: the backlog snapshots of the last N days,
reconstructed from the items' timestamps (metrics.snapshots.backfill), so the dashboard's
trend has a past before beat started taking them; with `--weekly-summaries`, also the
summaries of the complete weeks in those days. Safe to run again: what exists is kept."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from metrics import snapshots
from metrics.selectors import WEEK
from reviews.management.audited import AuditedCommand

MAX_DAYS = 366


class Command(AuditedCommand):
    help = "Reconstruct the backlog snapshots of the last N days from the items' timestamps (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, required=True, help=f"How far back, 1 to {MAX_DAYS} days.")
        parser.add_argument(
            "--every",
            type=int,
            default=None,
            metavar="MINUTES",
            help="Minutes between snapshots (default HITL_SNAPSHOT_MINUTES, as beat takes them).",
        )
        parser.add_argument(
            "--weekly-summaries",
            action="store_true",
            help="Also write the weekly summary of each complete week (Monday to Monday, UTC) in the range.",
        )

    def handle(self, *args, days: int, every: int | None, weekly_summaries: bool, **options):
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}.")
        every = settings.HITL_SNAPSHOT_MINUTES if every is None else every
        if not 1 <= every <= 24 * 60:
            raise CommandError("--every must be between 1 and 1440 minutes.")
        now = timezone.now()
        done = snapshots.backfill(days=days, every_minutes=every, now=now)
        self.stdout.write(
            f"Snapshots: {done.written} written over {done.moments} steps of {every} minutes "
            f"({done.kept} already there)."
        )
        if weekly_summaries:
            week, written = snapshots.previous_week(now), 0
            while week >= now - timedelta(days=days):
                written += snapshots.write_weekly_summaries(week=week, now=now)
                week -= WEEK
            self.stdout.write(f"Weekly summaries: {written} written.")
