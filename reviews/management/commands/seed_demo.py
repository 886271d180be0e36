"""Load demo data: the example policy, users for each role, and realistic items in
every state. Safe to run again: users get their demo passwords back, the policy
is re-imported (no change when unchanged) and items are only created once."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from policies.io import import_policy
from reviews import services
from reviews.management.audited import AuditedCommand
from reviews.models import (
    COMPLIANCE_GROUP,
    POLICY_ADMINS_GROUP,
    REVIEWERS_GROUP,
    DecisionAction,
    Integration,
    ItemStatus,
    Queue,
    ReasonCode,
    ReviewItem,
)

DEMO_DIR = Path(settings.BASE_DIR) / "demo"
DEMO_INTEGRATION = "demo-assistant"

# username: (password, staff roles, superuser)
DEMO_USERS = {
    "admin": ("admin-demo-pw", [], True),
    "reviewer": ("reviewer-demo-pw", [REVIEWERS_GROUP], False),
    "reviewer2": ("reviewer2-demo-pw", [REVIEWERS_GROUP], False),
    "compliance": ("compliance-demo-pw", [COMPLIANCE_GROUP], False),
    "policy": ("policy-demo-pw", [POLICY_ADMINS_GROUP], False),
}


@contextmanager
def quiet(*names: str):
    """Keep per-item log lines (rejections, eager task runs) out of the summary."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class Command(AuditedCommand):
    help = "Load demo queues, rules, reason codes, users and sample items (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000",
            help="Where the server will be reached, for the login line (make run passes http://$HOST).",
        )

    def handle(self, *args, **options):
        policy = json.loads((DEMO_DIR / "policy.json").read_text())
        report = import_policy(policy)
        self.stdout.write(f"Policy: {report.lines()[-1]}")

        users = self._users()
        integration = self._integration()
        if integration.items.exists():
            self.stdout.write("Demo items already loaded.")
        else:
            with quiet("reviews.services", "celery.app.trace"):
                count = self._items(integration, users)
            self.stdout.write(f"Loaded {count} demo items.")

        self.stdout.write("")
        self.stdout.write(f"Demo logins for {options['url'].rstrip('/')}/admin/ (user / password):")
        for username, (password, roles, superuser) in DEMO_USERS.items():
            role = "superuser" if superuser else ", ".join(roles)
            self.stdout.write(f"  {username:<11} / {password:<20} {role}")

    def _integration(self) -> Integration:
        """The demo assistant records approved actions instead of calling anything, so a
        demo action reaches "succeeded" without a receiver running."""
        record = Integration.ActionDelivery.RECORD
        integration = Integration.objects.filter(slug=DEMO_INTEGRATION).first()
        if integration is None:
            integration, key = services.create_integration(
                name="Demo assistant", slug=DEMO_INTEGRATION, action_delivery=record
            )
            self.stdout.write(f"Demo integration {DEMO_INTEGRATION}: api_key: {key}")
        elif integration.action_delivery != record:
            integration.action_delivery = record
            integration._change_reason = "demo: record actions only"
            integration.save(update_fields=["action_delivery"])
        return integration

    def _users(self) -> dict:
        User = get_user_model()
        review_groups = list(Group.objects.filter(review_queues__isnull=False).distinct())
        users = {}
        for username, (password, roles, superuser) in DEMO_USERS.items():
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com"}
            )
            user.is_staff = True
            user.is_superuser = superuser
            user.set_password(password)
            user.save()
            user.groups.add(*Group.objects.filter(name__in=roles))
            if REVIEWERS_GROUP in roles:
                user.groups.add(*review_groups)
            users[username] = user
        return users

    @transaction.atomic
    def _items(self, integration: Integration, users: dict) -> int:
        samples = [json.loads(path.read_text()) for path in sorted((DEMO_DIR / "items").glob("*.json"))]
        now = timezone.now()
        # Two rounds of traffic: one from earlier today, one from the last hour.
        for batch, hours_ago in (("a", 7), ("b", 1)):
            for index, sample in enumerate(samples):
                payload = dict(sample, external_id=f"{sample.get('external_id', index)}#{batch}")
                item = services.submit_item(integration=integration, payload=payload).item
                created = now - timedelta(hours=hours_ago, minutes=index * 7)
                self._backdate(item, created)

        pending = list(
            ReviewItem.objects.filter(integration=integration, status=ItemStatus.PENDING)
            .select_related("queue")
            .order_by("created_at")
        )
        reviewer, second = users["reviewer"], users["reviewer2"]
        for index, item in enumerate(pending):
            plan = index % 7
            if plan == 0:
                self._approve(item, reviewer, second)
            elif plan == 1:
                self._decide(
                    item, reviewer, DecisionAction.REJECT, "The answer does not follow the policy it cites."
                )
            elif plan == 2:
                self._edit(item, reviewer, second)
            elif plan == 3 and item.queue.escalation_queue_id:
                self._decide(item, reviewer, DecisionAction.ESCALATE, "Needs a specialist's judgement.")
            elif plan == 4 and item.queue.required_approvals == 2:
                self._decide(item, reviewer, DecisionAction.APPROVE, "Checked amount and recipient.")
        # The oldest undecided items ran past their deadline: timeouts apply.
        services.apply_sla_timeouts(now=now)
        # One item in review right now, so the claim countdown shows.
        first_queue = Queue.objects.filter(items__status=ItemStatus.PENDING).order_by("slug").first()
        if first_queue:
            services.claim_next(queue=first_queue, user=reviewer)
        return integration.items.count()

    def _backdate(self, item: ReviewItem, created) -> None:
        """Move a demo item's clock back, so the queues show ages and deadlines; the
        item's history says so (the history rows keep the time they were written)."""
        item.refresh_from_db()
        shift = item.created_at - created
        item.created_at = created
        fields = ["created_at"]
        for name in ("entered_queue_at", "at_risk_at", "due_at", "decided_at"):
            value = getattr(item, name)
            if value is not None:
                setattr(item, name, value - shift)
                fields.append(name)
        item._change_reason = "demo: backdated"
        item.save(update_fields=fields)

    def _codes(self, action: str) -> list[str]:
        codes = [rc.code for rc in ReasonCode.objects.filter(active=True) if rc.applies(action)]
        return codes[:1]

    def _decide(self, item: ReviewItem, user, action: str, justification: str, **extra) -> None:
        services.decide(
            item=item,
            user=user,
            action=action,
            justification=justification,
            reason_codes=self._codes(action)
            if action in (DecisionAction.REJECT, DecisionAction.EDIT)
            else [],
            checklist=[True] * len(item.queue.checklist),
            **extra,
        )

    def _approve(self, item: ReviewItem, reviewer, second) -> None:
        self._decide(item, reviewer, DecisionAction.APPROVE, "Matches the sources and the policy.")
        if item.queue.required_approvals == 2:
            self._decide(item, second, DecisionAction.APPROVE, "Second check: amount and recipient verified.")

    def _edit(self, item: ReviewItem, reviewer, second) -> None:
        text = (item.output or {}).get("text", "")
        edited = {**(item.output or {}), "text": f"{text}\n\nPlease contact us if anything here looks wrong."}
        self._decide(
            item,
            reviewer,
            DecisionAction.EDIT,
            "Added the contact line the policy asks for.",
            edited_output=edited,
        )
        if item.queue.required_approvals == 2:
            self._decide(item, second, DecisionAction.APPROVE, "Edited version checked.")
