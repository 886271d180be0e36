from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.core.validators import URLValidator

from reviews import services
from reviews.exceptions import DomainError
from reviews.management.audited import AuditedCommand


class Command(AuditedCommand):
    help = "Create an integration and print its API key and webhook secret (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", default="")
        parser.add_argument("--callback-url", default="")
        parser.add_argument("--action-url", default="")

    def handle(self, *args, name, slug, callback_url, action_url, **options):
        validate = URLValidator(schemes=["http", "https"])
        for label, url in (("--callback-url", callback_url), ("--action-url", action_url)):
            if url:
                try:
                    validate(url)
                except ValidationError as exc:
                    raise CommandError(f"{label}: {url!r} is not an http(s) URL.") from exc
        try:
            integration, key = services.create_integration(
                name=name, slug=slug, callback_url=callback_url, action_url=action_url
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"integration: {integration.slug}")
        self.stdout.write(f"api_key: {key}")
        self.stdout.write(f"webhook_secret: {integration.webhook_secret}")
        self.stderr.write("Store both now: neither is shown again.")
