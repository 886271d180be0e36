from __future__ import annotations

from django.core.management.base import CommandError

from reviews import services
from reviews.management.audited import AuditedCommand
from reviews.models import Integration


class Command(AuditedCommand):
    help = "Issue another API key for an integration (for rotation); printed once, stored hashed."

    def add_arguments(self, parser):
        parser.add_argument("integration", help="the integration's slug")
        parser.add_argument("--name", default="rotated", help="a label to tell keys apart in the admin")

    def handle(self, *args, integration, name, **options):
        target = Integration.objects.filter(slug=integration).first()
        if target is None:
            raise CommandError(f"No integration {integration!r}.")
        self.stdout.write(f"api_key: {services.issue_api_key(integration=target, name=name[:100])}")
        self.stderr.write("Store it now: it is not shown again. Revoke the old key in the admin once unused.")
