"""`verify_webhook` accepts what the service signs (reviews/webhooks/signing.py) and
refuses what it must, exactly as the reference `standardwebhooks` library does."""

from __future__ import annotations

import base64
import json
import time

import hitl_client
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reviews import services
from reviews.models import new_webhook_secret
from reviews.representation import item_representation
from reviews.webhooks.signing import signature_headers
from tests.factories import submission

OLD, NEW = new_webhook_secret(), new_webhook_secret()


@pytest.fixture
def decided_body(integration) -> bytes:
    """An `item.decided` body as the outbox writes it, for a real item."""
    item = services.submit_item(integration=integration, payload=submission()).item
    envelope = {
        "type": "item.decided",
        "timestamp": "2026-03-02T14:30:00Z",
        "data": item_representation(item),
    }
    return json.dumps(envelope).encode()


def signed(body: bytes, *secrets: str, at: int | None = None, msg_id: str = "msg_2b7c41") -> dict[str, str]:
    return signature_headers(
        secrets=list(secrets), msg_id=msg_id, timestamp=int(time.time()) if at is None else at, body=body
    )


def reference_accepts(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except (WebhookVerificationError, ValueError):  # it lets binascii.Error out on bad base64
        return False
    return True


def test_a_webhook_signed_by_the_service_is_accepted_by_both(decided_body):
    headers = signed(decided_body, NEW)
    payload = hitl_client.verify_webhook(NEW, headers, decided_body)
    assert payload == Webhook(NEW).verify(decided_body, headers) == json.loads(decided_body)
    item = hitl_client.Item.from_api(payload["data"])
    assert (
        item.status == "auto_approved" and item.review_url == f"/admin/reviews/reviewitem/{item.id}/review/"
    )


def test_during_a_rotation_either_secret_verifies_the_two_signatures(decided_body):
    headers = signed(decided_body, NEW, OLD)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (OLD, NEW):
        assert hitl_client.verify_webhook(secret, headers, decided_body)["type"] == "item.decided"
        assert reference_accepts(secret, headers, decided_body)
    # A receiver may hold both secrets itself while it switches over.
    assert hitl_client.verify_webhook([NEW, OLD], signed(decided_body, OLD), decided_body)
    stranger = new_webhook_secret()
    with pytest.raises(hitl_client.InvalidSignature):
        hitl_client.verify_webhook(stranger, headers, decided_body)
    assert not reference_accepts(stranger, headers, decided_body)


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused_by_both(decided_body, skew):
    headers = signed(decided_body, NEW, at=int(time.time()) + skew)
    with pytest.raises(hitl_client.InvalidSignature, match="timestamp"):
        hitl_client.verify_webhook(NEW, headers, decided_body)
    assert not reference_accepts(NEW, headers, decided_body)
    # Within a wider tolerance the same message passes.
    assert hitl_client.verify_webhook(NEW, headers, decided_body, tolerance=400)


def test_the_timestamp_is_signed_too(decided_body):
    headers = signed(decided_body, NEW)
    replayed = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 10)}
    with pytest.raises(hitl_client.InvalidSignature):
        hitl_client.verify_webhook(NEW, replayed, decided_body)
    assert not reference_accepts(NEW, replayed, decided_body)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),
        lambda h, b: ({**h, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, b),
        lambda h, b: ({**h, "webhook-signature": "v1,not base64!"}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "soon"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "١٧٠٠٠٠٠٠٠٠"}, b),  # digits, but not ASCII ones
    ],
    ids=[
        "body",
        "id",
        "signature",
        "garbage",
        "version",
        "no-signature",
        "no-id",
        "timestamp",
        "unicode-digits",
    ],
)
def test_anything_tampered_with_is_refused(decided_body, tamper):
    headers, body = tamper(signed(decided_body, NEW), decided_body)
    with pytest.raises(hitl_client.InvalidSignature):
        hitl_client.verify_webhook(NEW, headers, body)
    assert not reference_accepts(NEW, headers, body)


def test_header_names_in_any_case_and_a_str_body_are_accepted(decided_body):
    headers = {name.title(): value for name, value in signed(decided_body, NEW).items()}
    assert hitl_client.verify_webhook(NEW, headers, decided_body.decode())


def test_a_malformed_secret_is_a_configuration_error_not_a_bad_signature(decided_body):
    with pytest.raises(ValueError):
        hitl_client.verify_webhook("whsec_%%%", signed(decided_body, NEW), decided_body)
    with pytest.raises(ValueError):
        hitl_client.verify_webhook([], signed(decided_body, NEW), decided_body)
