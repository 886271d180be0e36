"""The item timeline in Chromium, as a compliance officer reads it: an escalated four-eyes
refund (held in a four-eyes queue, escalated, approved there by two reviewers, executed
after one failed attempt, reported back) at 1440 and 390 pixels wide, and a timeline
holding 20,000-character unbroken values and a right-to-left override. The page stays
as wide as the window, with the long values shown whole. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from reviews import services
from tests.browser.conftest import ARTIFACTS, PASSWORD, log_in
from tests.reviews.test_timeline import acting, escalated_four_eyes_refund, make_refund_desk, submit_refund

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}
LONG = "W" * 20_000


@pytest.fixture
def refund_desk(queue, reviewer, other_reviewer):
    return make_refund_desk(queue, other_reviewer)


@pytest.fixture
def officer(compliance):
    compliance.set_password(PASSWORD)
    compliance.save()
    ARTIFACTS.mkdir(exist_ok=True)
    return compliance


def open_timeline(browser, live_server, item, size):
    width, height = size
    page = browser.new_page(viewport={"width": width, "height": height})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    url = f"/admin/reviews/reviewitem/{item.pk}/timeline/"
    log_in(page, live_server, "compliance", next_url=url)
    page.wait_for_selector("#timeline")
    return page, dialogs


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def too_wide(page) -> list[str]:
    """The elements that reach past the window's right edge, for the failure message."""
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8)
             .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""
    )


@pytest.mark.parametrize("form_factor", WIDTHS)
def test_the_timeline_of_an_escalated_four_eyes_refund_reads_in_order(
    browser, live_server, integration, receiver, refund_desk, reviewer, other_reviewer, officer, form_factor
):
    item = escalated_four_eyes_refund(integration, receiver, refund_desk, reviewer, other_reviewer)
    page, dialogs = open_timeline(browser, live_server, item, WIDTHS[form_factor])
    width = WIDTHS[form_factor][0]
    assert page_width(page) == width, too_wide(page)
    text = page.inner_text("#timeline")
    story = [
        "Submitted by Support bot",
        "Gate: held for review in General review",
        "Claim released by reviewer",
        "Escalated to Refund experts",
        "Decision: approve, first of two approvals",
        "Decision: approve (final)",
        "Action request, attempt 1: HTTP 500",
        "Action request, attempt 2: HTTP 200",
        "Executed: the receiver acknowledged the action",
    ]
    positions = [text.index(line) for line in story]
    assert positions == sorted(positions)
    assert "Callback request, attempt 1: HTTP 200" in text and "Callback delivered" in text
    assert "Deleted user" not in text
    assert page.locator(".tl-event").count() >= 20
    page.screenshot(path=str(ARTIFACTS / f"timeline-refund-{form_factor}.png"), full_page=True)
    assert dialogs == []
    page.close()


def test_long_and_direction_changing_values_stay_inside_the_window(
    browser, live_server, integration, refund_desk, reviewer, officer
):
    item = submit_refund(integration, external_id=f"\u202egnp.exe-{'X' * 200}")
    with acting(reviewer):
        services.decide(
            item=item,
            user=reviewer,
            action="escalate",
            justification=f"<img src=x onerror=alert(1)> {LONG}",
            reason_codes=["needs_expert"],
        )
    with acting(integration=integration):
        services.report_incident(
            item=item, severity="high", description=f"\u202e{LONG}", integration=integration
        )
    for form_factor, size in WIDTHS.items():
        page, dialogs = open_timeline(browser, live_server, item, size)
        assert page_width(page) == size[0], too_wide(page)
        assert page.locator("#hidden-characters").is_visible()
        assert "⟨U+202E⟩gnp.exe" in page.inner_text("#content")
        for summary in page.locator("details.tl-more > summary").all():
            summary.click()  # "Show all": the whole value, wrapped
        text = page.inner_text("#timeline")
        assert LONG in text
        assert page_width(page) == size[0], too_wide(page)
        assert page.locator("#timeline img").count() == 0 and dialogs == []
        page.screenshot(path=str(ARTIFACTS / f"timeline-hostile-{form_factor}.png"), full_page=False)
        page.close()
