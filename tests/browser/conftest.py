"""The browser for the browser tests: Debian's Chromium driven by Playwright
(Playwright's own browser download is not used)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import missing_service

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("HITL_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "browser-test-password-1"


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """The live server, started after (so stopped before) the test database, whose
    teardown would otherwise find the server thread still connected to it."""
    return live_server


@pytest.fixture
def browser(monkeypatch):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("Playwright is not installed")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        missing_service(f"Chromium is not installed at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM
    # calls are still synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        yield browser
        browser.close()


def log_in(page, live_server, username: str, next_url: str = "/admin/reviews/reviewitem/workspace/") -> None:
    """Sign in through the admin's login form (the user's password is PASSWORD)."""
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")
