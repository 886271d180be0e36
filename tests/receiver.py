"""A real HTTP server on 127.0.0.1 that records what it receives, for delivery tests.

It can fail the first requests, and it dedupes actions on `Idempotency-Key`
the way a payment provider does: the first request with a key is applied,
repeats are answered 200 without applying again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    fail_first: int = 0
    status_on_failure: int = 500
    delay: float = 0.0  # seconds between applying a request and answering it
    requests: list[Received] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> times applied

    def __post_init__(self):
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver._handle(self.path, dict(self.headers.items()), body)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handle(self, path: str, headers: dict, body: bytes) -> int:
        """Record the request and apply it (once per key); the answer follows after `delay`."""
        with self._lock:
            self.requests.append(Received(path, headers, body))
            if len(self.requests) <= self.fail_first:
                return self.status_on_failure
            key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
            if key is not None:
                self.applied.setdefault(key, 1)
            return 200

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
