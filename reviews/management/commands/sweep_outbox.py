from __future__ import annotations

from reviews.delivery import outbox
from reviews.management.audited import AuditedCommand


class Command(AuditedCommand):
    help = "Send callbacks and actions that are due (what beat does every few seconds)."

    def handle(self, *args, **options):
        self.stdout.write(f"Dispatched {outbox.sweep(now=None)} due message(s).")
