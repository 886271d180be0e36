from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.core.validators import URLValidator

from reviews import services
from reviews.exceptions import DomainError
from reviews.management.audited import AuditedCommand
from reviews.models import Integration


class Command(AuditedCommand):
    help = "Create an integration and print its API key and webhook secret (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", default="")
        parser.add_argument("--callback-url", default="")
        parser.add_argument("--action-url", default="")
        parser.add_argument(
            "--record-actions",
            action="store_true",
            help="approved actions are only recorded, never sent: for agents that run the tool "
            "themselves once approved (the Python client's gate decorator and adapters)",
        )

    def handle(self, *args, name, slug, callback_url, action_url, record_actions, **options):
        validate = URLValidator(schemes=["http", "https"])
        for label, url in (("--callback-url", callback_url), ("--action-url", action_url)):
            if url:
                try:
                    validate(url)
                except ValidationError as exc:
                    raise CommandError(f"{label}: {url!r} is not an http(s) URL.") from exc
        delivery = Integration.ActionDelivery
        try:
            integration, key = services.create_integration(
                name=name,
                slug=slug,
                callback_url=callback_url,
                action_url=action_url,
                action_delivery=delivery.RECORD if record_actions else delivery.WEBHOOK,
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"integration: {integration.slug}")
        self.stdout.write(f"api_key: {key}")
        self.stdout.write(f"webhook_secret: {integration.webhook_secret}")
        self.stderr.write("Store both now: neither is shown again.")
