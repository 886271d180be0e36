"""Signed webhook POSTs to a checked address: what the outbox worker sends."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

from reviews.webhooks.signing import signature_headers
from reviews.webhooks.urlguard import UnsafeURL, resolve_for_delivery

MAX_RESPONSE_BYTES = 4096


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    duration_ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post_json(url: str, *, body: bytes, headers: Mapping[str, str], timeout: float) -> PostResult:
    """POST ``body`` to ``url``, connecting to an address checked just now.

    The host is resolved and checked once (`resolve_for_delivery`) and the
    connection goes to that address, with the original name in the Host header
    and for TLS verification, so DNS cannot re-bind between check and connect.
    Redirects are not followed (a redirect could point anywhere). Never raises.
    """
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        address = resolve_for_delivery(url)[0]
    except UnsafeURL as exc:
        return PostResult(None, elapsed(), f"refused: {exc}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    limits = urllib3.Timeout(connect=min(5.0, timeout), read=timeout, total=timeout)
    pool_options = {"timeout": limits, "retries": False}
    if parts.scheme == "https":
        tls = {"server_hostname": host, "assert_hostname": host, "cert_reqs": "CERT_REQUIRED"}
        pool = urllib3.HTTPSConnectionPool(address, port, **tls, **pool_options)
    else:
        pool = urllib3.HTTPConnectionPool(address, port, **pool_options)
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": parts.netloc, "Content-Type": "application/json"},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            response.read(MAX_RESPONSE_BYTES)
        finally:
            response.release_conn()
        status = response.status
        error = "" if 200 <= status < 300 else f"HTTP {status}"
        return PostResult(status, elapsed(), error)
    except Exception as exc:  # any transport failure is an unsuccessful attempt, recorded as such
        return PostResult(None, elapsed(), f"{exc.__class__.__name__}: {exc}"[:500])
    finally:
        pool.close()


def post_signed(
    url: str, *, payload: dict, secrets: list[str], msg_id: str, timeout: float, extra_headers=None
) -> PostResult:
    """Sign `payload` (Standard Webhooks headers, one signature per secret) and POST it."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = signature_headers(secrets=secrets, msg_id=msg_id, timestamp=int(time.time()), body=body)
    headers.update(extra_headers or {})
    return post_json(url, body=body, headers=headers, timeout=timeout)
