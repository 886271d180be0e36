"""Per-integration and per-user rate limits, counted in the shared cache (Redis
when REDIS_URL is set), so the limit holds across web processes."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from reviews.authentication import integration_of


class IntegrationRateThrottle(SimpleRateThrottle):
    scope = "integration"

    def get_rate(self) -> str:
        return settings.HITL_INTEGRATION_RATE

    def get_cache_key(self, request, view):
        integration = integration_of(request)
        if integration is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": integration.pk}


class StaffRateThrottle(SimpleRateThrottle):
    scope = "staff"

    def get_rate(self) -> str:
        return settings.HITL_STAFF_RATE

    def get_cache_key(self, request, view):
        if integration_of(request) is not None or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
