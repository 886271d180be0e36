"""The root URL, the favicon and the login lockout page: small pages, same strict policy."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from hitl_project.security import HEADER, build_policy
from tests.factories import UserFactory

FAVICON = "/static/reviews/favicon.svg"
FAVICON_LINK = f'<link rel="icon" href="{FAVICON}" type="image/svg+xml">'
STRICT_POLICY = build_policy(settings.SECURE_CSP)  # no nonce: the page needs no inline style


def assert_nothing_inline(html: str) -> None:
    """What the policy would block anyway, so a page that has it is broken in a browser."""
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline script"
    assert "<style" not in html
    assert re.search(r"\sstyle=", html) is None, "style attribute"
    assert re.search(r"\son[a-z]+=", html) is None, "inline event handler"


# --- The root URL ----------------------------------------------------------------------------


def test_root_is_a_landing_page_with_the_ways_in(client, db):
    response = client.get("/")

    assert response.status_code == 200
    assert "landing.html" in [t.name for t in response.templates]
    html = response.content.decode()
    for url in (
        reverse("admin:reviews_workspace"),  # /admin/reviews/reviewitem/workspace/
        reverse("admin:index"),
        reverse("api-docs"),
        reverse("schema"),
        reverse("healthz"),
    ):
        assert f'href="{url}"' in html, url
    assert "human" in html  # the one sentence on what the service is
    assert FAVICON_LINK in html
    assert 'href="/static/reviews/landing.css"' in html


def test_the_landing_page_sends_the_strict_policy_and_inlines_nothing(client, db):
    response = client.get("/")

    assert response.status_code == 200
    assert response[HEADER] == STRICT_POLICY
    assert_nothing_inline(response.content.decode())


def test_signed_in_staff_get_the_landing_page_too(client, policy_admin):
    """No redirect to the workspace: a policy admin or compliance officer has no queue there."""
    client.force_login(policy_admin)
    response = client.get("/")
    assert response.status_code == 200
    assert f'href="{reverse("admin:reviews_workspace")}"' in response.content.decode()


def test_the_admins_view_site_link_leads_to_the_landing_page(client, superuser):
    client.force_login(superuser)
    index = client.get(reverse("admin:index")).content.decode()

    link = re.search(r'<a href="([^"]+)">View site</a>', index)
    assert link is not None
    assert client.get(link.group(1)).status_code == 200


# --- The favicon -----------------------------------------------------------------------------


def test_favicon_ico_redirects_to_the_svg_favicon(client, db):
    response = client.get("/favicon.ico")

    assert response.status_code in (301, 302)
    assert response["Location"] == FAVICON


def test_the_favicon_is_a_plain_svg_static_file(client, db):
    response = client.get(FAVICON)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    svg = b"".join(response.streaming_content).decode()
    assert svg.lstrip().startswith("<svg")
    assert "<script" not in svg
    assert re.search(r"\sstyle=", svg) is None
    assert re.search(r"\son[a-z]+=", svg) is None
    assert "href=" not in svg  # draws everything itself: nothing to fetch


@pytest.mark.parametrize(
    "url",
    [
        reverse("admin:index"),
        reverse("admin:reviews_workspace"),
        reverse("admin:policies_gaterule_changelist"),
        reverse("admin:policies_gaterule_add"),
        reverse("admin:password_change"),
    ],
)
def test_admin_pages_link_the_favicon_and_keep_the_site_title(client, superuser, url):
    client.force_login(superuser)
    response = client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert FAVICON_LINK in html
    assert re.search(r"<title>[^<]* \| HITL review gates</title>", html)
    assert '<div id="site-name"><a href="/admin/">HITL review gates</a></div>' in html
    assert 'href="/static/admin/css/base.css"' in html  # base.html's head is still there


def test_the_login_page_links_the_favicon(client, db):
    html = client.get(reverse("admin:login")).content.decode()
    assert FAVICON_LINK in html


# --- The login lockout page ------------------------------------------------------------------


def lock_out(client: Client, *, password: str = "wrong"):
    """Fail the login HITL_LOGIN_FAILURE_LIMIT times; the last answer is the lockout page."""
    response = None
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post("/admin/login/?next=/admin/", {"username": "reviewer", "password": password})
    return response


def words(response) -> str:
    """The page's text with Django's non-breaking spaces in durations ("15\xa0minutes") as spaces."""
    return response.content.decode().replace("\xa0", " ")


@pytest.fixture
def locked_user(db):
    return UserFactory(username="reviewer", is_staff=True, password="right-password-123")


def test_the_lockout_page_is_the_admins_page_with_the_duration(client, locked_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)

    response = lock_out(client)

    assert response.status_code == 429  # django-axes' status, kept
    assert "admin/lockout.html" in [t.name for t in response.templates]
    html = words(response)
    assert 'href="/static/admin/css/base.css"' in html
    assert '<div id="site-name"><a href="/admin/">HITL review gates</a></div>' in html
    assert FAVICON_LINK in html
    assert "15 minutes" in html
    assert "After 3 failed attempts" in html
    assert "from this address" in html
    assert "reviewer" in html
    assert f'href="{reverse("admin:login")}"' in html


def test_the_lockout_page_reads_the_cool_off_setting(client, locked_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=90)

    html = words(lock_out(client))

    assert "1 hour, 30 minutes" in html
    assert "15 minutes" not in html


@pytest.mark.parametrize("restarts", [True, False])
def test_the_lockout_page_says_whether_trying_again_restarts_it(client, locked_user, settings, restarts):
    """Axes' default (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT) counts an attempt while
    locked, even with the right password, as a new failure, so the wait starts again."""
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = restarts

    html = words(lock_out(client))

    assert "<strong>15 minutes</strong> from the last attempt" in html
    assert ("starts the 15 minutes again" in html) is restarts


def test_the_lockout_page_keeps_the_strict_policy_and_inlines_nothing(client, locked_user, settings):
    settings.AXES_FAILURE_LIMIT = 2

    response = lock_out(client)

    assert response.status_code == 429
    assert "admin/lockout.html" in [t.name for t in response.templates]
    assert response[HEADER] == STRICT_POLICY
    assert_nothing_inline(response.content.decode())


def test_the_right_password_while_locked_gets_the_lockout_page(client, locked_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    lock_out(client)

    response = client.post("/admin/login/", {"username": "reviewer", "password": "right-password-123"})

    assert response.status_code == 429
    assert "admin/lockout.html" in [t.name for t in response.templates]
