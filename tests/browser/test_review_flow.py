"""A reviewer's day in a real browser: Debian's Chromium driven by Playwright
against a live server. Screenshots of the overview and the review page are saved
to test-artifacts/ for people to look at. Then claims: the one taken for the reviewer
after a decision goes back when they leave the page (not when they reload it), one
taken on purpose stays, and the overview never offers one that is going."""

from __future__ import annotations

import time

import pytest

from reviews import services
from reviews.models import ItemStatus, ReviewItem
from tests.browser.conftest import ARTIFACTS, PASSWORD, log_in
from tests.conftest import make_reviewer
from tests.factories import GateConditionFactory, GateRuleFactory, ReasonCodeFactory, UserFactory, submission
from tests.processes import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def workload(integration, queue):
    queue.checklist = ["The answer matches the source document"]
    queue.save()
    rule = GateRuleFactory(
        name="Low confidence",
        description="Model self-reported uncertainty.",
        queue=queue,
        risk_level="medium",
    )
    GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.7)
    ReasonCodeFactory(code="factual_error", label="Factually wrong", applies_to=["reject", "edit"])
    context = {
        "retrieved_documents": [{"title": "Opening hours", "text": "We are open 8:00 to 18:00 on weekdays."}],
        "reasoning": "The FAQ page lists the hours.",
        "tool_outputs": [{"tool": "faq.search", "output": {"hits": 1}}],
    }
    items = []
    for index in range(2):
        payload = submission(
            external_id=f"ticket-{index}",
            input={"prompt": f"When are you open? (ticket {index})"},
            signals={"confidence": 0.5},
            context=context,
        )
        items.append(services.submit_item(integration=integration, payload=payload).item)
    return items


def test_a_reviewer_claims_edits_and_lands_on_the_next_item(browser, live_server, queue, workload):
    reviewer = make_reviewer("reviewer", queue)
    reviewer.set_password(PASSWORD)
    reviewer.save()
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    log_in(page, live_server, "reviewer")
    row = page.locator("#queue-general")
    assert "2" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

    row.locator("button.review-next").click()
    page.wait_for_selector("#decision-form")
    first = ReviewItem.objects.get(status=ItemStatus.IN_REVIEW)
    assert first.claimed_by == reviewer
    assert "When are you open?" in page.inner_text("#prompt")
    assert "We are open 8:00 to 18:00" in page.inner_text("#documents")
    assert "Low confidence" in page.inner_text("#matched-rules")
    assert "Model self-reported uncertainty." in page.inner_text("#matched-rules")
    assert page.locator("#claim-countdown").inner_text().strip()
    page.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)

    # Approving without a justification is refused, and nothing is recorded.
    page.check("#checklist-0")
    page.click("#action-approve")
    page.wait_for_selector(".errorlist")
    assert "justification" in page.inner_text("#decision-form").lower()
    assert not first.decisions.exists()

    # Edit the output and see the diff before saving.
    page.locator("#edit-area summary").click()
    page.fill("#edit-text", "We are open 8:00 to 18:00 on weekdays.")
    page.wait_for_function("() => document.querySelector('#edit-diff').innerText.includes('8:00')")
    assert "8:00" in page.inner_text("#edit-diff")
    page.screenshot(path=str(ARTIFACTS / "review-page-edit-diff.png"), full_page=True)
    if not page.is_checked("#checklist-0"):
        page.check("#checklist-0")
    page.check("#reason-factual_error")
    page.fill("#justification", "The hours changed; the document says 8 to 18.")
    page.click("#action-edit")

    # Landed on the next item, claimed for this reviewer.
    page.wait_for_selector("#decision-form")
    first.refresh_from_db()
    assert first.status == ItemStatus.EDITED
    assert first.final_output["text"] == "We are open 8:00 to 18:00 on weekdays."
    second = ReviewItem.objects.get(status=ItemStatus.IN_REVIEW)
    assert second.pk != first.pk and second.claimed_by == reviewer
    assert str(second.pk) in page.url


def test_compliance_sees_the_item_read_only(browser, live_server, queue, workload):
    from django.contrib.auth.models import Group

    compliance = UserFactory(username="auditor", is_staff=True, password=PASSWORD)
    compliance.groups.add(Group.objects.get(name="Compliance"))
    item = workload[0]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/reviews/reviewitem/{item.pk}/review/")
    page.fill("#id_username", "auditor")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#prompt")
    assert "When are you open?" in page.inner_text("#prompt")
    assert page.locator("#decision-form").count() == 0
    assert page.locator("#action-approve").count() == 0
    assert page.locator("#claim-button").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-page-compliance.png"), full_page=True)


# --- Claims ---------------------------------------------------------------------------------------

OVERVIEW = "/admin/reviews/reviewitem/workspace/"


@pytest.fixture
def desk(integration, queue):
    """A reviewer signed in with three items in their queue (no checklist)."""
    GateRuleFactory(name="Review everything", queue=queue)
    reviewer = make_reviewer("reviewer", queue)
    reviewer.set_password(PASSWORD)
    reviewer.save()
    ARTIFACTS.mkdir(exist_ok=True)
    for index in range(3):
        services.submit_item(integration=integration, payload=submission(external_id=f"ticket-{index}"))
    return reviewer


def claimed(reviewer) -> list[str]:
    return sorted(
        ReviewItem.objects.filter(status=ItemStatus.IN_REVIEW, claimed_by=reviewer).values_list(
            "external_id", flat=True
        )
    )


def land_on_an_auto_claim(page, live_server, reviewer) -> str:
    """Review next, approve: the page of the next item, claimed for the reviewer. Its external id."""
    log_in(page, live_server, "reviewer")
    page.click("#queue-general button.review-next")
    page.wait_for_selector("#decision-form")
    first = claimed(reviewer)
    page.fill("#justification", "Fine.")
    page.click("#action-approve")
    page.wait_for_selector("#auto-claim-note")
    following = claimed(reviewer)
    assert len(following) == 1 and following != first
    return following[0]


def test_an_auto_advance_claim_survives_a_reload_and_goes_back_when_the_reviewer_leaves(
    browser, live_server, desk
):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    following = land_on_an_auto_claim(page, live_server, desk)
    page.screenshot(path=str(ARTIFACTS / "review-auto-claim.png"), full_page=False)

    page.reload()  # F5: the old page says it is leaving after the new one was made
    page.wait_for_selector("#auto-claim-note")
    time.sleep(1)  # time for that beacon to arrive
    assert claimed(desk) == [following]
    assert "(you)" in page.inner_text("#item-claim")

    page.click(".breadcrumbs >> text=Review workspace")
    page.wait_for_url(f"**{OVERVIEW}")
    assert claimed(desk) == []  # given back before the overview was made
    assert "Continue:" not in page.inner_text("#content-main")
    page.close()


def test_an_auto_advance_claim_goes_back_when_the_reviewer_goes_elsewhere(browser, live_server, desk):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    land_on_an_auto_claim(page, live_server, desk)
    page.goto(f"{live_server.url}/admin/")  # a typed address: the beacon gives it back
    wait_until(lambda: claimed(desk) == [], 10, what="the claim released")
    page.close()


def test_logging_out_gives_an_auto_advance_claim_back(browser, live_server, desk):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    land_on_an_auto_claim(page, live_server, desk)
    page.click("#logout-form button")
    page.wait_for_url("**/logout/")
    assert claimed(desk) == []
    page.close()


def test_a_claim_taken_on_purpose_stays_when_the_reviewer_looks_elsewhere(browser, live_server, desk):
    item = ReviewItem.objects.get(external_id="ticket-0")
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    log_in(page, live_server, "reviewer", f"/admin/reviews/reviewitem/{item.pk}/review/")
    page.click("#claim-button")
    page.wait_for_selector("#release-button")
    page.reload()
    page.click(".claim-controls .safety-policy-link")
    page.wait_for_url("**/safety-policy/**")
    time.sleep(1)  # a beacon, if one were sent, would have arrived
    assert claimed(desk) == ["ticket-0"]
    page.goto(f"{live_server.url}{OVERVIEW}")
    assert "Continue: ticket-0" in page.inner_text("#continue-claims")
    page.close()


def test_stop_reviewing_gives_the_claim_back(browser, live_server, desk):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    land_on_an_auto_claim(page, live_server, desk)
    page.click("#release-button")  # "Stop reviewing"
    page.wait_for_url(f"**{OVERVIEW}")
    assert claimed(desk) == []
    assert "Continue:" not in page.inner_text("#content-main")
    page.close()
