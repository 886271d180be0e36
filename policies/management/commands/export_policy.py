"""python manage.py export_policy [--output FILE]"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import CommandError

from policies.io import export_policy
from reviews.management.audited import AuditedCommand


class Command(AuditedCommand):
    help = (
        "Write every queue, reason code and gate rule as policy JSON (the format import_policy reads) "
        "to standard output, or to --output FILE."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="Write to FILE instead of standard output."
        )

    def handle(self, *args, output: str | None, **options):
        text = json.dumps(export_policy(), indent=2, ensure_ascii=False) + "\n"
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror or exc}") from exc
        self.stdout.write(f"Wrote the policy to {output}")
