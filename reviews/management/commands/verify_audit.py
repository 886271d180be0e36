from __future__ import annotations

from django.core.management.base import CommandError

from reviews.management.audited import AuditedCommand
from reviews.services import run_audit_check


class Command(AuditedCommand):
    help = (
        "Recompute the audit hash chains (decisions, rule versions, integration key events). "
        "Exits 0 when intact, non-zero naming the first broken link."
    )

    def handle(self, *args, **options):
        verbosity = options["verbosity"]

        def progress(chain: str, checked: int) -> None:
            if verbosity >= 1:
                self.stderr.write(f"  {chain}: {checked} seals checked")

        check = run_audit_check(progress=progress)
        for name, head in check.heads.items():
            self.stdout.write(f"{name}: {head['seq']} seals, head {head['hash']}")
        if not check.ok:
            raise CommandError(f"Audit chain broken: {check.broken_link}")
        self.stdout.write(self.style.SUCCESS(f"Audit trail intact: {check.checked} seals verified."))
