"""Health check for load balancers and orchestrators."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

# Well under a load balancer's check timeout, even when Redis accepts connections and never answers.
BROKER_TIMEOUT_SECONDS = 0.5


@require_GET
def healthz(request):
    """`{"status", "database", "broker"}`: 200 while the database answers, 503 when it does not.

    The broker is reported ("ok", "degraded" or "not_configured") but never fails
    the check: submissions and decisions go on without it (what must follow them
    waits in the outbox), so a broker outage must not take web processes out of
    rotation. Nothing about the failure is shown: anyone may call this."""
    serving = _database_answers()
    broker = _broker_state()
    status = ("degraded" if broker == "degraded" else "ok") if serving else "unavailable"
    body = {"status": status, "database": "ok" if serving else "unavailable", "broker": broker}
    return JsonResponse(body, status=200 if serving else 503)


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure means the database cannot serve this process
        return False
    return True


def _broker_state() -> str:
    if not settings.REDIS_URL:
        return "not_configured"  # tasks run in-process
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
        socket_timeout=BROKER_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except Exception:  # refused, timed out, not Redis at all: degraded either way
        return "degraded"
    finally:
        client.close()
    return "ok"
