"""The reviewer workspace in the admin: wiring, permissions and what the pages show.

The rules themselves are tested in test_services.py; here we check that the admin
calls the services, turns their errors into messages or form errors, and never
shows or lets anyone act on what they may not.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews import services
from reviews.models import Decision, ItemStatus, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import GateRuleFactory, QueueFactory, ReasonCodeFactory, action_submission, submission

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def review_all(queue):
    return GateRuleFactory(
        name="Review everything",
        description="Every answer waits for a person during the pilot.",
        queue=queue,
        outcome="review",
        risk_level="medium",
    )


@pytest.fixture
def codes(db):
    return {
        "factual_error": ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"]),
        "verified": ReasonCodeFactory(code="verified", applies_to=["approve"]),
    }


@pytest.fixture
def staff_outsider(outsider):
    """The outsider persona with admin access: a reviewer, but of other queues."""
    outsider.is_staff = True
    outsider.save(update_fields=["is_staff"])
    return outsider


def rich_submission(**overrides) -> dict:
    return submission(
        input={
            "prompt": "Can I get a refund?",
            "messages": [{"role": "user", "content": "Order 1182 broke."}],
        },
        output={"text": "Yes, within 30 days of delivery."},
        context={
            "retrieved_documents": [{"title": "Refund policy", "text": "Refunds within 30 days."}],
            "reasoning": "The policy allows refunds for 30 days.",
            "tool_outputs": [{"tool": "orders.get", "output": {"order": "1182", "delivered": "2024-05-02"}}],
        },
        signals={"confidence": 0.62, "category": "finance"},
        **overrides,
    )


def submit(integration, payload=None, **overrides) -> ReviewItem:
    payload = payload or submission(**overrides)
    return services.submit_item(integration=integration, payload=payload).item


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def review_url(item) -> str:
    return url("reviews_review", item.pk)


def messages_of(response) -> list[str]:
    """Messages waiting after the request (unread ones from earlier requests included)."""
    return [str(message) for message in get_messages(response.wsgi_request)]


def last_message(response) -> str:
    return messages_of(response)[-1]


def decide(client, item, action="approve", **data):
    data = {"action": action, **data}
    return client.post(review_url(item), data)


# --- Overview ----------------------------------------------------------------------------------


def test_overview_lists_only_the_queues_the_reviewer_reviews_with_their_counts(
    client, integration, review_all, reviewer, other_reviewer
):
    submit(integration, external_id="a")
    claimed = submit(integration, external_id="b")
    services.claim(item=claimed, user=other_reviewer)
    QueueFactory(slug="elsewhere", name="Elsewhere")

    client.force_login(reviewer)
    response = client.get(url("reviews_workspace"))

    assert response.status_code == 200
    queues = response.context["queues"]
    assert [q.slug for q in queues] == ["general"]
    assert (queues[0].pending, queues[0].in_review, queues[0].sla_breaches) == (1, 1, 0)
    assert queues[0].oldest_entered_at is not None
    content = response.content.decode()
    assert "General review" in content
    assert "Elsewhere" not in content
    assert url("reviews_review_next", "general") in content
    assert url("policies_safety_policy") in content


def test_overview_highlights_items_past_their_sla(client, integration, review_all, reviewer):
    item = submit(integration)
    ReviewItem.objects.filter(pk=item.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    client.force_login(reviewer)
    response = client.get(url("reviews_workspace"))
    assert response.context["queues"][0].sla_breaches == 1
    assert 'class="num past-sla alert"' in response.content.decode()


def test_overview_offers_to_continue_a_live_claim(client, integration, review_all, reviewer):
    item = submit(integration, external_id="held")
    services.claim(item=item, user=reviewer)
    client.force_login(reviewer)
    content = client.get(url("reviews_workspace")).content.decode()
    assert 'Continue: <bdi class="label">held</bdi>' in content
    assert review_url(item) in content


def test_an_outsider_sees_no_queue(client, integration, review_all, staff_outsider):
    submit(integration)
    client.force_login(staff_outsider)
    response = client.get(url("reviews_workspace"))
    assert response.status_code == 200
    assert list(response.context["queues"]) == []
    assert "You are not a reviewer of any queue." in response.content.decode()


def test_non_staff_users_are_sent_to_the_login_page(client, outsider):
    client.force_login(outsider)
    response = client.get(url("reviews_workspace"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_compliance_sees_a_read_only_note(client, compliance):
    client.force_login(compliance)
    response = client.get(url("reviews_workspace"))
    assert response.status_code == 200
    assert 'id="readonly-note"' in response.content.decode()


def test_overview_query_count_does_not_grow_with_items(
    client, integration, review_all, reviewer, django_assert_max_num_queries
):
    submit(integration)
    client.force_login(reviewer)
    client.get(url("reviews_workspace"))  # warm the session and permission caches
    with CaptureQueriesContext(connection) as few:
        client.get(url("reviews_workspace"))
    for n in range(8):
        submit(integration, external_id=f"more-{n}")
    second = QueueFactory(slug="second", name="Second")
    second.reviewer_groups.add(*review_all.queue.reviewer_groups.all())
    with django_assert_max_num_queries(len(few)):
        response = client.get(url("reviews_workspace"))
    assert [q.pending for q in response.context["queues"]] == [9, 0]


# --- Review next ------------------------------------------------------------------------------


def test_review_next_claims_the_next_item_and_opens_it(client, integration, review_all, reviewer):
    item = submit(integration)
    client.force_login(reviewer)
    response = client.post(url("reviews_review_next", "general"))
    assert response.status_code == 302
    assert response["Location"] == review_url(item)
    item.refresh_from_db()
    assert item.status == ItemStatus.IN_REVIEW
    assert item.claimed_by == reviewer


def test_review_next_on_an_empty_queue_returns_to_the_overview(client, queue, reviewer):
    client.force_login(reviewer)
    response = client.post(url("reviews_review_next", "general"))
    assert response.status_code == 302
    assert response["Location"] == url("reviews_workspace")
    assert last_message(response) == "Nothing to review in General review."


def test_review_next_is_404_for_a_queue_the_user_does_not_review(
    client, integration, review_all, staff_outsider
):
    item = submit(integration)
    client.force_login(staff_outsider)
    assert client.post(url("reviews_review_next", "general")).status_code == 404
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING


def test_review_next_only_answers_post(client, queue, reviewer):
    client.force_login(reviewer)
    assert client.get(url("reviews_review_next", "general")).status_code == 405


# --- The review page ----------------------------------------------------------------------------


def test_review_page_shows_the_item_on_one_screen(client, integration, review_all, reviewer, queue):
    queue.checklist = ["The answer cites the policy", "No personal data"]
    queue.save()
    item = submit(integration, payload=rich_submission())
    services.claim(item=item, user=reviewer)
    client.force_login(reviewer)

    response = client.get(review_url(item))

    assert response.status_code == 200
    content = response.content.decode()
    for element in (
        'id="prompt"',
        'id="output"',
        'id="documents"',
        'id="reasoning"',
        'id="tool-outputs"',
        'id="signals"',
        'id="matched-rules"',
        'id="checklist"',
        'id="earlier-decisions"',
        'id="decision-form"',
        'id="claim-countdown"',
        'name="justification"',
        'id="edit-text"',
        'id="edit-diff"',
    ):
        assert element in content, element
    for text in (
        "Can I get a refund?",
        "Order 1182 broke.",
        "Yes, within 30 days of delivery.",
        "Refund policy",
        "Refunds within 30 days.",
        "The policy allows refunds for 30 days.",
        "orders.get",
        "&quot;delivered&quot;: &quot;2024-05-02&quot;",
        "confidence",
        "Review everything",
        "Every answer waits for a person during the pilot.",
        "The answer cites the policy",
        "No personal data",
        url("policies_safety_policy"),
    ):
        assert text in content, text
    for action in ("approve", "edit", "reject", "escalate"):
        assert f'name="action" value="{action}"' in content
    expires = ReviewItem.objects.get(pk=item.pk).claim_expires_at
    assert f'data-expires="{expires.isoformat(timespec="seconds")}"' in content


def test_action_items_show_the_proposed_action_and_an_editable_params_field(
    client, integration, review_all, reviewer
):
    item = submit(integration, payload=action_submission())
    client.force_login(reviewer)
    content = client.get(review_url(item)).content.decode()
    assert "payment.refund" in content
    assert "currency" in content and "EUR" in content
    assert 'id="edit-params"' in content


def test_odd_shapes_never_break_the_page(client, integration, review_all, reviewer):
    item = submit(integration)
    ReviewItem.objects.filter(pk=item.pk).update(
        input="just a string",
        output=["a", "list"],
        context={"retrieved_documents": "not a list", "tool_outputs": [1, {"tool": "x"}], "extra": {"k": 1}},
        signals=[1, 2],
        metadata="odd",
        matched_rules=[{"name": None}, "garbage"],
        shadow_matches={"name": "Shadow watch"},
    )
    client.force_login(reviewer)
    response = client.get(review_url(item))
    assert response.status_code == 200
    content = response.content.decode()
    assert "just a string" in content
    assert "Shadow watch" in content
    assert 'id="edit-text"' in content  # the output is edited as JSON


def test_hostile_content_is_escaped(client, integration, review_all, reviewer):
    payload = rich_submission(external_id=HOSTILE)
    payload["output"] = {"text": HOSTILE}
    payload["context"]["retrieved_documents"] = [{"title": HOSTILE, "text": HOSTILE}]
    payload["context"]["reasoning"] = HOSTILE
    payload["signals"] = {HOSTILE: HOSTILE}
    item = submit(integration, payload=payload)
    client.force_login(reviewer)
    content = client.get(review_url(item)).content.decode()
    assert HOSTILE not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


# --- Decisions ------------------------------------------------------------------------------------


def test_approve_without_justification_is_a_form_error(client, integration, review_all, reviewer):
    item = submit(integration)
    client.force_login(reviewer)
    response = decide(client, item, justification="  ")
    assert response.status_code == 200
    assert response.context["form"].errors == {"justification": ["This field is required."]}
    assert response.content.decode().count("This field is required.") == 1  # once, next to its field
    assert not Decision.objects.exists()


def test_approve_lands_on_the_next_item_claimed(client, integration, review_all, reviewer):
    first = submit(integration, external_id="first")
    following = submit(integration, external_id="second")
    client.force_login(reviewer)

    response = decide(client, first, justification="Matches the policy.")

    assert response.status_code == 302
    assert response["Location"] == review_url(following)
    first.refresh_from_db()
    following.refresh_from_db()
    assert first.status == ItemStatus.APPROVED
    assert following.status == ItemStatus.IN_REVIEW and following.claimed_by == reviewer
    assert last_message(response) == "Approved first."


def test_the_last_decision_returns_to_the_overview(client, integration, review_all, reviewer):
    item = submit(integration, external_id="only")
    client.force_login(reviewer)
    response = decide(client, item, justification="Fine.")
    assert response["Location"] == url("reviews_workspace")
    assert last_message(response) == "Queue empty: nothing left to review in General review."


def test_reject_needs_a_reason_code(client, integration, review_all, reviewer, codes):
    item = submit(integration)
    client.force_login(reviewer)
    response = decide(client, item, "reject", justification="Wrong.")
    assert response.status_code == 200
    assert response.context["form"].errors["reason_codes"] == ["Give at least one reason code for reject."]
    assert not Decision.objects.exists()

    response = decide(client, item, "reject", justification="Wrong.", reason_codes=["factual_error"])
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == ItemStatus.REJECTED
    assert list(item.decisions.get().reason_codes.values_list("code", flat=True)) == ["factual_error"]


def test_an_edit_identical_to_the_original_is_refused(client, integration, review_all, reviewer, codes):
    item = submit(integration, output={"text": "Line one.\nLine two."})
    client.force_login(reviewer)
    # Browsers send textareas with CRLF line endings; that alone is not an edit.
    response = decide(
        client,
        item,
        "edit",
        justification="x",
        reason_codes=["factual_error"],
        edited_output="Line one.\r\nLine two.",
    )
    assert response.status_code == 200
    assert "edited_output" in response.context["form"].errors
    assert not Decision.objects.exists()


def test_an_edit_replaces_the_text_and_keeps_the_rest_of_the_output(
    client, integration, review_all, reviewer, codes
):
    item = submit(integration, output={"text": "Open 9 to 5.", "lang": "en"})
    client.force_login(reviewer)
    response = decide(
        client,
        item,
        "edit",
        justification="Hours changed.",
        reason_codes=["factual_error"],
        edited_output="Open 8 to 6.\r\nClosed on Sundays.",
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == ItemStatus.EDITED
    assert item.final_output == {"text": "Open 8 to 6.\nClosed on Sundays.", "lang": "en"}


def test_an_edit_of_action_parameters_must_be_valid_json(client, integration, review_all, reviewer, codes):
    item = submit(integration, payload=action_submission())
    client.force_login(reviewer)
    response = decide(
        client, item, "edit", justification="x", reason_codes=["factual_error"], edited_action="{not json"
    )
    assert response.status_code == 200
    assert response.context["form"].errors["edited_action"][0].startswith("Not valid JSON")

    params = {"order": "1182", "amount": 400.0, "currency": "EUR"}
    response = decide(
        client,
        item,
        "edit",
        justification="Partial refund.",
        reason_codes=["factual_error"],
        edited_output=item.output["text"],
        edited_action=json.dumps(params),
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == ItemStatus.EDITED
    assert item.final_action == {"type": "payment.refund", "params": params}
    assert item.final_output == item.output
    decision = item.decisions.get()
    assert decision.edited_output is None  # only the part that changed is recorded as edited


def test_approve_needs_every_checklist_item(client, integration, review_all, reviewer, queue):
    queue.checklist = ["Sources checked", "Tone is right"]
    queue.save()
    item = submit(integration)
    client.force_login(reviewer)

    response = decide(client, item, justification="Fine.", checklist=["0"])
    assert response.status_code == 200
    assert response.context["form"].errors["checklist"] == ["Tick every checklist item (2) before approving."]
    assert not Decision.objects.exists()

    response = decide(client, item, justification="Fine.", checklist=["0", "1"])
    assert response.status_code == 302
    assert Decision.objects.get().checklist == [True, True]


def test_escalate_moves_the_item_and_the_reviewer_stays_in_the_queue(
    client, integration, review_all, reviewer, queue
):
    experts = QueueFactory(slug="experts", name="Experts")
    queue.escalation_queue = experts
    queue.save()
    item = submit(integration, external_id="hard")
    client.force_login(reviewer)
    page = client.get(review_url(item)).content.decode()
    assert '<option value="experts" selected>' in page

    response = decide(client, item, "escalate", justification="Needs an expert.", escalate_to="experts")
    assert response["Location"] == url("reviews_workspace")
    assert "Escalated hard to Experts." in messages_of(response)
    item.refresh_from_db()
    assert (item.status, item.queue) == (ItemStatus.PENDING, experts)


def test_a_decided_item_answers_with_a_message(client, integration, review_all, reviewer):
    item = submit(integration)
    services.decide(item=item, user=reviewer, action="approve", justification="Fine.")
    client.force_login(reviewer)
    response = decide(client, item, justification="Again.")
    assert response.status_code == 302
    assert response["Location"] == review_url(item)
    assert last_message(response) == "This item is already approved."
    assert Decision.objects.count() == 1
    page = client.get(review_url(item)).content.decode()
    assert 'id="decision-form"' not in page
    assert 'id="item-closed"' in page


def test_a_reviewer_who_loses_the_queue_while_deciding_gets_a_404(
    client, integration, review_all, reviewer, queue, monkeypatch
):
    """Access taken away between the page's check and the decision's lock: the lock
    finds no item the reviewer may see, and the page answers 404, writing nothing."""
    item = submit(integration)
    client.force_login(reviewer)
    real_decide = services.decide

    def after_losing_the_queue(**kwargs):
        reviewer.groups.remove(*queue.reviewer_groups.all())
        return real_decide(**kwargs)

    monkeypatch.setattr(services, "decide", after_losing_the_queue)
    response = decide(client, item, justification="Looks right.")
    assert response.status_code == 404
    assert not Decision.objects.exists()
    assert ReviewItem.objects.get(pk=item.pk).status == ItemStatus.PENDING


# --- Four-eyes -----------------------------------------------------------------------------------


@pytest.fixture
def four_eyes(queue):
    queue.required_approvals = 2
    queue.save()
    return queue


def test_the_same_reviewer_cannot_give_both_approvals(
    client, integration, review_all, four_eyes, reviewer, other_reviewer
):
    item = submit(integration)
    client.force_login(reviewer)
    response = decide(client, item, justification="Looks right.")
    assert any("first approval" in text for text in messages_of(response))

    page = client.get(review_url(item)).content.decode()
    assert "First approval by <strong>reviewer</strong> — needs a second, different reviewer." in page
    assert 'value="approve"' not in page  # not offered to the first approver …

    response = decide(client, item, justification="Still right.")  # … and refused if sent anyway
    assert response.status_code == 302
    assert last_message(response) == "Four-eyes queue: the second approval must come from another reviewer."
    assert Decision.objects.count() == 1

    client.force_login(other_reviewer)
    assert 'value="approve"' in client.get(review_url(item)).content.decode()
    decide(client, item, justification="Agreed.")
    item.refresh_from_db()
    assert item.status == ItemStatus.APPROVED


def test_the_second_reviewer_sees_the_edited_version_being_approved(
    client, integration, review_all, four_eyes, reviewer, other_reviewer, codes
):
    item = submit(integration)
    services.decide(
        item=item,
        user=reviewer,
        action="edit",
        justification="Softer.",
        reason_codes=["factual_error"],
        edited_output={"text": "Our hours are 9 to 5."},
    )
    client.force_login(other_reviewer)
    content = client.get(review_url(item)).content.decode()
    assert 'id="being-approved"' in content
    assert "Our hours are 9 to 5." in content
    assert "<ins>" in content and "<del>" in content
    assert 'value="edit"' not in content  # the second reviewer approves or rejects the edit


def test_the_review_page_says_escalation_kept_four_eyes_and_who_cannot_approve_alone(
    client, integration, review_all, four_eyes, reviewer, other_reviewer
):
    quick = QueueFactory(slug="quick", name="Quick", required_approvals=1)
    quick.reviewer_groups.add(*four_eyes.reviewer_groups.all())
    item = submit(integration)
    services.decide(item=item, user=reviewer, action="escalate", justification="Quick.", escalate_to="quick")

    client.force_login(reviewer)
    page = client.get(review_url(item)).content.decode()
    assert 'id="approvals-kept"' in page and "escalation never lowers that" in page
    assert 'id="escalated-by-you"' in page and "four-eyes</span>" in page
    response = decide(client, item, justification="Fine by me.")
    assert any("first approval" in text for text in messages_of(response))
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING

    client.force_login(other_reviewer)
    page = client.get(review_url(item)).content.decode()
    assert 'id="escalated-by-you"' not in page


# --- Who may see and act ---------------------------------------------------------------------------


def test_compliance_reads_the_page_without_any_way_to_decide(client, integration, review_all, compliance):
    item = submit(integration)
    client.force_login(compliance)
    response = client.get(review_url(item))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="decision-form"' not in content
    assert 'name="action"' not in content
    assert 'id="claim-button"' not in content
    assert 'id="read-only-note"' in content

    assert decide(client, item, justification="Sneaky.").status_code == 403
    assert client.post(url("reviews_claim", item.pk)).status_code == 403
    assert client.post(url("reviews_release", item.pk)).status_code == 403
    assert not Decision.objects.exists()
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING


def test_superusers_read_items_outside_any_queue(client, integration, superuser):
    item = submit(integration)  # no rule: auto-approved, in no queue
    client.force_login(superuser)
    response = client.get(review_url(item))
    assert response.status_code == 200
    assert 'id="decision-form"' not in response.content.decode()


def test_an_outsider_gets_404_everywhere(client, integration, review_all, staff_outsider, reviewer):
    item = submit(integration)
    services.claim(item=item, user=reviewer)
    client.force_login(staff_outsider)
    assert client.get(review_url(item)).status_code == 404
    assert decide(client, item, justification="x").status_code == 404
    assert client.post(url("reviews_claim", item.pk)).status_code == 404
    assert client.post(url("reviews_release", item.pk)).status_code == 404
    assert not Decision.objects.exists()
    item.refresh_from_db()
    assert item.claimed_by == reviewer


def test_an_item_claimed_by_another_reviewer(client, integration, review_all, reviewer, other_reviewer):
    item = submit(integration)
    services.claim(item=item, user=other_reviewer)
    client.force_login(reviewer)

    content = client.get(review_url(item)).content.decode()
    assert "other_reviewer is reviewing this item" in content
    assert 'id="decision-form"' not in content

    response = decide(client, item, justification="Mine now.")
    assert response.status_code == 302
    assert last_message(response) == "other_reviewer holds the claim on this item."
    assert not Decision.objects.exists()

    response = client.post(url("reviews_release", item.pk))
    assert last_message(response) == "other_reviewer holds the claim on this item."


def test_claim_and_release(client, integration, review_all, reviewer):
    item = submit(integration)
    client.force_login(reviewer)
    assert 'id="claim-button"' in client.get(review_url(item)).content.decode()

    response = client.post(url("reviews_claim", item.pk))
    assert response["Location"] == review_url(item)
    item.refresh_from_db()
    assert (item.status, item.claimed_by) == (ItemStatus.IN_REVIEW, reviewer)
    assert 'id="release-button"' in client.get(review_url(item)).content.decode()

    response = client.post(url("reviews_release", item.pk))
    assert response["Location"] == url("reviews_workspace")
    item.refresh_from_db()
    assert (item.status, item.claimed_by) == (ItemStatus.PENDING, None)

    response = client.post(url("reviews_release", item.pk))
    assert last_message(response) == "This item is not claimed."


def test_review_page_query_count_does_not_grow_with_earlier_decisions(
    client, integration, review_all, queue, reviewer, other_reviewer, django_assert_max_num_queries
):
    experts = QueueFactory(slug="experts", name="Experts", escalation_queue=queue, required_approvals=2)
    experts.reviewer_groups.add(*queue.reviewer_groups.all())
    queue.escalation_queue = experts
    queue.save()
    ReasonCodeFactory(code="needs_expert", applies_to=["escalate"])
    one = submit(integration, payload=rich_submission(external_id="one"))
    services.decide(item=one, user=reviewer, action="escalate", justification="Hard.")
    three = submit(integration, payload=rich_submission(external_id="three"))
    for justification in ("Hard.", "Back again."):
        services.decide(
            item=three,
            user=reviewer,
            action="escalate",
            justification=justification,
            reason_codes=["needs_expert"],
        )
    services.decide(item=three, user=other_reviewer, action="escalate", justification="Experts, please.")
    services.decide(item=three, user=reviewer, action="approve", justification="First of two.")
    assert three.decisions.count() == 4

    client.force_login(other_reviewer)
    client.get(review_url(one))
    with CaptureQueriesContext(connection) as few:
        assert client.get(review_url(one)).status_code == 200
    with django_assert_max_num_queries(len(few)):
        response = client.get(review_url(three))
    assert response.status_code == 200
    assert "First approval by" in response.content.decode()


# --- The way in -----------------------------------------------------------------------------------


def test_the_admin_index_links_reviewers_to_the_workspace(client, queue, reviewer, compliance):
    client.force_login(reviewer)
    content = client.get(reverse("admin:index")).content.decode()
    assert 'id="workspace-link"' in content
    assert url("reviews_workspace") in content

    client.force_login(compliance)
    assert 'id="workspace-link"' not in client.get(reverse("admin:index")).content.decode()


def test_every_demo_item_opens_for_a_superuser(client, superuser):
    call_command("seed_demo", stdout=io.StringIO())
    client.force_login(superuser)
    assert client.get(url("reviews_workspace")).status_code == 200
    items = list(ReviewItem.objects.all())
    assert items
    for item in items:
        assert client.get(review_url(item)).status_code == 200, item


@pytest.mark.parametrize(
    "params",
    [
        "[" * 5000 + "]" * 5000,
        '{"amount": NaN}',
        '{"note": "a\\u0000b"}',
        '{"note": "\\ud800"}',
        '"all of it"',
    ],
)
def test_edited_action_json_that_cannot_be_stored_is_a_form_error(client, params, integration, queue):
    GateRuleFactory(name="Review actions", queue=queue)
    ReasonCodeFactory(code="factual_error", applies_to=["edit"])
    item = services.submit_item(integration=integration, payload=action_submission()).item
    client.force_login(make_reviewer("editor", queue))
    response = client.post(
        f"/admin/reviews/reviewitem/{item.pk}/review/",
        {"action": "edit", "justification": "x", "reason_codes": ["factual_error"], "edited_action": params},
    )
    assert response.status_code == 200
    assert not item.decisions.exists()


def test_a_nul_character_in_edited_text_is_a_form_error(client, integration, queue):
    GateRuleFactory(name="Review all", queue=queue)
    ReasonCodeFactory(code="factual_error", applies_to=["edit"])
    item = services.submit_item(integration=integration, payload=submission()).item
    client.force_login(make_reviewer("editor", queue))
    response = client.post(
        f"/admin/reviews/reviewitem/{item.pk}/review/",
        {
            "action": "edit",
            "justification": "x",
            "reason_codes": ["factual_error"],
            "edited_output": "a\x00b",
        },
    )
    assert response.status_code == 200
    assert not item.decisions.exists()
