"""The SSRF guard on callback and action URLs.

They are chosen by integrations, so the server must not be turned into a proxy
onto its own network: unless ``HITL_WEBHOOK_ALLOW_PRIVATE`` is on, only hosts whose
every address is globally routable are accepted.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2000
DNS_TIMEOUT_SECONDS = 2.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")


class UnsafeURL(ValueError):
    """A callback or action URL the server refuses to call."""


def check_outbound_url(url: str, *, resolve: bool = True, allow_private: bool | None = None) -> None:
    """Raise UnsafeURL unless ``url`` is an http(s) URL to a public host.

    Checked at submission (and when an integration is saved). With ``resolve``,
    a DNS name is looked up and refused if any address is not public. A name that
    does not resolve at all (or not within DNS_TIMEOUT_SECONDS) is accepted here:
    DNS can change between submission and delivery, and ``resolve_for_delivery``
    checks again at delivery, which is the check that protects the network.
    """
    host, ip = _split(url)
    if _private_allowed(allow_private):
        return
    if ip is not None:
        _require_public(ip, host)
        return
    _refuse_local_name(host)
    if not resolve:
        return
    try:
        addresses = _resolve(host)
    except OSError:
        return
    for address in addresses:
        _require_public(address, host)


def resolve_for_delivery(url: str, *, allow_private: bool | None = None) -> list[str]:
    """Check ``url`` again at delivery time and return the addresses to connect to.

    Unlike at submission, a name that does not resolve is refused. The caller
    should connect to one of the returned addresses rather than resolve again, so
    the name cannot re-bind to a private address between check and connection.
    """
    host, ip = _split(url)
    allowed = _private_allowed(allow_private)
    if ip is not None:
        if not allowed:
            _require_public(ip, host)
        return [str(ip)]
    if not allowed:
        _refuse_local_name(host)
    try:
        addresses = _resolve(host)
    except OSError as exc:
        raise UnsafeURL(f"The host {host!r} does not resolve.") from exc
    if not allowed:
        for address in addresses:
            _require_public(address, host)
    return [str(address) for address in addresses]


def _private_allowed(allow_private: bool | None) -> bool:
    return settings.HITL_WEBHOOK_ALLOW_PRIVATE if allow_private is None else allow_private


def _split(url: str) -> tuple[str, IPAddress | None]:
    """Check the URL's shape; return its host and, for an IP literal, the address."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    # HTTP clients and urlsplit disagree on backslashes and stray whitespace
    # (urllib3 ends the host at "\"), which is a classic way to sneak past a check.
    if any(c.isspace() or c == "\\" or ord(c) < 32 or ord(c) == 127 for c in url):
        raise UnsafeURL("The URL contains whitespace, control characters or backslashes.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as exc:
        raise UnsafeURL(f"The URL is malformed: {exc}.") from exc
    if parts.scheme not in {"http", "https"}:
        raise UnsafeURL("The URL must start with http:// or https://.")
    if "@" in parts.netloc:
        raise UnsafeURL("The URL may not contain a user name or password.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURL("The URL has no host.")
    ip = _parse_ip(host)
    if "[" in parts.netloc and not isinstance(ip, ipaddress.IPv6Address):
        raise UnsafeURL("Square brackets in a URL may only hold an IPv6 address.")
    if ip is not None:
        return host, ip
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UnsafeURL(f"{host!r} is not a valid host name.") from exc
    if not _HOST_NAME.fullmatch(ascii_host):
        raise UnsafeURL(f"{host!r} is not a valid host name.")
    return ascii_host, None


def _parse_ip(host: str) -> IPAddress | None:
    """The address a host string denotes, including forms like ``0x7f.1`` or ``2130706433``.

    HTTP clients hand such strings to the C resolver, which reads them as IPv4 in
    the same lax way as ``inet_aton``; so must we, or they slip past as "names".
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), which is where it really goes."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _is_public(embedded)
        if ip.is_site_local:
            return False
    # is_global alone lets multicast through, hence the explicit extras.
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_unspecified
    )


def _require_public(ip: IPAddress, host: str) -> None:
    if not _is_public(ip):
        where = host if host == str(ip) else f"{host} ({ip})"
        raise UnsafeURL(
            f"{where} is a loopback, private, link-local or otherwise non-public address; "
            "webhooks may only go to public hosts."
        )


def _refuse_local_name(host: str) -> None:
    if host == "localhost" or host.endswith(".localhost"):
        raise UnsafeURL(f"{host} is a local host name; webhooks may only go to public hosts.")


def _resolve(host: str) -> list[IPAddress]:
    """Every address ``host`` resolves to, in order, without duplicates.

    Raises OSError (socket.gaierror, TimeoutError) when it does not resolve in
    time. A one-off thread bounds the wait: getaddrinfo itself has no timeout,
    and a fresh pool per call stays safe in forked Celery workers.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hitl-dns")
    try:
        future = pool.submit(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM)
        infos = future.result(timeout=DNS_TIMEOUT_SECONDS)
    except UnicodeError as exc:
        raise OSError(f"{host!r} cannot be looked up: {exc}") from exc
    finally:
        pool.shutdown(wait=False)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError(f"{host!r} has no addresses.")
    return addresses
