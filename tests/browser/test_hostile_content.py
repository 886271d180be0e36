"""The review page in Chromium with what an integration may send: 20,000-character
unbroken values in the output, a document title, a parameter's key and value and a
signal; a right-to-left override; HTML and script. At 1440 and 390 pixels wide the
page stays as wide as the window, nothing runs, the override is shown, and the
decision buttons are on screen. Names (keys, types, titles, roles, tool names) show
their hidden characters and stay isolated; thousands of zero-width characters make a
few marks. Then the decision form: reason codes that do not apply cannot be ticked or
sent, each error is shown once, the choices survive an error. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import pytest

from reviews import services
from reviews.models import ItemStatus, ReviewItem
from tests.browser.conftest import ARTIFACTS, PASSWORD, log_in
from tests.conftest import make_reviewer
from tests.factories import GateConditionFactory, GateRuleFactory, ReasonCodeFactory, action_submission

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


def test_a_long_output_loads_into_the_editor_and_the_edit_is_saved(browser, live_server, integration, desk):
    long_text = "sentence " * 8_000
    item = submit(integration, output={"text": long_text})
    page, _ = open_review(browser, live_server, item, WIDTHS["desktop"])
    page.keyboard.press("e")
    page.wait_for_function("() => !document.querySelector('#edit-text').disabled")
    assert page.input_value("#edit-text") == long_text
    page.wait_for_function("() => document.activeElement.id === 'edit-text'", timeout=2000)  # ready to type
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


RLO = "\u202e"


def test_names_show_their_bidi_controls_and_cannot_reorder_what_is_around_them(
    browser, live_server, integration, desk, queue
):
    rule = GateRuleFactory(name="Executables", queue=queue, risk_level="high")
    GateConditionFactory(rule=rule, field="action.type", op="contains", value="exe")
    item = submit(
        integration,
        external_id=f"order{RLO}1182",
        input={"prompt": "Send the report", "messages": [{"role": f"assistant{RLO}", "content": "Done"}]},
        action={
            "type": f"system.{RLO}gnp.exe",
            "params": {f"{RLO}key.exe": "v", "amount": 3, "currency": "EUR"},
        },
        context={
            "retrieved_documents": [{"title": f"Report {RLO}fdp.exe", "text": "text"}],
            "tool_outputs": [{"tool": f"files.{RLO}gnp.exe", "output": "ok"}],
        },
    )
    page, dialogs = open_review(browser, live_server, item, WIDTHS["desktop"])
    for selector in (
        "#action-type",
        "#action table.kv",
        "#documents h3",
        "#prompt .role",
        "#tool-outputs h3",
    ):
        assert "⟨U+202E⟩" in page.inner_text(selector), selector
    assert "order⟨U+202E⟩1182" in page.inner_text("#item-external-id")
    # The fired condition reads left to right: the field, the model's value, then the rule's.
    condition = page.locator("#matched-rules .rule-fired li").first
    assert condition.inner_text().startswith('action.type = "system.⟨U+202E⟩gnp.exe" (contains "exe")')
    boxes = [condition.locator(part).bounding_box() for part in (".field-name", ".actual", ".expected")]
    assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]
    page.locator("#matched-rules").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "review-hostile-names.png"), full_page=True)
    assert dialogs == []
    page.close()


def test_thousands_of_zero_width_characters_make_a_few_marks_before_and_after_show_all(
    browser, live_server, integration, desk
):
    item = submit(integration, output={"text": "start" + "\u200b" * 20_000 + "end " + "a\u200b" * 5_000})
    page, _ = open_review(browser, live_server, item, WIDTHS["desktop"])
    assert page.locator("#output mark.hidden-character").count() == 1
    assert "start⟨U+200B⟩×2995" in page.inner_text("#output")  # the first 3,000 characters
    page.click("#output .show-all")
    page.wait_for_function("() => !document.querySelector('#output .value-more')")
    text = page.inner_text("#output")
    assert "start⟨U+200B⟩×20000end" in text
    assert "⟨4,951 more hidden characters from here on, not shown⟩" in text
    assert page.locator("#output mark.hidden-character").count() == 51
    page.locator("#output").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "review-zero-width.png"), full_page=False)
    page.close()


def test_a_high_risk_rule_is_marked_but_its_description_is_not_red(
    browser, live_server, integration, desk, queue
):
    GateRuleFactory(name="Big refunds", description="Refunds over 100 EUR.", queue=queue, risk_level="high")
    item = refund(integration)
    page, _ = open_review(browser, live_server, item, WIDTHS["desktop"])
    colours = page.evaluate(
        """() => {
             const style = (selector) => getComputedStyle(document.querySelector(selector));
             return {description: style('li.rule.risk-high .rule-description').color,
                     border: style('li.rule.risk-high').borderLeftColor,
                     risk: style('#item-risk').color};
           }"""
    )
    red = "rgb(186, 33, 33)"
    assert colours["border"] == red and colours["risk"] == red  # the item is high risk (the rule says so)
    assert colours["description"] != red
    page.close()


def test_a_click_on_a_decision_never_sends_codes_that_do_not_apply(browser, live_server, integration, desk):
    item = refund(integration)
    page, _ = open_review(browser, live_server, item, WIDTHS["desktop"])
    page.check("#reason-tone")  # edit only: no decision chosen yet, so it can be ticked
    page.check("#reason-factual_error")
    for index in range(3):
        page.check(f"#checklist-{index}")
    page.fill("#justification", "Charged twice.")
    page.click("#action-reject")
    note = page.locator("#codes-unticked")
    note.wait_for()
    assert "Unticked tone" in note.inner_text() and "reject" in note.inner_text()
    assert page.locator("#reason-tone").is_visible() and not page.is_checked("#reason-tone")
    assert page.locator("#reason-tone").is_disabled() and page.is_checked("#reason-factual_error")
    assert not ReviewItem.objects.get(pk=item.pk).decisions.exists()  # the click only chose
    page.screenshot(path=str(ARTIFACTS / "review-codes-unticked.png"), full_page=False)
    page.click("#action-reject")  # pressed again: sent, with the code that applies
    page.wait_for_url("**/workspace/")
    decision = ReviewItem.objects.get(pk=item.pk).decisions.get()
    assert (decision.action, decision.cited_codes) == ("reject", ["factual_error"])
    page.close()


def test_the_servers_answer_about_a_code_names_one_the_reviewer_can_see(
    browser, live_server, integration, desk
):
    item = refund(integration)
    page, _ = open_review(browser, live_server, item, WIDTHS["desktop"])
    # The page was made before someone changed the code: the script thinks it applies to reject.
    page.evaluate(
        "() => { document.querySelector('#reason-tone').parentNode.dataset.applies = 'edit reject'; }"
    )
    page.check("#reason-tone")
    page.fill("#justification", "Rude.")
    page.click("#action-reject")
    page.wait_for_selector(".errorlist")
    assert "Not a reason code for reject: tone." in page.inner_text("#reason-codes")
    assert page.locator("#reason-tone").is_visible()  # the code the error names is on the page
    assert "Unticked tone" in page.inner_text("#codes-unticked")
    page.close()
