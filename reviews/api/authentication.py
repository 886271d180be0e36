"""API-key authentication for integrations: `Authorization: Api-Key <key>`.

An authenticated integration is `request.auth` (the ApiKey, with its
integration); `request.user` stays anonymous, so nothing written on its behalf
is ever attributed to a person: history names the integration instead.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from reviews.history import act_for_integration
from reviews.models import ApiKey, Integration

KEYWORD = "Api-Key"
LAST_USED_PRECISION = timedelta(minutes=5)  # avoid a write on every request


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme != KEYWORD:
            return None
        key = key.strip()
        parts = ApiKey.split_key(key)
        api_key = (
            ApiKey.objects.usable().select_related("integration").filter(prefix=parts[0]).first()
            if parts
            else None
        )
        if api_key is None or not hmac.compare_digest(api_key.hashed_key, ApiKey.hash_key(key)):
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
            # A usage stamp, not a change: outside the key's history on purpose.
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        act_for_integration(request, api_key.integration)
        return AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        return KEYWORD


def integration_of(request) -> Integration | None:
    """The integration calling, or None for a person (session or token)."""
    auth = getattr(request, "auth", None)
    return auth.integration if isinstance(auth, ApiKey) else None


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`, as printed by `manage.py create_integration`.",
        }
