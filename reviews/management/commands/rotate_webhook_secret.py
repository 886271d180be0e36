from __future__ import annotations

from django.core.management.base import CommandError

from reviews import services
from reviews.management.audited import AuditedCommand
from reviews.models import Integration


class Command(AuditedCommand):
    help = (
        "Start a webhook secret rotation: a new secret signs alongside the current one until "
        "--finish drops the old one."
    )

    def add_arguments(self, parser):
        parser.add_argument("integration", help="the integration's slug")
        parser.add_argument("--finish", action="store_true", help="stop signing with the previous secret")

    def handle(self, *args, integration, finish, **options):
        target = Integration.objects.filter(slug=integration).first()
        if target is None:
            raise CommandError(f"No integration {integration!r}.")
        if finish:
            services.finish_secret_rotation(integration=target)
            self.stdout.write("Rotation finished: webhooks are signed with the current secret only.")
            return
        secret = services.rotate_webhook_secret(integration=target)
        self.stdout.write(f"webhook_secret: {secret}")
        self.stderr.write("Webhooks now carry two signatures (old and new) until you run this with --finish.")
