"""Webhook signing (Standard Webhooks) and the SSRF guard on outbound URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time

import pytest

from reviews.models import new_webhook_secret
from reviews.webhooks.signing import InvalidSignature, secret_bytes, sign, signature_headers, verify
from reviews.webhooks.urlguard import UnsafeURL, check_outbound_url, resolve_for_delivery

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
TIMESTAMP = 1_700_000_000
BODY = b'{"type": "item.decided", "data": {"id": "7b0c"}}'

# The receiver-side check printed in the README ("Verifying webhooks"). Keep the two
# identical: this test is what proves the snippet integrators copy actually works.
README_VERIFY = '''
import base64
import hashlib
import hmac
import time


def verify_webhook(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
    """True when `body` was signed with `secret` (whsec_...) within 5 minutes of now."""
    headers = {name.lower(): value for name, value in headers.items()}
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not msg_id or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected.encode(), candidate.encode())
        for candidate in headers.get("webhook-signature", "").split()
    )
'''


def headers_for(body: bytes = BODY, *, secrets: list[str] | None = None, timestamp: int = TIMESTAMP):
    return signature_headers(secrets=secrets or [SECRET], msg_id=MSG_ID, timestamp=timestamp, body=body)


# --- Signing ---------------------------------------------------------------------


def test_signature_matches_an_independently_computed_hmac():
    key = bytes(range(32))
    digest = hmac.new(key, f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()

    assert sign(secret=SECRET, msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY) == expected


def test_signature_matches_the_published_standard_webhooks_example():
    # The example vector from the Standard Webhooks / Svix documentation.
    signature = sign(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )

    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_carry_id_timestamp_and_signature():
    headers = headers_for()

    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": sign(secret=SECRET, msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY),
    }


def test_signed_message_verifies():
    verify(secret=SECRET, headers=headers_for(), body=BODY, now=TIMESTAMP + 10)


def test_generated_secrets_sign_and_verify():
    secret = new_webhook_secret()
    headers = signature_headers(secrets=[secret], msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY)

    assert len(secret_bytes(secret)) == 32
    verify(secret=secret, headers=headers, body=BODY, now=TIMESTAMP)


def test_header_names_are_case_insensitive():
    headers = {name.title(): value for name, value in headers_for().items()}

    verify(secret=SECRET, headers=headers, body=BODY, now=TIMESTAMP)


def test_tampered_body_fails():
    with pytest.raises(InvalidSignature):
        verify(secret=SECRET, headers=headers_for(), body=BODY + b" ", now=TIMESTAMP)


def test_tampered_id_fails():
    headers = headers_for() | {"webhook-id": "msg_other"}

    with pytest.raises(InvalidSignature):
        verify(secret=SECRET, headers=headers, body=BODY, now=TIMESTAMP)


def test_wrong_secret_fails():
    with pytest.raises(InvalidSignature):
        verify(secret=new_webhook_secret(), headers=headers_for(), body=BODY, now=TIMESTAMP)


@pytest.mark.parametrize("offset", [301, -301, 3600])
def test_timestamp_outside_the_tolerance_fails(offset):
    with pytest.raises(InvalidSignature):
        verify(secret=SECRET, headers=headers_for(), body=BODY, now=TIMESTAMP + offset)


def test_timestamp_inside_the_tolerance_passes():
    verify(secret=SECRET, headers=headers_for(), body=BODY, now=TIMESTAMP + 300)


@pytest.mark.parametrize(
    "changes",
    [
        {"webhook-signature": ""},
        {"webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl"},
        {"webhook-signature": "v1,\u00e9\u00e9"},
        {"webhook-timestamp": "soon"},
        {"webhook-id": ""},
    ],
)
def test_missing_or_malformed_headers_fail(changes):
    with pytest.raises(InvalidSignature):
        verify(secret=SECRET, headers=headers_for() | changes, body=BODY, now=TIMESTAMP)


def test_during_rotation_both_secrets_sign_and_either_verifies():
    previous = new_webhook_secret()
    headers = headers_for(secrets=[SECRET, previous])

    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(secret=SECRET, headers=headers, body=BODY, now=TIMESTAMP)
    verify(secret=previous, headers=headers, body=BODY, now=TIMESTAMP)


def test_blank_secrets_are_skipped():
    headers = headers_for(secrets=[SECRET, "", "  "])

    assert headers["webhook-signature"] == sign(secret=SECRET, msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY)


def test_secret_without_padding_decodes_like_the_reference_libraries():
    assert secret_bytes(SECRET.rstrip("=")) == bytes(range(32))


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!", "c2VjcmV0", "whsec_abc*", "whsec_a"])
def test_malformed_secret_raises_value_error(secret):
    with pytest.raises(ValueError):
        secret_bytes(secret)


def test_readme_verify_function_accepts_our_headers_and_rejects_tampering():
    namespace: dict = {}
    exec(README_VERIFY, namespace)
    verify_webhook = namespace["verify_webhook"]
    now = int(time.time())
    headers = headers_for(secrets=[new_webhook_secret(), SECRET], timestamp=now)

    assert verify_webhook(SECRET, headers, BODY)
    assert verify_webhook(SECRET, {k.upper(): v for k, v in headers.items()}, BODY)
    assert not verify_webhook(SECRET, headers, BODY + b" ")
    assert not verify_webhook(new_webhook_secret(), headers, BODY)
    assert not verify_webhook(SECRET, headers_for(timestamp=now - 600), BODY)


# --- Outbound URL guard ----------------------------------------------------------


@pytest.fixture
def dns(monkeypatch):
    """A fake resolver: map names to addresses; anything else does not resolve."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, 0, 0, 0) if ":" in a else (a, 0),
            )
            for a in table[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


SAFE_URLS = [
    "https://bot.example/hitl",
    "http://bot.example:8080/actions?x=1",
    "HTTPS://Bot.Example./hitl",
    "https://8.8.8.8/hook",
    "https://[2001:4860:4860::8888]/hook",
    "https://[::ffff:8.8.8.8]/hook",
]

UNSAFE_URLS = [
    # scheme, shape
    "ftp://bot.example/file",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "bot.example/hitl",
    "http:///no-host",
    "https://",
    "https://user:pass@bot.example/",
    "https://user@bot.example/",
    "https://bot.example@127.0.0.1/",
    "http://127.0.0.1\\.bot.example/",
    "http://bot.example/\r\nX-Injected: 1",
    "http://bot.example:99999/",
    "http://[bot.example]/",
    "https://bot.example/" + "a" * 2000,
    # local names
    "http://localhost/",
    "http://LOCALHOST:8000/",
    "http://localhost./",
    "http://api.localhost/",
    # IPv4 literals
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/",
    "http://0/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    # IPv6 literals
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[ff02::1]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::a9fe:a9fe]/",
]


@pytest.mark.parametrize("url", SAFE_URLS)
def test_public_urls_are_accepted(url, dns):
    dns["bot.example"] = ["93.184.215.14"]

    check_outbound_url(url, allow_private=False)


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_unsafe_urls_are_refused(url, dns):
    dns["bot.example"] = ["93.184.215.14"]

    with pytest.raises(UnsafeURL):
        check_outbound_url(url, allow_private=False)
    with pytest.raises(UnsafeURL):
        resolve_for_delivery(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hook", "http://[::1]/", "http://0x7f.1/", "http://192.168.1.1/"]
)
def test_allow_private_lets_local_addresses_through(url):
    check_outbound_url(url, allow_private=True)


def test_allow_private_still_requires_http(dns):
    with pytest.raises(UnsafeURL):
        check_outbound_url("ftp://127.0.0.1/", allow_private=True)


def test_default_follows_the_setting(settings):
    settings.HITL_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(UnsafeURL):
        check_outbound_url("http://127.0.0.1/")

    settings.HITL_WEBHOOK_ALLOW_PRIVATE = True
    check_outbound_url("http://127.0.0.1/")


def test_name_resolving_to_loopback_is_refused(dns):
    dns["rebind.example"] = ["127.0.0.1"]

    with pytest.raises(UnsafeURL, match="127.0.0.1"):
        check_outbound_url("https://rebind.example/hook", allow_private=False)


def test_name_with_any_private_address_is_refused(dns):
    dns["mixed.example"] = ["93.184.215.14", "10.1.2.3"]

    with pytest.raises(UnsafeURL, match="10.1.2.3"):
        check_outbound_url("https://mixed.example/", allow_private=False)
    with pytest.raises(UnsafeURL):
        resolve_for_delivery("https://mixed.example/", allow_private=False)


def test_name_resolving_to_mapped_loopback_is_refused(dns):
    dns["mapped.example"] = ["::ffff:127.0.0.1"]

    with pytest.raises(UnsafeURL):
        check_outbound_url("https://mapped.example/", allow_private=False)


def test_without_resolve_names_are_not_looked_up(dns):
    dns["rebind.example"] = ["127.0.0.1"]

    check_outbound_url("https://rebind.example/", resolve=False, allow_private=False)


def test_unresolvable_name_is_accepted_at_submission_and_refused_at_delivery(dns):
    check_outbound_url("https://not-yet.example/hook", allow_private=False)

    with pytest.raises(UnsafeURL, match="does not resolve"):
        resolve_for_delivery("https://not-yet.example/hook", allow_private=False)


def test_resolve_timeout_counts_as_unresolvable(monkeypatch):
    def slow(*args, **kwargs):
        raise TimeoutError("resolver did not answer")

    monkeypatch.setattr(socket, "getaddrinfo", slow)

    check_outbound_url("https://slow.example/", allow_private=False)
    with pytest.raises(UnsafeURL):
        resolve_for_delivery("https://slow.example/", allow_private=False)


def test_delivery_returns_the_checked_addresses_without_duplicates(dns):
    dns["bot.example"] = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.14"]

    addresses = resolve_for_delivery("https://bot.example/hitl", allow_private=False)

    assert addresses == ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]


def test_delivery_to_an_ip_literal_returns_the_normalised_address():
    assert resolve_for_delivery("https://8.8.8.8/", allow_private=False) == ["8.8.8.8"]
    assert resolve_for_delivery("http://0x7f.1/", allow_private=True) == ["127.0.0.1"]


def test_delivery_with_private_allowed_returns_local_addresses(dns):
    dns["localhost"] = ["127.0.0.1"]

    assert resolve_for_delivery("http://localhost:8000/", allow_private=True) == ["127.0.0.1"]


def test_refusal_message_is_readable(dns):
    with pytest.raises(UnsafeURL) as excinfo:
        check_outbound_url("http://169.254.169.254/", allow_private=False)

    assert "169.254.169.254" in str(excinfo.value)
    assert "public" in str(excinfo.value)
