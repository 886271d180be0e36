from __future__ import annotations

from django.core.management.base import BaseCommand

from reviews.delivery import outbox


class Command(BaseCommand):
    help = "Send callbacks and actions that are due (what beat does every few seconds)."

    def handle(self, *args, **options):
        self.stdout.write(f"Dispatched {outbox.sweep(now=None)} due message(s).")
