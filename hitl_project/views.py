"""The project's own pages: the landing page at /, the favicon, the login lockout page,
and the health check for load balancers and orchestrators."""

from __future__ import annotations

from datetime import timedelta

import redis
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.utils import timezone
from django.utils.timesince import timeuntil
from django.views.decorators.http import require_GET, require_safe

# Well under a load balancer's check timeout, even when Redis accepts connections and never answers.
BROKER_TIMEOUT_SECONDS = 0.5


@require_safe
def landing(request):
    """What the service is and the ways in. The same page for everyone, signed in or not:
    the workspace is only for reviewers, so staff who review nothing (compliance, policy
    admins) would be sent to a page that has nothing for them."""
    return render(request, "landing.html", {"site_header": admin.site.site_header})


@require_safe
def favicon(request):
    """Browsers ask for /favicon.ico on pages that name no icon (JSON, the health check)."""
    return HttpResponseRedirect(static("reviews/favicon.svg"))


def login_lockout(request, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' answer once a username is locked out from an address (AXES_LOCKOUT_CALLABLE).

    Axes' own template setting renders without the admin's context (site header, theme),
    so this renders the same context axes gives its template (failure_limit, username,
    cooloff_timedelta) inside the admin's, with axes' status code (429).

    Axes counts the cool-off from the last failed attempt, and by default
    (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT) an attempt while locked is one, so the
    page gives the configured duration and says that trying again restarts it; a countdown
    would be wrong after the next attempt.
    """
    cool_off = get_cool_off(request)
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in locked",
        "failure_limit": get_failure_limit(request, credentials),
        "username": get_client_username(request, credentials) or "",
        "cooloff_timedelta": cool_off,
        "cooloff_in_words": _duration_in_words(cool_off) if cool_off else None,
        "reset_on_attempt": settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT,
    }
    return render(request, "admin/lockout.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)


def _duration_in_words(duration: timedelta) -> str:
    """``15 minutes``, ``1 hour, 30 minutes``."""
    now = timezone.now()
    return timeuntil(now + duration, now)


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
