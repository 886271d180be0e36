"""Production settings and the Content-Security-Policy.

Settings are read from the environment once, at import, so the HTTPS switches are
tested in fresh processes; the policy on responses is tested in this one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from reviews import services

ROOT = Path(__file__).resolve().parents[1]
HOST = "hitl.example.com"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HITL_"))}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def production(**extra: str) -> dict:
    return {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": HOST,
        # healthz runs SELECT 1; nothing here needs a table.
        "DATABASE_URL": "sqlite://:memory:",
        **extra,
    }


# Requests over plain http and through a TLS proxy (X-Forwarded-Proto), in a process
# whose settings come from the given environment.
PROBE = """
import json
import django
from django.conf import settings

django.setup()
from django.test import Client

client = Client(HTTP_HOST="hitl.example.com")
plain = client.get("/admin/login/")
proxied = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
health = client.get("/healthz")
print(json.dumps({
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location"),
    "proxied_status": proxied.status_code,
    "hsts": proxied.get("Strict-Transport-Security"),
    "csrf_cookie_secure": bool(proxied.cookies["csrftoken"]["secure"]),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "health_status": health.status_code,
    "trusted_origins": settings.CSRF_TRUSTED_ORIGINS,
}))
"""


def probe(**env: str) -> dict:
    result = run("-c", PROBE, DJANGO_SETTINGS_MODULE="hitl_project.settings", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- HTTPS deployments ------------------------------------------------------------------


def test_deploy_check_is_clean_with_the_documented_https_variables():
    result = run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **production(DJANGO_SECURE="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_django_secure_turns_on_secure_cookies_hsts_and_the_https_redirect():
    on, off = probe(**production(DJANGO_SECURE="1")), probe(**production())

    assert on["plain_status"] == 301
    assert on["plain_location"] == f"https://{HOST}/admin/login/"
    # Behind the proxy the request counts as https: served, with HSTS and secure cookies.
    assert on["proxied_status"] == 200
    assert on["hsts"] == "max-age=31536000; includeSubDomains"
    assert on["csrf_cookie_secure"] is True
    assert on["session_cookie_secure"] is True

    # Off (the default, as under `make run`): plain http is served as it is.
    assert off["plain_status"] == 200
    assert off["hsts"] is None
    assert off["csrf_cookie_secure"] is False
    assert off["session_cookie_secure"] is False


def test_the_https_redirect_spares_healthz_for_load_balancers():
    seen = probe(**production(DJANGO_SECURE="1"))
    assert seen["plain_status"] == 301
    assert seen["health_status"] == 200


def test_hsts_lifetime_and_preload_are_opt_in_variables():
    seen = probe(**production(DJANGO_SECURE="1", DJANGO_HSTS_SECONDS="3600", DJANGO_HSTS_PRELOAD="1"))
    assert seen["hsts"] == "max-age=3600; includeSubDomains; preload"


def test_csrf_trusted_origins_are_read_comma_separated():
    origins = "https://hitl.example.com, https://review.example.com"
    seen = probe(**production(DJANGO_CSRF_TRUSTED_ORIGINS=origins))
    assert seen["trusted_origins"] == ["https://hitl.example.com", "https://review.example.com"]


# --- Content-Security-Policy --------------------------------------------------------------


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/reviews/reviewitem/",
        "/admin/reviews/reviewitem/workspace/",
        "/admin/policies/gaterule/",
        "/admin/policies/gaterule/add/",
        "/no-such-page/",
    ],
)
def test_admin_pages_send_the_strict_policy(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code in (200, 404)
    assert response["Content-Security-Policy"] == POLICY


def test_the_login_page_sends_the_strict_policy(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == POLICY


def test_api_responses_send_the_policy(client, integration):
    key = services.issue_api_key(integration=integration)
    response = client.get("/api/v1/items/", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == POLICY
    assert client.get("/api/v1/items/")["Content-Security-Policy"] == POLICY  # a 401 too


def test_healthz_and_static_files_send_the_policy(client, db):
    assert client.get("/healthz")["Content-Security-Policy"] == POLICY
    assert client.get("/static/reviews/workspace.js")["Content-Security-Policy"] == POLICY


def test_api_docs_page_has_no_inline_script_and_loads_only_its_own_files(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert scripts, "Swagger UI's scripts are missing"
    for attributes, body in scripts:
        assert 'src="' in attributes and not body.strip(), f"inline script: {attributes} {body[:80]}"
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith("/") and not url.startswith("//"), f"another origin: {url}"

    # The one inline style (drf-spectacular's template) is allowed by its hash, nothing else.
    header = response["Content-Security-Policy"]
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in styles]
    docs_policy = POLICY.replace("style-src 'self'", " ".join(["style-src 'self'", *hashes]))
    assert header == docs_policy.replace("img-src 'self'", "img-src 'self' data:")
    assert "unsafe" not in header and "nonce" not in header

    # The init script comes from the page's own URL, and calls no validator elsewhere.
    (init_url,) = [u for u in re.findall(r'<script src="([^"]*)"', html) if "script" in u.split("?")[-1]]
    init = client.get(init_url.replace("&amp;", "&"))
    assert init.status_code == 200
    assert init["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in init.content.decode()
    assert '"validatorUrl": null' in init.content.decode()

    # Wrapped for its policy, the view is still left out of the OpenAPI document.
    schema = client.get(reverse("schema"), HTTP_ACCEPT="application/json").json()
    assert not any("docs" in path for path in schema["paths"])


def test_a_page_with_an_inline_style_gets_a_fresh_nonce_for_it(admin_client):
    url = reverse("admin:policies_safety_policy")
    nonces = []
    for _ in range(2):
        response = admin_client.get(url)
        assert response.status_code == 200
        (nonce,) = re.findall(r'<style nonce="([^"]+)">', response.content.decode())
        assert response["Content-Security-Policy"] == POLICY.replace(
            "style-src 'self'", f"style-src 'self' 'nonce-{nonce}'"
        )
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_debug_error_pages_keep_their_inline_style_but_other_pages_do_not(admin_client, settings):
    settings.DEBUG = True
    missing = admin_client.get("/no-such-page/")
    assert missing.status_code == 404 and "Content-Security-Policy" not in missing
    assert admin_client.get("/admin/")["Content-Security-Policy"] == POLICY
