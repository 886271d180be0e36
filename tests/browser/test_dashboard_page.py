"""The metrics dashboard in Chromium with the demo data (`seed_demo`: two weeks of reviews,
their backlog snapshots and last week's summary), as a compliance officer reads it for the
weekly review: at 1440×900 and on a 390-wide phone the page stays as wide as the window,
the backlog charts are drawn (inline SVG) and the Content-Security-Policy is never broken.
Screenshots: test-artifacts/dashboard-desktop.png and dashboard-phone.png."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command

from tests.browser.conftest import ARTIFACTS, PASSWORD, log_in
from tests.browser.test_csp import RECORD_VIOLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

DASHBOARD = "/admin/metrics/dashboard/"


@pytest.fixture
def demo(db):
    cache.clear()
    call_command("seed_demo", stdout=io.StringIO())
    compliance = get_user_model().objects.get(username="compliance")
    compliance.set_password(PASSWORD)
    compliance.save()
    return compliance


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


@pytest.mark.parametrize(
    ("width", "height", "name"), [(1440, 900, "dashboard-desktop.png"), (390, 844, "dashboard-phone.png")]
)
def test_the_dashboard_reads_well_with_the_demo_data(browser, live_server, demo, width, height, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": width, "height": height})
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(page, live_server, "compliance", next_url="/admin/")
    page.click("#metrics-dashboard-link")
    page.wait_for_url(f"**{DASHBOARD}")
    page.wait_for_selector("#queue-table")

    # Every queue of the demo, with its figures, its chart and its week.
    assert page.locator("#queue-table tbody tr").count() == 4
    assert page.locator("svg.backlog-chart").count() == 4
    assert page.locator("svg.backlog-chart path.chart-line").count() >= 4
    # The demo's history shows what the dashboard is for: flags and incidents.
    assert page.locator("#rubber-stamp-flags tbody tr").count() >= 1
    assert page.locator("#incident-list tbody tr").count() >= 1
    assert page.locator("#weekly .week-card").count() == 4
    assert page_width(page) == width
    assert page.evaluate("window.__cspViolations") == []
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)

    # The 30-day preset keeps the page whole.
    page.click("#dashboard-presets a:has-text('Last 30 days')")
    page.wait_for_selector("#queue-table")
    assert "days=30" in page.url
    assert page_width(page) == width
    assert page.evaluate("window.__cspViolations") == []
