"""Content-Security-Policy on every response (Django 5.2 has none built in).

The admin, the reviewer workspace and the API docs load only their own static
files, so the policy in ``settings.SECURE_CSP`` allows nothing else: no inline
script or style, no other origin. It is shaped like Django 6.0's built-in (the
``SECURE_CSP`` setting, ``CSP`` constants, the ``csp_nonce`` template variable and
``csp_override``), so that one can replace this module by changing imports.

A template that cannot avoid an inline ``<style>`` marks it
``nonce="{{ csp_nonce }}"``; the nonce is generated, and added to the header, only
on a response whose template used it, so every other page keeps the plain policy.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import wraps

from django.conf import settings
from django.template.loader import get_template


class CSP:
    """Source expressions, as ``django.utils.csp.CSP`` spells them."""

    SELF = "'self'"
    NONE = "'none'"
    # Replaced by 'nonce-<value>' when the response used the nonce, dropped otherwise.
    NONCE = "<CSP_NONCE_SENTINEL>"


HEADER = "Content-Security-Policy"
Policy = Mapping[str, Sequence[str]]


class _Nonce:
    """A per-request nonce, made the first time a template prints it."""

    def __init__(self) -> None:
        self.value: str | None = None

    def __str__(self) -> str:
        if self.value is None:
            self.value = secrets.token_urlsafe(18)
        return self.value


def build_policy(policy: Policy, nonce: str | None = None) -> str:
    directives = []
    for name, sources in policy.items():
        values = [
            (f"'nonce-{nonce}'" if nonce else None) if source == CSP.NONCE else source for source in sources
        ]
        directives.append(" ".join([name, *(value for value in values if value)]))
    return "; ".join(directives)


def _is_debug_error_page(response) -> bool:
    """Django 5.2's technical 404 and 500 pages (debug only) inline their style and script."""
    return (
        settings.DEBUG
        and response.status_code in (400, 404, 500)
        and response.get("Content-Type", "").startswith("text/html")
    )


class ContentSecurityPolicyMiddleware:
    """Sends ``settings.SECURE_CSP`` (or a view's ``csp_override``) with every response."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request._csp_nonce = _Nonce()
        response = self.get_response(request)
        if HEADER in response or _is_debug_error_page(response):
            return response
        policy = getattr(response, "_csp_config", None) or settings.SECURE_CSP
        # Template responses are rendered by now, so the nonce was made if it was used.
        response[HEADER] = build_policy(policy, request._csp_nonce.value)
        return response


def csp(request) -> dict:
    """Context processor: ``{{ csp_nonce }}`` for the rare inline ``<style>``."""
    return {"csp_nonce": getattr(request, "_csp_nonce", "")}


def csp_override(policy: Policy) -> Callable:
    """View decorator: send ``policy`` instead of ``settings.SECURE_CSP``."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            response._csp_config = policy
            return response

        return wrapped

    return decorator


_INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def inline_style_hashes(template_name: str) -> list[str]:
    """'sha256-…' sources for the plain ``<style>`` blocks of a template we cannot edit.

    Read from the installed template, so an upgrade that changes its styles keeps
    them allowed, and nothing else is.
    """
    source = get_template(template_name).template.source
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'"
        for block in _INLINE_STYLE.findall(source)
        if "{{" not in block and "{%" not in block  # rendered, it would differ from the source
    ]
