"""Working on while a part of Redis is away: this process's view of one service.

The web processes can go on without the shared cache (rate limits then count in
the process, `reviews.api.throttles`) and without the broker (what a decision must do
next waits in the outbox for the sweep, `reviews.delivery.outbox`). After an error the
process leaves the service alone for a while, longer than a socket timeout, so an
outage costs one slow call per process in that time rather than one per request
(a Redis that accepts connections and never answers included), and it warns at
most once a minute.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

WARN_EVERY_SECONDS = 60.0


class Outage:
    """Usable, or skipped until a moment (monotonic clock). Threads share one; the
    lock keeps the warning to one per minute."""

    def __init__(self, what: str, retry_setting: str, meanwhile: str) -> None:
        self.what, self.retry_setting, self.meanwhile = what, retry_setting, meanwhile
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.skip_until = 0.0
        self.last_warning: float | None = None
        self.degraded = False

    def skipping(self) -> bool:
        return time.monotonic() < self.skip_until

    def failed(self, exc: Exception, detail: str = "") -> None:
        retry = getattr(settings, self.retry_setting)
        now = time.monotonic()
        with self._lock:
            self.skip_until = now + retry
            self.degraded = True
            warn = self.last_warning is None or now - self.last_warning >= WARN_EVERY_SECONDS
            if warn:
                self.last_warning = now
        if warn:
            logger.warning(
                "%s does not answer (%s: %s): %s%s; trying again in %ss",
                self.what,
                exc.__class__.__name__,
                exc,
                self.meanwhile,
                f" ({detail})" if detail else "",
                retry,
            )

    def answered(self) -> None:
        if self.degraded:
            self.degraded = False
            logger.info("%s answers again", self.what)
