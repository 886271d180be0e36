"""Management commands whose writes are attributed to `system:<command name>`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from reviews.history import acting_as_system


class AuditedCommand(BaseCommand):
    def execute(self, *args, **options):
        with acting_as_system(type(self).__module__.rsplit(".", 1)[-1]):
            return super().execute(*args, **options)
