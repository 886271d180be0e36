"""Integrations and their credentials: creation, API keys, webhook secret rotation."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from reviews.exceptions import Conflict, InvalidInput
from reviews.models import ApiKey, Integration, new_webhook_secret
from reviews.webhooks.urlguard import UnsafeURL, check_outbound_url


def unsafe_url_errors(**urls: str) -> dict[str, str]:
    """`{field: why}` for each callback or action URL the server refuses to call (SSRF
    guard, with a DNS lookup); the admin's integration form and `create_integration`
    both check with it."""
    errors = {}
    for name, url in urls.items():
        if url:
            try:
                check_outbound_url(url)
            except UnsafeURL as exc:
                errors[name] = str(exc)
    return errors


def issue_api_key(*, integration: Integration, name: str = "default") -> str:
    """Create a key for the integration and return it; only its hash is stored."""
    for _ in range(5):
        prefix = secrets.token_hex(ApiKey.PREFIX_LENGTH // 2)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    key = f"hitl_{prefix}.{secrets.token_urlsafe(32)}"
    ApiKey.objects.create(integration=integration, name=name, prefix=prefix, hashed_key=ApiKey.hash_key(key))
    return key


def revoke_api_key(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key for good; a revoked key is never restored (issue another instead)."""
    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key._change_reason = "revoked"
            api_key.save(update_fields=["revoked_at"])
    return api_key


@transaction.atomic
def create_integration(
    *,
    name: str,
    slug: str = "",
    callback_url: str = "",
    action_url: str = "",
    action_delivery: str = Integration.ActionDelivery.WEBHOOK,
) -> tuple[Integration, str]:
    """A new integration with its first API key (returned once, stored hashed)."""
    slug = slug or slugify(name)
    if not slug:
        raise InvalidInput("The name needs at least one letter or digit.", errors={"name": ["Invalid name."]})
    if Integration.objects.filter(slug=slug).exists():
        raise Conflict(f"An integration with the slug {slug!r} already exists.")
    integration = Integration(
        name=name,
        slug=slug,
        callback_url=callback_url,
        action_url=action_url,
        action_delivery=action_delivery,
    )
    try:
        integration.full_clean()
        unsafe = unsafe_url_errors(callback_url=callback_url, action_url=action_url)
        if unsafe:
            raise ValidationError(unsafe)
    except ValidationError as exc:
        errors = exc.message_dict
        raise InvalidInput(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), errors=errors
        ) from exc
    integration.save()
    return integration, issue_api_key(integration=integration)


def rotate_webhook_secret(*, integration: Integration) -> str:
    """A new secret signs alongside the current one until the rotation is finished."""
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration.pk)
        integration.previous_webhook_secret = integration.webhook_secret
        integration.webhook_secret = new_webhook_secret()
        integration._change_reason = "webhook secret rotation started"
        integration.save(update_fields=["webhook_secret", "previous_webhook_secret"])
    return integration.webhook_secret


def finish_secret_rotation(*, integration: Integration) -> None:
    """Sign with the new secret only (the old one stops working at once)."""
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration.pk)
        if not integration.previous_webhook_secret:
            return
        integration.previous_webhook_secret = ""
        integration._change_reason = "webhook secret rotation finished"
        integration.save(update_fields=["previous_webhook_secret"])
