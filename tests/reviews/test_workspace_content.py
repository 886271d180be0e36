"""The review page with what an integration may send: long values are cut with the rest
one click away, hidden characters are shown, markup stays text, and the decision form
keeps the reviewer's choices after an error and shows each error once."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

import pytest
from django.urls import reverse

from reviews import services
from reviews.admin.presentation import MAX_MARKS, PREVIEW_CHARS, marked
from reviews.models import ItemStatus, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import (
    GateConditionFactory,
    GateRuleFactory,
    QueueFactory,
    ReasonCodeFactory,
    action_submission,
    submission,
)

LONG = "A" * 20_000  # one unbroken word
RLO = "\u202e"


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(name="Review everything", queue=queue)


@pytest.fixture
def codes(db):
    ReasonCodeFactory(code="factual_error", label="Factually wrong", applies_to=["reject", "edit"])
    ReasonCodeFactory(code="tone", label="Tone", applies_to=["edit"])


@pytest.fixture
def four_eyes(queue):
    queue.required_approvals = 2
    queue.save()
    return queue


def review_url(item) -> str:
    return reverse("admin:reviews_review", args=[item.pk])


def raw_url(item, path=None) -> str:
    url = reverse("admin:reviews_raw", args=[item.pk])
    return url if path is None else f"{url}?path={quote(json.dumps(path))}"


def without_edit_fields(page: str) -> str:
    """The page as shown: the edit fields (collapsed, holding the original to edit) left out."""
    return re.sub(r"<textarea.*?</textarea>", "", page, flags=re.S)


def shown_text(page: str) -> str:
    """The page's text, tags left out and spaces collapsed, as a reader sees it."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", without_edit_fields(page))).split())


def section(page: str, element_id: str) -> str:
    """The HTML from the element with that id to the end of its section (or article)."""
    start = page.index(f'id="{element_id}"')
    return page[start : page.index("</section>", start)]


MARK = '<mark class="hidden-character"'


def hostile(integration) -> ReviewItem:
    payload = action_submission(
        output={"text": f"RTL override: {RLO}gnp.exe <script>alert(1)</script> {LONG}"},
        action={"type": "payment.refund", "params": {"amount": 12.99, "note": LONG, LONG: "key too long"}},
        context={"retrieved_documents": [{"title": "T" * 3000, "text": LONG}]},
        signals={"confidence": 0.5, "trace": LONG},
    )
    return services.submit_item(integration=integration, payload=payload).item


def test_long_values_are_cut_on_the_page_and_whole_in_the_raw_view(client, integration, review_all, reviewer):
    item = hostile(integration)
    client.force_login(reviewer)
    page = without_edit_fields(client.get(review_url(item)).content.decode())
    assert LONG not in page  # no value is shown whole
    assert f"Showing {PREVIEW_CHARS} of {len(LONG)} characters." in page
    assert page.count('class="show-all" data-show-all') >= 3
    whole = client.get(raw_url(item, ["action", "params", "note"]))
    assert whole.status_code == 200 and whole["Content-Type"].startswith("text/plain")
    assert whole.content.decode() == LONG
    download = client.get(raw_url(item))
    assert download["Content-Disposition"].startswith("attachment")
    assert json.loads(download.content)["context"]["retrieved_documents"][0]["title"] == "T" * 3000


def test_a_bidi_override_is_shown_not_obeyed_and_markup_stays_text(client, integration, review_all, reviewer):
    item = hostile(integration)
    client.force_login(reviewer)
    page = without_edit_fields(client.get(review_url(item)).content.decode())
    assert RLO not in page
    assert "⟨U+202E⟩</mark>gnp.exe" in page
    assert 'id="hidden-characters"' in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_ordinary_item_has_no_hidden_character_notice(client, integration, review_all, reviewer):
    item = services.submit_item(integration=integration, payload=submission()).item
    client.force_login(reviewer)
    assert 'id="hidden-characters"' not in client.get(review_url(item)).content.decode()


@pytest.mark.parametrize("path", ['["nope"]', '{"a": 1}', "not json", '["output", 0]', '["input", "x"]'])
def test_the_raw_view_refuses_paths_that_lead_nowhere(client, integration, review_all, reviewer, path):
    item = hostile(integration)
    client.force_login(reviewer)
    assert client.get(f"{raw_url(item)}?path={quote(path)}").status_code == 404


def test_the_raw_view_follows_the_visibility_rule(client, integration, review_all, outsider, compliance):
    item = hostile(integration)
    outsider.is_staff = True
    outsider.save()
    client.force_login(outsider)
    assert client.get(raw_url(item)).status_code == 404
    client.force_login(compliance)
    assert client.get(raw_url(item)).status_code == 200


def test_a_page_of_a_one_mebibyte_item_stays_small(client, integration, review_all, reviewer):
    payload = submission(output={"text": "word " * 200_000}, input={"prompt": "y" * 100_000})
    item = services.submit_item(integration=integration, payload=payload).item
    client.force_login(reviewer)
    page = client.get(review_url(item)).content.decode()
    assert len(without_edit_fields(page)) < 100_000  # what is shown is cut


# --- The decision form after an error --------------------------------------------------------------


def test_a_code_that_does_not_apply_gives_one_error_next_to_the_codes(
    client, integration, review_all, reviewer, codes
):
    item = services.submit_item(integration=integration, payload=submission()).item
    client.force_login(reviewer)
    response = client.post(
        review_url(item), {"action": "reject", "justification": "Rude.", "reason_codes": ["tone"]}
    )
    page = response.content.decode()
    assert page.count("Not a reason code for reject: tone.") == 1
    assert response.context["form"].errors == {"reason_codes": ["Not a reason code for reject: tone."]}


def test_after_an_error_the_choices_are_kept_and_the_first_field_in_error_is_marked(
    client, integration, review_all, queue, reviewer, codes
):
    queue.checklist = ["Matches the source", "Polite"]
    queue.save()
    item = services.submit_item(integration=integration, payload=submission()).item
    client.force_login(reviewer)
    response = client.post(
        review_url(item),
        {"action": "reject", "justification": "", "reason_codes": ["factual_error"], "checklist": ["1"]},
    )
    page = response.content.decode()
    assert 'data-action="reject"' in page and 'data-first-error="justification"' in page
    assert re.search(r'id="action-reject" class="button danger chosen"', page)
    assert re.search(r'value="factual_error" id="reason-factual_error" checked', page)
    assert re.search(r'value="1" id="checklist-1" checked', page)
    assert not re.search(r'value="0" id="checklist-0" checked', page)


def test_stop_reviewing_gives_the_claim_back_and_returns_to_the_overview(
    client, integration, review_all, queue, reviewer
):
    item = services.submit_item(integration=integration, payload=submission()).item
    services.claim(item=item, user=reviewer)
    client.force_login(reviewer)
    assert "Stop reviewing" in client.get(review_url(item)).content.decode()
    response = client.post(reverse("admin:reviews_release", args=[item.pk]))
    assert response["Location"] == reverse("admin:reviews_workspace")
    item.refresh_from_db()
    assert item.status == "pending" and item.claimed_by is None
    overview = client.get(reverse("admin:reviews_workspace")).content.decode()
    assert "Continue:" not in overview


def leave_hook(page: str) -> tuple[str, str] | None:
    """The page's release-on-leave URL and token, or None."""
    found = re.search(r'data-leave-url="([^"]+)" data-leave-token="([^"]+)"', page)
    return found.groups() if found else None


@pytest.fixture
def advanced(client, integration, review_all, reviewer):
    """A decision on one item landed the reviewer on the next, claimed for them."""
    first, following = (
        services.submit_item(integration=integration, payload=submission(external_id=name)).item
        for name in ("first", "second")
    )
    client.force_login(reviewer)
    response = client.post(review_url(first), {"action": "approve", "justification": "Fine."})
    assert response["Location"] == review_url(following)
    return following


def claim_of(item) -> tuple[str, object]:
    item.refresh_from_db()
    return item.status, item.claimed_by


def test_a_claim_taken_on_purpose_is_not_released_by_leaving(client, integration, review_all, reviewer):
    item = services.submit_item(integration=integration, payload=submission()).item
    client.force_login(reviewer)
    client.post(reverse("admin:reviews_claim", args=[item.pk]))
    page = client.get(review_url(item)).content.decode()
    assert 'id="release-button"' in page  # "Stop reviewing" still gives it back
    assert leave_hook(page) is None and "data-release-url" not in page
    next_page = client.post(reverse("admin:reviews_review_next", args=["general"]), follow=True)
    assert leave_hook(next_page.content.decode()) is None  # "Review next" is on purpose too


def test_leaving_the_page_of_an_auto_advance_claim_gives_it_back(client, advanced, reviewer):
    page = client.get(review_url(advanced)).content.decode()
    assert 'id="auto-claim-note"' in page
    leave_url, token = leave_hook(page)
    assert leave_url == reverse("admin:reviews_leave", args=[advanced.pk])
    assert client.post(leave_url, {"token": "not-this-page"}).status_code == 204
    assert claim_of(advanced) == (ItemStatus.IN_REVIEW, reviewer)
    assert client.post(leave_url, {"token": token}).status_code == 204
    assert claim_of(advanced) == (ItemStatus.PENDING, None)


def test_a_reload_keeps_the_auto_advance_claim(client, advanced, reviewer):
    # The old page says it is leaving (pagehide) after the reloaded one has been made.
    _, old_token = leave_hook(client.get(review_url(advanced)).content.decode())
    leave_url, new_token = leave_hook(client.get(review_url(advanced)).content.decode())
    assert new_token != old_token
    client.post(leave_url, {"token": old_token})
    assert claim_of(advanced) == (ItemStatus.IN_REVIEW, reviewer)
    assert leave_hook(client.get(review_url(advanced)).content.decode())  # still marked to give back


def test_the_overview_never_offers_to_continue_an_auto_advance_claim(client, advanced):
    # Its release may still be on the way (a beacon from a closed tab) as the overview is made.
    overview = client.get(reverse("admin:reviews_workspace")).content.decode()
    assert "Continue:" not in overview


def test_keep_it_claimed_makes_an_auto_advance_claim_one_on_purpose(client, advanced, reviewer):
    page = client.get(review_url(advanced)).content.decode()
    _, token = leave_hook(page)
    assert 'id="keep-claim-button"' in page
    client.post(reverse("admin:reviews_claim", args=[advanced.pk]))
    page = client.get(review_url(advanced)).content.decode()
    assert leave_hook(page) is None and 'id="keep-claim-button"' not in page
    client.post(reverse("admin:reviews_leave", args=[advanced.pk]), {"token": token})
    assert claim_of(advanced) == (ItemStatus.IN_REVIEW, reviewer)
    assert "Continue:" in client.get(reverse("admin:reviews_workspace")).content.decode()


def test_leaving_is_only_for_reviewers_of_the_item(client, advanced, queue):
    _, token = leave_hook(client.get(review_url(advanced)).content.decode())
    client.force_login(make_reviewer("second", queue))
    response = client.post(reverse("admin:reviews_leave", args=[advanced.pk]), {"token": token})
    assert response.status_code == 204
    assert claim_of(advanced)[0] == ItemStatus.IN_REVIEW  # another session's token releases nothing


def test_why_it_was_gated_shows_the_condition_that_fired_and_its_value(client, integration, queue, reviewer):
    from tests.factories import GateConditionFactory

    rule = GateRuleFactory(name="Weak answers", queue=queue, match="any")
    GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.5)
    GateConditionFactory(rule=rule, field="signals.rubric_score", op="lte", value=2)
    item = services.submit_item(
        integration=integration, payload=submission(signals={"confidence": 0.7, "rubric_score": 1})
    ).item
    client.force_login(reviewer)
    page = shown_text(client.get(review_url(item)).content.decode())
    assert "signals.rubric_score = 1 (≤ 2)" in page
    assert "signals.confidence = 0.7" not in page  # it did not fire


def test_an_old_snapshot_without_fired_conditions_still_shows(client, integration, review_all, reviewer):
    item = services.submit_item(integration=integration, payload=submission()).item
    ReviewItem.objects.filter(pk=item.pk).update(matched_rules=[{"id": 1, "name": "Old rule", "version": 3}])
    client.force_login(reviewer)
    page = client.get(review_url(item)).content.decode()
    assert "Old rule" in page and "version 3" in page


def test_if_you_approve_names_the_action_and_its_amount(client, integration, review_all, reviewer):
    payload = action_submission(
        action={"type": "payment.refund", "params": {"amount": 1250, "currency": "JPY", "order": "1182"}}
    )
    item = services.submit_item(integration=integration, payload=payload).item
    client.force_login(reviewer)
    page = client.get(review_url(item)).content.decode()
    assert 'id="if-you-approve"' in page and "payment.refund" in page
    assert "1,250 JPY" in page


def test_a_long_output_is_loaded_into_the_editor_not_sent_with_the_page(
    client, integration, review_all, reviewer, codes
):
    long_text = "paragraph " * 10_000  # 100,000 characters
    item = services.submit_item(integration=integration, payload=submission(output={"text": long_text})).item
    client.force_login(reviewer)
    page = client.get(review_url(item)).content.decode()
    assert long_text not in page
    assert 'id="edit-text" name="edited_output"' in page and "data-load=" in page
    # The editor was never opened, so the page sends no edited output: that is no edit.
    response = client.post(
        review_url(item), {"action": "edit", "justification": "Shorter.", "reason_codes": ["factual_error"]}
    )
    assert response.status_code == 200 and not item.decisions.exists()
    assert "An edit needs the edited output or action." in response.content.decode()
    # Opened and changed, it is an edit like any other.
    response = client.post(
        review_url(item),
        {
            "action": "edit",
            "justification": "Shorter.",
            "reason_codes": ["factual_error"],
            "edited_output": "paragraph",
        },
    )
    assert response.status_code == 302
    assert item.decisions.get().edited_output == {"text": "paragraph"}


# --- Hidden characters, many of them, and in names -------------------------------------------------


def test_a_run_of_one_hidden_character_is_one_mark():
    assert marked("a" + "\u200b" * 3000 + "b\u202ec") == [
        (False, "a"),
        (True, "⟨U+200B⟩×3000"),
        (False, "b"),
        (True, "⟨U+202E⟩"),
        (False, "c"),
    ]


def test_a_value_gets_a_limited_number_of_marks_and_the_rest_is_counted():
    pieces = marked("a\u200b" * 1000)
    marks = [part for is_mark, part in pieces if is_mark]
    assert len(marks) == MAX_MARKS + 1
    assert pieces[2 * MAX_MARKS :] == [
        (False, "a"),
        (True, f"⟨{1000 - MAX_MARKS:,} more hidden characters from here on, not shown⟩"),
        (False, "a" * (1000 - MAX_MARKS - 1)),
    ]
    assert "".join(part for is_mark, part in pieces if not is_mark) == "a" * 1000  # no text lost


def test_a_large_item_full_of_zero_width_characters_gives_a_small_page(
    client, integration, review_all, reviewer
):
    zero_width = "\u200b" * 3000
    payload = action_submission(
        input={"prompt": "a\u200b" * 40_000},
        output={"text": f"start{zero_width}end " * 20},
        action={"type": "payment.refund", "params": {f"k{i}": zero_width for i in range(60)}},
        context={"retrieved_documents": [{"title": "Doc", "text": zero_width} for _ in range(50)]},
        signals={f"s{i}": zero_width for i in range(60)},
    )
    item = services.submit_item(integration=integration, payload=payload).item
    client.force_login(reviewer)
    page = without_edit_fields(client.get(review_url(item)).content.decode())
    assert "⟨U+200B⟩×3000" in page
    assert page.count(MARK) < 2_000  # 343,000 before: each character its own mark
    assert len(page) < 1_000_000


def test_hidden_and_bidi_characters_in_names_are_marked_and_isolated(client, integration, queue, reviewer):
    rule = GateRuleFactory(name="Executables", queue=queue)
    GateConditionFactory(rule=rule, field="action.type", op="contains", value="exe")
    rlo = f"{RLO}gnp.exe"
    payload = action_submission(
        external_id=f"order{RLO}1182",
        input={"messages": [{"role": f"user{RLO}", "content": "Hi"}]},
        action={"type": f"system.{rlo}", "params": {f"{RLO}key.exe": "v"}},
        context={
            "retrieved_documents": [{"title": f"Title {rlo}", "text": "t"}],
            "tool_outputs": [{"tool": f"tool.{rlo}", "output": "o"}],
        },
    )
    item = services.submit_item(integration=integration, payload=payload).item
    client.force_login(reviewer)
    page = without_edit_fields(client.get(review_url(item)).content.decode())
    assert RLO not in page
    rlo_mark = MARK + ' title="Invisible characters the model wrote">⟨U+202E⟩</mark>'
    isolated = '<bdi class="label">{}' + rlo_mark + "{}</bdi>"
    for before, after in [
        ("system.", "gnp.exe"),  # the action's type, in the header and in "If you approve"
        ("", "key.exe"),  # a parameter's key
        ("Title ", "gnp.exe"),  # a document's title
        ("user", ""),  # a message's role
        ("tool.", "gnp.exe"),  # a tool's name
        ("order", "1182"),  # the external id
    ]:
        assert isolated.format(before, after) in page, (before, after)
    assert page.count(isolated.format("system.", "gnp.exe")) >= 2
    assert "Review order⟨U+202E⟩1182 |" in page  # the page title: marked as text
    # "Why it was gated": the value the model wrote is isolated from the operator and the rule's value.
    fired = section(page, "matched-rules")
    actual = f'<span class="actual"><bdi class="label">&quot;system.{rlo_mark}gnp.exe&quot;</bdi></span>'
    expected = '(contains <span class="expected"><bdi class="label">&quot;exe&quot;</bdi></span>)'
    assert re.search(re.escape(actual) + r"\s*" + re.escape(expected), fired)


def test_the_other_parameter_keys_are_marked_one_by_one(client, integration, review_all, reviewer):
    params = {"amount": 5, "currency": "EUR", **{f"{RLO}extra{i}": i for i in range(3)}}
    item = services.submit_item(
        integration=integration,
        payload=action_submission(action={"type": "payment.refund", "params": params}),
    ).item
    client.force_login(reviewer)
    page = client.get(review_url(item)).content.decode()
    also = page[page.index('id="other-keys"') : page.index("</span>", page.index('id="other-keys"') + 300)]
    assert RLO not in also and also.count('<bdi class="label">') >= 3


# --- The decision form's words ----------------------------------------------------------------------


def test_escalating_without_an_escalation_queue_says_so_in_the_pages_words(
    client, integration, review_all, reviewer
):
    QueueFactory(slug="experts", name="Experts")
    item = services.submit_item(integration=integration, payload=submission()).item
    client.force_login(reviewer)
    response = client.post(
        review_url(item), {"action": "escalate", "justification": "Hard.", "escalate_to": ""}
    )
    assert response.status_code == 200 and not item.decisions.exists()
    errors = response.context["form"].errors
    assert errors == {"escalate_to": ["Choose the queue to escalate to: this queue has none set."]}
    assert "escalate_to." not in response.content.decode()
    assert 'data-first-error="escalate_to"' in response.content.decode()


def test_a_long_edit_being_approved_is_cut_with_the_rest_one_click_away(
    client, integration, review_all, four_eyes, reviewer, other_reviewer, codes
):
    item = services.submit_item(integration=integration, payload=submission()).item
    edited = "edited " * 2000
    services.decide(
        item=item,
        user=reviewer,
        action="edit",
        justification="Longer.",
        reason_codes=["factual_error"],
        edited_output={"text": edited},
    )
    client.force_login(other_reviewer)
    page = client.get(review_url(item)).content.decode()
    being_approved = page[page.index('id="being-approved"') : page.index("original against edited")]
    assert edited not in being_approved
    assert f"Showing {PREVIEW_CHARS} of {len(edited)} characters." in being_approved
    link = re.search(r'href="([^"]+)" class="show-all" data-show-all', being_approved).group(1)
    whole = client.get(html.unescape(link))
    assert whole.status_code == 200 and whole.content.decode() == edited
    decision = item.decisions.get()
    assert client.get(raw_url(item, ["decisions", decision.pk + 1, "edited_output"])).status_code == 404
