"""The review page with what an integration may send: long values are cut with the rest
one click away, hidden characters are shown, markup stays text, and the decision form
keeps the reviewer's choices after an error and shows each error once."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from django.urls import reverse

from reviews import services
from reviews.admin.presentation import PREVIEW_CHARS
from reviews.models import ReviewItem
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, ReasonCodeFactory, action_submission, submission

LONG = "A" * 20_000  # one unbroken word
RLO = "\u202e"


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(name="Review everything", queue=queue)


@pytest.fixture
def codes(db):
    ReasonCodeFactory(code="factual_error", label="Factually wrong", applies_to=["reject", "edit"])
    ReasonCodeFactory(code="tone", label="Tone", applies_to=["edit"])


def review_url(item) -> str:
    return reverse("admin:reviews_review", args=[item.pk])


def raw_url(item, path=None) -> str:
    url = reverse("admin:reviews_raw", args=[item.pk])
    return url if path is None else f"{url}?path={quote(json.dumps(path))}"


def without_edit_fields(page: str) -> str:
    """The page as shown: the edit fields (collapsed, holding the original to edit) left out."""
    return re.sub(r"<textarea.*?</textarea>", "", page, flags=re.S)


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
    page = client.get(review_url(item)).content.decode()
    release = reverse("admin:reviews_release", args=[item.pk])
    assert f'data-release-url="{release}"' in page and "Stop reviewing" in page
    response = client.post(release)
    assert response["Location"] == reverse("admin:reviews_workspace")
    item.refresh_from_db()
    assert item.status == "pending" and item.claimed_by is None
    overview = client.get(reverse("admin:reviews_workspace")).content.decode()
    assert "Continue:" not in overview


def test_someone_else_never_gets_the_release_hook(client, integration, review_all, queue, reviewer):
    item = services.submit_item(integration=integration, payload=submission()).item
    services.claim(item=item, user=reviewer)
    client.force_login(make_reviewer("second", queue))
    assert "data-release-url" not in client.get(review_url(item)).content.decode()


def test_why_it_was_gated_shows_the_condition_that_fired_and_its_value(client, integration, queue, reviewer):
    from tests.factories import GateConditionFactory

    rule = GateRuleFactory(name="Weak answers", queue=queue, match="any")
    GateConditionFactory(rule=rule, field="signals.confidence", op="lt", value=0.5)
    GateConditionFactory(rule=rule, field="signals.rubric_score", op="lte", value=2)
    item = services.submit_item(
        integration=integration, payload=submission(signals={"confidence": 0.7, "rubric_score": 1})
    ).item
    client.force_login(reviewer)
    page = client.get(review_url(item)).content.decode()
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
