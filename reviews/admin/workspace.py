"""The reviewer workspace (SPEC section 5): queue overview, review page, decisions.

Extra admin views, mounted by `ReviewItemAdmin.get_urls()` through
`workspace_urls()`. Each view checks who may see and who may act itself (a
hidden button is not a permission), and every change of state goes through
`reviews.services`, exactly as the API does.

Submitted payloads are untrusted: `reviews.admin.presentation` turns them into plain
strings and rows and the templates autoescape all of them.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from reviews import selectors, services
from reviews.access import may_read_item, sees_everything
from reviews.admin.forms import DecisionForm
from reviews.admin.presentation import (
    duration_in_words,
    edit_diffs,
    edited_action_of,
    edited_version,
    key_text,
    present_item,
    pretty_json,
    submitted_part,
    summary_shown,
)
from reviews.delivery.executors import summary_for
from reviews.exceptions import Conflict, DomainError, InvalidDecision, NoSuchItem, NotAllowed
from reviews.models import Decision, DecisionAction, ItemStatus, Queue, ReasonCode, ReviewItem

# --- Views ---------------------------------------------------------------------------------

ACTION_DONE = {
    DecisionAction.APPROVE: "Approved",
    DecisionAction.EDIT: "Edited",
    DecisionAction.REJECT: "Rejected",
    DecisionAction.ESCALATE: "Escalated",
}


def label(item: ReviewItem) -> str:
    """The item's name in a message or a page title: its hidden characters as visible text."""
    return str(key_text(item.external_id or item.pk))


# Claims taken for the reviewer by auto-advance (the next item, opened after a decision),
# in the session: {item id: {"claimed_at": that claim's start, "token": the newest review
# page's}}. Only those are given back when the reviewer leaves the page (`leave`); a claim
# taken on purpose (Claim, Review next, Keep it) starts anew, so is no longer the one marked,
# and stays until it is released or runs out. Each rendering of the page takes a new token
# and only the newest page's releases: a reload (whose old page says it is leaving after
# the new one has been made) or an older tab of the item does not.
AUTO_CLAIMS = "reviews_auto_claims"


def mark_auto_claim(request, item: ReviewItem, token: str = "") -> None:
    entry = {"claimed_at": item.claimed_at.isoformat(), "token": token}
    request.session[AUTO_CLAIMS] = {**request.session.get(AUTO_CLAIMS, {}), str(item.pk): entry}


def auto_claim_token(request, item: ReviewItem) -> str | None:
    """The newest page's token when the item's current claim is an auto-advance one, else None."""
    entry = request.session.get(AUTO_CLAIMS, {}).get(str(item.pk))
    if entry and item.claimed_at and entry["claimed_at"] == item.claimed_at.isoformat():
        return entry["token"]
    return None


def forget_auto_claim(request, item: ReviewItem) -> None:
    marked = request.session.get(AUTO_CLAIMS, {})
    if str(item.pk) in marked:
        request.session[AUTO_CLAIMS] = {key: entry for key, entry in marked.items() if key != str(item.pk)}


class Workspace:
    """The workspace views of one admin site; URLs in `workspace_urls`."""

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site

    # Helpers ------------------------------------------------------------------------

    def url(self, name: str, *args) -> str:
        return reverse(f"admin:{name}", args=args, current_app=self.admin_site.name)

    def render(self, request, template: str, context: dict) -> TemplateResponse:
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": ReviewItem._meta,
            "safety_policy_url": self.url("policies_safety_policy"),
            "overview_url": self.url("reviews_workspace"),
            **context,
        }
        return TemplateResponse(request, f"admin/reviews/workspace/{template}", context)

    def load(self, request, item_id: UUID) -> tuple[ReviewItem, bool]:
        """The item and whether the user may review it. Someone who may neither review
        nor read every queue gets a 404, so an item's existence is not revealed."""
        item = get_object_or_404(
            ReviewItem.objects.select_related("queue__escalation_queue", "claimed_by", "integration"),
            pk=item_id,
        )
        if not may_read_item(request.user, item):
            raise Http404("No such item.")
        may_review = item.can_be_reviewed_by(request.user)
        return item, may_review

    def load_for_action(self, request, item_id: UUID) -> ReviewItem:
        item, may_review = self.load(request, item_id)
        if not may_review:
            raise PermissionDenied("You may read this item but not review it.")
        return item

    def land_on_next(self, request, queue: Queue) -> HttpResponseRedirect:
        """After a decision: straight to the next item of the same queue, claimed for the
        reviewer until they leave it, or back to the overview. (`claim_next` hands back a
        claim the reviewer already holds in the queue: one taken on purpose stays so.)"""
        held = set(
            ReviewItem.objects.filter(queue=queue, claimed_by=request.user, status=ItemStatus.IN_REVIEW)
            .filter(claim_expires_at__gt=timezone.now())
            .values_list("pk", flat=True)
        )
        try:
            following = services.claim_next(queue=queue, user=request.user)
        except NotAllowed:
            following = None
        if following is None:
            messages.info(request, f"Queue empty: nothing left to review in {queue.name}.")
            return HttpResponseRedirect(self.url("reviews_workspace"))
        if following.pk not in held:
            mark_auto_claim(request, following)
        return HttpResponseRedirect(self.url("reviews_review", following.pk))

    # Views --------------------------------------------------------------------------

    def overview(self, request):
        """The queues the user may review, with their workload (one query whatever the size)."""
        now = timezone.now()
        queues = list(selectors.queue_overview(request.user, now=now))
        # An auto-advance claim is not one to continue: it is given back when its page is
        # left, which may be under way as this page is made (a beacon from a closed tab).
        live = ReviewItem.objects.filter(
            status=ItemStatus.IN_REVIEW, claimed_by=request.user, claim_expires_at__gt=now
        )
        claims = [
            claimed
            for claimed in live.select_related("queue").order_by("claim_expires_at")
            if auto_claim_token(request, claimed) is None
        ][:10]
        for claimed in claims:
            claimed.label = key_text(claimed.external_id or claimed.pk)
        for queue in queues:
            queue.sla_words = duration_in_words(queue.sla_minutes)
        context = {
            "title": "Review workspace",
            "queues": queues,
            "claims": claims,
            "reads_everything": sees_everything(request.user),
            "now": now,
        }
        return self.render(request, "overview.html", context)

    def review_next(self, request, slug: str):
        queue = get_object_or_404(Queue.objects.reviewable_by(request.user), slug=slug)
        try:
            item = services.claim_next(queue=queue, user=request.user)
        except DomainError as exc:
            messages.error(request, exc.detail)
            item = None
        else:
            if item is None:
                messages.info(request, f"Nothing to review in {queue.name}.")
        if item is None:
            return HttpResponseRedirect(self.url("reviews_workspace"))
        return HttpResponseRedirect(self.url("reviews_review", item.pk))

    def review(self, request, item_id: UUID):
        """GET shows the item; POST records a decision through `services.decide`."""
        if request.method == "POST":
            item = self.load_for_action(request, item_id)
            return self.record_decision(request, item)
        item, may_review = self.load(request, item_id)
        return self.review_page(request, item, may_review)

    def record_decision(self, request, item: ReviewItem):
        queue = item.queue  # where the reviewer continues, even when the item is escalated away
        # Closed or someone else's: say so whatever else is wrong with the form (the page
        # would not show the form again). The service checks both again under the lock.
        if not item.is_open or item.is_claimed_by_other(request.user):
            blocked = (
                f"This item is already {item.get_status_display().lower()}."
                if not item.is_open
                else f"{item.claimed_by} holds the claim on this item."
            )
            messages.error(request, blocked)
            return HttpResponseRedirect(self.url("reviews_review", item.pk))
        form = self.decision_form(item, data=request.POST)
        if not form.is_valid():
            return self.review_page(request, item, True, form=form)
        data = form.cleaned_data
        try:
            decision = services.decide(
                item=item,
                user=request.user,
                action=data["action"],
                justification=data["justification"],
                reason_codes=data["reason_codes"],
                edited_output=data["edited_output_value"],
                edited_action=data["edited_action_value"],
                checklist=form.checklist_answers(),
                escalate_to=data["escalate_to"] or None,
            )
        except InvalidDecision as exc:
            form.add_domain_error(exc)
            return self.review_page(request, item, True, form=form)
        except NoSuchItem as exc:  # the reviewer lost the queue since the page was loaded
            raise Http404(exc.detail) from exc
        except (Conflict, NotAllowed) as exc:
            # Decided meanwhile, claimed by someone else, or the same reviewer twice in four-eyes.
            messages.error(request, exc.detail)
            return HttpResponseRedirect(self.url("reviews_review", item.pk))
        forget_auto_claim(request, item)
        messages.success(request, self.decision_message(decision))
        return self.land_on_next(request, queue)

    def claim(self, request, item_id: UUID):
        """Claim the item on purpose (also "Keep it claimed" on an auto-advance claim, which
        starts it anew): it stays claimed when the reviewer leaves the page."""
        item = self.load_for_action(request, item_id)
        try:
            services.claim(item=item, user=request.user)
        except DomainError as exc:
            messages.error(request, exc.detail)
        return HttpResponseRedirect(self.url("reviews_review", item.pk))

    def release(self, request, item_id: UUID):
        """Stop reviewing: give the claim back and return to the overview."""
        item = self.load_for_action(request, item_id)
        try:
            services.release(item=item, user=request.user)
        except DomainError as exc:
            messages.error(request, exc.detail)
            return HttpResponseRedirect(self.url("reviews_review", item.pk))
        forget_auto_claim(request, item)
        messages.info(request, f"Released {label(item)}; it is back in {item.queue.name}.")
        return HttpResponseRedirect(self.url("reviews_workspace"))

    def leave(self, request, item_id: UUID):
        """The review page of an auto-advance claim is being left (workspace.js: a link
        or form out of it waits for this; a closed tab sends it as a beacon). Releases
        the claim when `token` is the newest page's, else does nothing; answers 204."""
        item = self.load_for_action(request, item_id)
        token = request.POST.get("token", "")
        if token and auto_claim_token(request, item) == token:
            forget_auto_claim(request, item)
            if item.claim_is_active() and item.claimed_by_id == request.user.pk:
                # Decided or taken over meanwhile: then there is nothing left to give back.
                with contextlib.suppress(DomainError):
                    services.release(item=item, user=request.user)
        return HttpResponse(status=204)

    def raw(self, request, item_id: UUID):
        """The submission as stored: all of it as a JSON download, or with `?path=["output",
        "text"]` one value, as plain text (a string) or JSON, for "Show all" on the review
        page. Served as text, never as HTML, whatever it holds."""
        item, _ = self.load(request, item_id)
        if "path" not in request.GET:
            whole = submitted_part(item, [])
            response = HttpResponse(pretty_json(whole), content_type="application/json; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="item-{item.pk}.json"'
            return response
        try:
            path = json.loads(request.GET["path"][:2000])
            if not isinstance(path, list):
                raise ValueError(path)
            value = submitted_part(item, path)
        except (ValueError, LookupError) as exc:
            raise Http404("No such value in this item.") from exc
        if isinstance(value, str):
            return HttpResponse(value, content_type="text/plain; charset=utf-8")
        return HttpResponse(pretty_json(value), content_type="application/json; charset=utf-8")

    # The review page ----------------------------------------------------------------

    def decision_form(self, item: ReviewItem, data=None) -> DecisionForm:
        return DecisionForm(
            data,
            item=item,
            reason_codes=list(ReasonCode.objects.filter(active=True).order_by("code")),
            queues=list(Queue.objects.exclude(pk=item.queue_id).order_by("name")),
        )

    def review_page(self, request, item: ReviewItem, may_review: bool, form: DecisionForm | None = None):
        user = request.user
        now = timezone.now()
        decisions = list(item.decisions.select_related("reviewer", "queue").order_by("created_at"))
        labels = dict(ReasonCode.objects.values_list("code", "label")) if decisions else {}
        for decision in decisions:
            decision.edits = edit_diffs(item, decision) if decision.action == DecisionAction.EDIT else []
            decision.codes_shown = [(code, labels.get(code, "")) for code in decision.cited_codes]
        approvals = (
            [d for d in decisions if d.round == item.review_round and d.is_approval] if item.is_open else []
        )
        first_approval = approvals[0] if approvals else None

        claimed_by_other = item.is_claimed_by_other(user, now)
        holds_claim = item.claim_is_active(now) and item.claimed_by_id == user.pk
        leave_token = ""
        if holds_claim and auto_claim_token(request, item) is not None:
            leave_token = secrets.token_urlsafe(12)
            mark_auto_claim(request, item, leave_token)
        elif not holds_claim:
            forget_auto_claim(request, item)  # decided, released or run out since
        acts = may_review and item.is_open
        if acts and not claimed_by_other and form is None:
            form = self.decision_form(item)
        summarised = edited_action_of(first_approval) or item.action
        context = {
            "title": f"Review {label(item)}",
            "item": item,
            "item_label": key_text(item.external_id or item.pk),
            "shown": present_item(item),
            "raw_url": self.url("reviews_raw", item.pk),
            "action_summary": summary_shown(summary_for(summarised, item.integration))
            if item.action is not None
            else None,
            "decisions": decisions,
            "first_approval": first_approval,
            "being_approved": edited_version(first_approval) if first_approval else [],
            "i_approved_first": bool(first_approval and first_approval.reviewer_id == user.pk),
            "approvals_needed": item.approvals_needed,
            "approvals_kept": bool(item.queue_id and item.required_approvals > item.queue.required_approvals),
            "i_escalated": any(
                d.action == DecisionAction.ESCALATE and d.reviewer_id == user.pk for d in decisions
            ),
            "checklist": [str(entry) for entry in (item.queue.checklist or [])] if item.queue else [],
            "may_review": may_review,
            "read_only": not acts,
            "form": form if acts and not claimed_by_other else None,
            "reason_codes": form.reason_code_rows() if form is not None else [],
            "claimed_by_other": claimed_by_other,
            "holds_claim": holds_claim,
            "leave_token": leave_token,
            "can_claim": acts and not claimed_by_other and not holds_claim,
            "can_release": acts and item.claim_is_active(now) and (holds_claim or user.is_superuser),
            "claim_expired": item.status == ItemStatus.IN_REVIEW and not item.claim_is_active(now),
            "now": now,
            "now_iso": now.isoformat(timespec="seconds"),
            "claim_expires_iso": item.claim_expires_at.isoformat(timespec="seconds")
            if item.claim_expires_at
            else "",
            "is_overdue": item.is_overdue(now),
            "is_at_risk": item.is_at_risk(now),
        }
        return self.render(request, "review.html", context)

    @staticmethod
    def decision_message(decision: Decision) -> str:
        item = decision.item
        done = ACTION_DONE[decision.action]
        if decision.action == DecisionAction.ESCALATE:
            return f"{done} {label(item)} to {item.queue.name}."
        if decision.is_approval and not decision.is_final:
            return f"{done} {label(item)}: first approval; it now waits for a second, different reviewer."
        return f"{done} {label(item)}."


def workspace_urls(model_admin) -> list:
    """URL patterns to prepend to `ReviewItemAdmin.get_urls()` (under /admin/reviews/reviewitem/)."""
    views = Workspace(model_admin)
    wrap = model_admin.admin_site.admin_view
    return [
        path("workspace/", wrap(views.overview), name="reviews_workspace"),
        path(
            "workspace/<slug:slug>/next/", wrap(require_POST(views.review_next)), name="reviews_review_next"
        ),
        path("<uuid:item_id>/review/", wrap(views.review), name="reviews_review"),
        path("<uuid:item_id>/claim/", wrap(require_POST(views.claim)), name="reviews_claim"),
        path("<uuid:item_id>/release/", wrap(require_POST(views.release)), name="reviews_release"),
        path("<uuid:item_id>/leave/", wrap(require_POST(views.leave)), name="reviews_leave"),
        path("<uuid:item_id>/raw/", wrap(require_GET(views.raw)), name="reviews_raw"),
    ]
