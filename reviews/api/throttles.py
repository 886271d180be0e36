"""Per-integration and per-user rate limits, counted in the shared cache (Redis
when REDIS_URL is set), so the limit holds across web processes.

A cache that does not answer never fails a request: the limit falls back to
counters in the process's own memory, so each web process enforces the rate on
its own (with N processes a caller may get up to N times its rate) until the
cache answers again. After a cache error the process leaves the cache alone for
HITL_CACHE_RETRY_SECONDS and warns at most once a minute (`reviews.outage`).
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from reviews.api.authentication import integration_of
from reviews.outage import Outage

CACHE_ERRORS = (RedisError, OSError)

# Counters while the shared cache is away; thread-safe, and private to this process.
fallback_cache = LocMemCache("hitl-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})


cache_outage = Outage(
    "The shared cache", "HITL_CACHE_RETRY_SECONDS", "rate limits count in each process meanwhile"
)


class FailOpenRateThrottle(SimpleRateThrottle):
    """DRF's throttle, counting in this process's memory while the shared cache is down."""

    def allow_request(self, request, view) -> bool:
        if self.rate is None or self.get_cache_key(request, view) is None:
            return True
        if not cache_outage.skipping():
            try:
                allowed = super().allow_request(request, view)
            except CACHE_ERRORS as exc:
                cache_outage.failed(exc)
            else:
                cache_outage.answered()
                return allowed
        self.cache = fallback_cache
        return super().allow_request(request, view)


class IntegrationRateThrottle(FailOpenRateThrottle):
    scope = "integration"

    def get_rate(self) -> str:
        return settings.HITL_INTEGRATION_RATE

    def get_cache_key(self, request, view):
        integration = integration_of(request)
        if integration is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": integration.pk}


class StaffRateThrottle(FailOpenRateThrottle):
    scope = "staff"

    def get_rate(self) -> str:
        return settings.HITL_STAFF_RATE

    def get_cache_key(self, request, view):
        if integration_of(request) is not None or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
