"""Standard Webhooks verification (standardwebhooks.com), standard library only.

The service signs every callback and action it sends with the integration's secret
(`whsec_<base64 key>`): `webhook-signature: v1,<base64 HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<raw body>">`. During a secret rotation it sends
two signatures, space-separated, one per secret; one match is enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from hitl_client.errors import InvalidSignature

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds: five minutes, as the Standard Webhooks libraries


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_<base64>` secret stands for (the prefix is optional)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("A webhook secret is whsec_ followed by base64.") from exc
    if not key:
        raise ValueError("The webhook secret is empty.")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature, as the service computes it."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode()


def verify_webhook(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a webhook and return its parsed JSON payload, or raise `InvalidSignature`.

    `headers`: the request's headers, any mapping (names in any case). `body`: the raw
    body, before any JSON parsing. `secret`: the integration's `whsec_...` secret, or
    several (a receiver holding both during a rotation). `tolerance`: how far, in
    seconds, `webhook-timestamp` may be from now, against replays; dedupe on
    `webhook-id` for replays inside that window (every retry carries the same id).

        payload = verify_webhook(os.environ["HITL_WEBHOOK_SECRET"], request.headers, request.body)
        if payload["type"] == "item.decided":
            item = hitl_client.Item.from_api(payload["data"])
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "").strip()
    timestamp_text = lowered.get("webhook-timestamp", "").strip()
    signatures = lowered.get("webhook-signature", "").split()
    if not msg_id or not signatures:
        raise InvalidSignature("The webhook-id or webhook-signature header is missing.")
    if not (timestamp_text.isascii() and timestamp_text.isdigit()):
        raise InvalidSignature("The webhook-timestamp header is missing or not a number of seconds.")
    timestamp = int(timestamp_text)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise InvalidSignature("The webhook timestamp is too old.")
    if timestamp > current + tolerance:
        raise InvalidSignature("The webhook timestamp is in the future.")

    secrets = [secret] if isinstance(secret, str) else list(secret)
    signed = f"{msg_id}.{timestamp_text}.".encode() + raw
    expected = [hmac.new(secret_key(s), signed, hashlib.sha256).digest() for s in secrets if s.strip()]
    if not expected:
        raise ValueError("No webhook secret given.")
    if not any(_matches(candidate, expected) for candidate in signatures):
        raise InvalidSignature("No webhook signature matches.")
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        raise ValueError("The webhook's body is not a JSON object.")
    return payload


def _matches(candidate: str, expected: list[bytes]) -> bool:
    version, _, encoded = candidate.partition(",")
    if version != "v1" or not encoded:
        return False  # another scheme (v1a is asymmetric): not ours to check
    try:
        given = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    # compare_digest on bytes: constant time, whatever the attacker sent.
    matched = False
    for digest in expected:
        matched |= hmac.compare_digest(given, digest)
    return matched
