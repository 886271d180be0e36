"""Standard Webhooks signatures (standardwebhooks.com, SPEC section 4), so a receiver
can check them with that project's libraries in any language:
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, keyed
with the base64 part of the integration's ``whsec_...`` secret.

Standard library only: clients and receivers can use it as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"


class InvalidSignature(Exception):
    """A webhook's signature or timestamp did not check out."""


def secret_bytes(secret: str) -> bytes:
    """Decode a ``whsec_<base64>`` secret into the HMAC key it stands for."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"A webhook secret starts with {SECRET_PREFIX!r}.")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        # Tolerate missing padding, as the Standard Webhooks libraries do.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("A webhook secret is whsec_ followed by base64.") from exc
    if not key:
        raise ValueError("A webhook secret may not be empty.")
    return key


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` as sent with ``msg_id`` at ``timestamp``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(*, secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed by every non-blank secret.

    During a rotation the caller passes the current and the previous secret, so a
    receiver still holding either one accepts the message.
    """
    signatures = [sign(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets if s.strip()]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


def verify(
    *,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_seconds: int = 300,
    now: int | None = None,
) -> None:
    """Raise InvalidSignature unless one ``v1`` signature in ``headers`` matches.

    The timestamp window bounds replays of a captured request; dedupe on
    ``webhook-id`` covers replays inside it.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    raw_timestamp = lowered.get("webhook-timestamp", "")
    if not msg_id or not raw_timestamp.isascii() or not raw_timestamp.isdigit():
        raise InvalidSignature("Missing or malformed webhook-id or webhook-timestamp.")
    timestamp = int(raw_timestamp)
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise InvalidSignature("The webhook timestamp is outside the tolerance.")
    expected = sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body).encode()
    for candidate in lowered.get("webhook-signature", "").split():
        # Compare bytes: compare_digest refuses non-ASCII str, and a header is attacker input.
        if hmac.compare_digest(expected, candidate.encode()):
            return
    raise InvalidSignature("No webhook signature matches.")
