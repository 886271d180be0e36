"""The review page in Chromium with what an integration may send: 20,000-character
unbroken values in the output, a document title, a parameter's key and value and a
signal; a right-to-left override; HTML and script. At 1440 and 390 pixels wide the
page stays as wide as the window, nothing runs, the override is shown, and the
decision buttons are on screen. Then the decision form: reason codes that do not apply
cannot be ticked, each error is shown once, the choices survive an error, and leaving
gives the claim back. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from reviews import services
from reviews.models import ItemStatus, ReviewItem
from tests.browser.conftest import ARTIFACTS, PASSWORD, log_in
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, ReasonCodeFactory, action_submission
from tests.processes import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LONG = "W" * 20_000
MARKUP = "<img src=x onerror=alert(1)><script>alert(2)</script>"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture
def desk(queue):
    """A reviewer of a queue with a three-item checklist, and its reason codes."""
    queue.checklist = [
        "The amount matches the order",
        "The customer asked for it",
        "No refund was made before",
    ]
    queue.save()
    GateRuleFactory(name="Review everything", queue=queue, risk_level="high")
    ReasonCodeFactory(code="factual_error", label="Factually wrong", applies_to=["reject", "edit"])
    ReasonCodeFactory(code="tone", label="Tone", applies_to=["edit"])
    reviewer = make_reviewer("reviewer", queue)
    reviewer.set_password(PASSWORD)
    reviewer.save()
    ARTIFACTS.mkdir(exist_ok=True)
    return reviewer


def submit(integration, **overrides) -> ReviewItem:
    return services.submit_item(integration=integration, payload=action_submission(**overrides)).item


def hostile(integration) -> ReviewItem:
    return submit(
        integration,
        output={"text": f"RTL override: \u202egnp.exe {MARKUP} {LONG}"},
        action={
            "type": "payment.refund",
            "params": {"amount": 12.99, "currency": "USD", "note": LONG, LONG: "k"},
        },
        context={"retrieved_documents": [{"title": "T" * 20_000, "text": "<b>bold?</b>"}]},
        signals={"confidence": 0.5, "trace": LONG},
    )


def refund(integration) -> ReviewItem:
    return submit(
        integration,
        external_id="refund-1182",
        output={"text": "I will refund 12.99 USD for the duplicate charge."},
        action={
            "type": "payment.refund",
            "params": {"amount": 12.99, "currency": "USD", "charge_id": "ch_3PqR", "reason": "duplicate"},
        },
    )


def open_review(browser, live_server, item, size):
    width, height = size
    page = browser.new_page(viewport={"width": width, "height": height})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/admin/reviews/reviewitem/{item.pk}/review/")
    page.wait_for_selector("#decision-form")
    return page, dialogs


def in_view(page, selector: str) -> bool:
    return page.evaluate(
        """(selector) => { const box = document.querySelector(selector).getBoundingClientRect();
           return box.top >= 0 && box.bottom <= window.innerHeight && box.width > 0; }""",
        selector,
    )


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


@pytest.mark.parametrize("form_factor", WIDTHS)
def test_a_hostile_item_stays_inside_the_window_and_shows_what_was_written(
    browser, live_server, integration, desk, form_factor
):
    item = hostile(integration)
    services.claim(item=item, user=desk)
    page, dialogs = open_review(browser, live_server, item, WIDTHS[form_factor])
    width = WIDTHS[form_factor][0]
    assert page_width(page) <= width
    assert "⟨U+202E⟩gnp.exe" in page.inner_text("#output")
    assert page.locator("#hidden-characters").is_visible()
    assert page.locator("#output script, #output img, #documents b").count() == 0
    page.screenshot(path=str(ARTIFACTS / f"review-hostile-{form_factor}.png"), full_page=False)
    if form_factor == "phone":
        page.click(".jump-to-decision")
    assert in_view(page, "#action-approve") and in_view(page, "#action-reject")

    page.click("#output .show-all")  # the whole output, loaded as text
    page.wait_for_function("() => !document.querySelector('#output .value-more')")
    assert LONG in page.inner_text("#output") and "⟨U+202E⟩" in page.inner_text("#output")
    assert page_width(page) <= width
    assert dialogs == []
    page.close()


@pytest.mark.parametrize("form_factor", WIDTHS)
def test_a_refund_says_what_approving_will_run(browser, live_server, integration, desk, form_factor):
    item = refund(integration)
    services.claim(item=item, user=desk)
    page, _ = open_review(browser, live_server, item, WIDTHS[form_factor])
    summary = page.inner_text("#if-you-approve")
    assert "payment.refund" in summary and "12.99 USD" in summary and "ch_3PqR" in summary
    assert page_width(page) <= WIDTHS[form_factor][0]
    if form_factor == "desktop":
        assert in_view(page, "#action-approve")  # with a three-item checklist, at 1440x900
    page.screenshot(path=str(ARTIFACTS / f"review-refund-{form_factor}.png"), full_page=True)
    page.close()


def test_the_overview_fits_a_phone(browser, live_server, integration, desk):
    refund(integration)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    log_in(page, live_server, "reviewer")
    assert page_width(page) <= 390
    assert in_view(page, "#queue-general button.review-next")
    page.screenshot(path=str(ARTIFACTS / "overview-phone.png"), full_page=True)
    page.close()


def test_reason_codes_that_do_not_apply_cannot_be_ticked(browser, live_server, integration, desk):
    item = refund(integration)
    page, _ = open_review(browser, live_server, item, WIDTHS["desktop"])
    page.keyboard.press("r")
    assert page.locator("#reason-tone").is_hidden() and page.locator("#reason-tone").is_disabled()
    assert page.locator("#reason-factual_error").is_visible()
    page.keyboard.press("e")
    assert page.locator("#reason-tone").is_visible() and page.locator("#reason-tone").is_enabled()
    page.close()


def test_after_an_error_the_choices_stay_and_each_error_shows_once(browser, live_server, integration, desk):
    item = refund(integration)
    page, _ = open_review(browser, live_server, item, WIDTHS["desktop"])
    page.keyboard.press("r")
    page.keyboard.press("Shift+Digit1")  # the first reason code that applies to reject
    assert page.is_checked("#reason-factual_error")
    page.keyboard.press("Digit2")  # the second checklist item
    assert page.is_checked("#checklist-1")
    page.click("#action-reject")  # no justification
    page.wait_for_selector(".errorlist")
    assert page.locator("text=This field is required.").count() == 1
    assert page.evaluate("() => document.activeElement.id") == "justification"
    assert "chosen" in page.get_attribute("#action-reject", "class")
    assert page.is_checked("#reason-factual_error") and page.is_checked("#checklist-1")
    page.fill("#justification", "The charge was refunded yesterday already.")
    page.keyboard.press("Control+Enter")  # sends the kept choice: reject
    page.wait_for_url("**/workspace/")
    assert ReviewItem.objects.get(pk=item.pk).status == ItemStatus.REJECTED
    page.close()


def test_stop_reviewing_and_leaving_the_page_give_the_claim_back(browser, live_server, integration, desk):
    first, second = refund(integration), refund(integration)
    page, _ = open_review(browser, live_server, first, WIDTHS["desktop"])
    page.click("#claim-button")
    page.wait_for_selector("#release-button")
    assert ReviewItem.objects.get(pk=first.pk).claimed_by == desk
    page.click("#release-button")  # "Stop reviewing"
    page.wait_for_url("**/workspace/")
    assert ReviewItem.objects.get(pk=first.pk).status == ItemStatus.PENDING
    assert "Continue:" not in page.inner_text("#content-main")

    services.claim(item=second, user=desk)
    page.goto(f"{live_server.url}/admin/reviews/reviewitem/{second.pk}/review/")
    page.wait_for_selector("#release-button")
    page.goto(f"{live_server.url}/admin/")  # away, without deciding
    wait_until(lambda: ReviewItem.objects.get(pk=second.pk).claimed_by is None, 10, what="the claim released")
    page.close()


def test_a_long_output_loads_into_the_editor_and_the_edit_is_saved(browser, live_server, integration, desk):
    long_text = "sentence " * 8_000
    item = submit(integration, output={"text": long_text})
    page, _ = open_review(browser, live_server, item, WIDTHS["desktop"])
    page.keyboard.press("e")
    page.wait_for_function("() => !document.querySelector('#edit-text').disabled")
    assert page.input_value("#edit-text") == long_text
    page.fill("#edit-text", "sentence")
    page.wait_for_selector("#edit-diff del")
    page.check("#reason-factual_error")
    for index in range(3):
        page.check(f"#checklist-{index}")
    page.fill("#justification", "Cut to the point.")
    page.click("#action-edit")
    page.wait_for_url("**/workspace/")
    decision = ReviewItem.objects.get(pk=item.pk).decisions.get()
    assert decision.edited_output == {"text": "sentence"}
    page.close()
