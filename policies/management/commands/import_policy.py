"""python manage.py import_policy FILE [--dry-run]"""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import CommandError

from policies.io import PolicyError, import_policy
from reviews.management.audited import AuditedCommand
from reviews.safejson import UnsafeJSON, loads_checked


class Command(AuditedCommand):
    help = (
        "Create or update queues, reason codes and gate rules from a policy JSON file "
        "(the format export_policy writes), matched by queue slug, reason-code code and rule name. "
        "Objects missing from the file are left as they are, never deleted. "
        "The whole file is checked first: on any error nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the policy JSON file, or - for standard input.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change without writing anything."
        )

    def handle(self, *args, file: str, dry_run: bool, verbosity: int, **options):
        data = self._load(file)
        try:
            report = import_policy(data, dry_run=dry_run)
        except PolicyError as exc:
            for error in exc.errors:
                self.stderr.write(error)
            raise CommandError(f"{file}: {len(exc.errors)} error(s), nothing was imported.") from exc
        for line in report.lines(verbose=verbosity >= 2):
            self.stdout.write(line)

    def _load(self, file: str):
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"Cannot read {file}: not UTF-8 text ({exc.reason})") from exc
        try:
            return loads_checked(text)
        except UnsafeJSON as exc:
            raise CommandError(f"{file} is not valid JSON: {exc}") from exc
