"""The Celery worker's consumer, made to survive losing Redis.

When the broker goes away, Celery 5.7's consumer tears the connection down
(`collect()`) and then closes it; closing the Redis channel tries to put the
messages it had reserved but not started back through that torn-down connection
and raises AttributeError, which the consumer does not expect: the worker logs
"Unrecoverable error" and exits, and under `honcho start` takes the web and beat
processes with it.

Nothing is lost by going on instead: reserved messages stay in Redis and come
back after the visibility timeout, and the outbox sweep sends whatever is still
undelivered (`reviews.delivery.outbox`), with the same webhook-id and Idempotency-Key.
So the consumer logs it and reconnects as after any other connection loss.
"""

from __future__ import annotations

import logging

from celery.worker.consumer import Consumer

logger = logging.getLogger(__name__)


class ReconnectingConsumer(Consumer):
    def on_connection_error_after_connected(self, exc):
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            # Only the known case: the channel asking the torn-down connection for its address.
            if "hostname" not in str(error):
                raise
            logger.warning(
                "The broker connection was already torn down when closing it; reserved "
                "tasks come back after the visibility timeout. Reconnecting.",
                exc_info=True,
            )
