"""A reviewer's day in a real browser: Debian's Chromium driven by Playwright
against a live server. Screenshots of the overview and the review page are saved
to test-artifacts/ for people to look at."""

from __future__ import annotations

import pytest

from reviews import services
from reviews.models import ItemStatus, ReviewItem
from tests.browser.conftest import ARTIFACTS, PASSWORD, log_in
from tests.conftest import make_reviewer
from tests.factories import GateConditionFactory, GateRuleFactory, ReasonCodeFactory, UserFactory, submission

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
