"""The audit log in Chromium, as a compliance officer reads it at 1440×900: the filters,
events by people, an integration and tasks, a long value behind its expand and a
right-to-left override shown as a mark. The page stays as wide as the window and
breaks no rule of the Content-Security-Policy. Screenshot: test-artifacts/audit-log-desktop.png."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from reviews.history import acting_as_system
from tests.browser.conftest import ARTIFACTS, PASSWORD, log_in
from tests.browser.test_csp import RECORD_VIOLATIONS
from tests.factories import GateConditionFactory
from tests.reviews.test_audit_log import tell_story

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def history(integration, queue, reviewer):
    cache.clear()  # rate-limit counters of the API calls the story makes
    story = tell_story(integration, queue, reviewer)
    with acting_as_system("import_policy", reason="policy file v7 imported"):
        rule = queue.gate_rules.get()
        GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.75)
        rule.description = (
            "Everything the support bot says is read by a person first, until the new model has "
            "shipped for two weeks without an incident. " * 6
        )
        rule.save()
    with acting_as_system("sla-sweep", reason="at risk: half the SLA has passed"):
        story["other"].name = "Other queue \u202eevil\u202c"
        story["other"].save()
    return story


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_the_audit_log_reads_well_at_desktop_width(browser, live_server, compliance, history):
    compliance.set_password(PASSWORD)
    compliance.save()
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(page, live_server, "compliance", next_url="/admin/")
    page.click("#audit-log-link")
    page.wait_for_selector("#audit-events")

    assert page.locator("#audit-events tbody tr").count() > 10
    text = page.inner_text("#audit-events")
    assert "support-bot" in text and "reviewer" in text and "system:import_policy" in text
    assert "policy file v7 imported" in text
    assert "⟨U+202E⟩" in text  # the override is shown, not obeyed
    assert page.locator("details.long-value").count() >= 1
    assert page_width(page) == 1440
    assert page.evaluate("window.__cspViolations") == []
    page.screenshot(path=str(ARTIFACTS / "audit-log-desktop.png"), full_page=False)

    # A long value expands in place, and the page still fits the window.
    page.locator("details.long-value summary").first.click()
    assert page_width(page) == 1440

    # Filtering by a system actor keeps only its rows; the download keeps the filter.
    page.fill("#id_actor", "system:sla-sweep")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_selector("#audit-events")
    assert page.locator("#audit-events tbody tr").count() == 1
    csv_link = page.locator("#audit-downloads a", has_text="CSV").get_attribute("href")
    assert csv_link == "/api/v1/audit/events/?actor=system%3Asla-sweep&format=csv"
