"""Load demo data: the example policy, users for each role, realistic items in every
state, and two weeks of earlier reviews for the metrics dashboard's trends (with their
backlog snapshots and last week's summary). Safe to run again: users get their demo
passwords back, the policy is re-imported (no change when unchanged), items are only
created once, and snapshots are only added where a step has none."""

from __future__ import annotations

import io
import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from policies.engine import evaluate
from policies.io import import_policy
from reviews import services
from reviews.management.audited import AuditedCommand
from reviews.models import (
    COMPLIANCE_GROUP,
    POLICY_ADMINS_GROUP,
    REVIEWERS_GROUP,
    DecisionAction,
    Incident,
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
    "reviewer3": ("reviewer3-demo-pw", [REVIEWERS_GROUP], False),
    "compliance": ("compliance-demo-pw", [COMPLIANCE_GROUP], False),
    "policy": ("policy-demo-pw", [POLICY_ADMINS_GROUP], False),
}


HISTORY_DAYS = 14


@contextmanager
def at(moment: datetime):
    """Run the services as if it were `moment`: they read the time from `timezone.now()`,
    and what they write (decisions above all, append-only and sealed) cannot be
    backdated afterwards. Only the demo's history does this."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


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
            self.stdout.write(f"Loaded {count} demo items, {HISTORY_DAYS} days of them reviewed in the past.")
        # By name: metrics reads reviews, never the other way round. Fills the steps since
        # the last run too (make run has no beat to take snapshots).
        call_command("backfill_snapshots", days=HISTORY_DAYS, weekly_summaries=True, stdout=io.StringIO())
        self.stdout.write("Backlog snapshots and last week's summary written for the metrics dashboard.")

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
        History(self, integration, users, samples, now).run()
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


class History:
    """Two weeks of earlier traffic, reviewed as it came: every submission, claim and
    decision goes through the services at its own moment (`at`), in time order, so the
    metrics dashboard has trends, workload and review-quality figures to show. The same
    every time (a seeded random generator). What it shows:

    - the last week is busier than the one before, and waits grow over its last days;
    - reviewer2 takes most of `general` and approves everything there (overload, and a
      long run of approvals), and approves gold items whose right answer is reject;
    - reviewer3 clears part of `regulated` in seconds (fast reviews), and the reviewer
      carries nearly all of `senior` (overload);
    - some items are missed: `regulated` ones escalate to `senior` on timeout, `payments`
      ones expire (SLA breaches); a few approved items later turn out harmful (incidents).
    """

    def __init__(self, command: Command, integration: Integration, users: dict, samples: list, now: datetime):
        self.command, self.integration, self.now = command, integration, now
        self.reviewer, self.second, self.fast = users["reviewer"], users["reviewer2"], users["reviewer3"]
        self.admin = users["admin"]
        self.rng = random.Random(HISTORY_DAYS)
        self.steps: list[tuple[datetime, int, Callable[[], None]]] = []
        self.items: dict[str, ReviewItem] = {}
        self.first_of: dict[tuple[str | None, int], str] = {}  # the first item of a queue on a day
        self.approved: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
        self.queues = {queue.slug: queue for queue in Queue.objects.all()}
        self.routes: dict[str | None, list[dict]] = defaultdict(list)
        for sample in samples:
            gate = evaluate(sample, item_id=sample.get("external_id", ""), integration_slug=integration.slug)
            self.routes[gate.queue_slug if gate.status == ItemStatus.PENDING else None].append(sample)

    def step(self, moment: datetime, run: Callable[[], None]) -> None:
        self.steps.append((moment, len(self.steps), run))

    def run(self) -> None:
        for days_ago in range(HISTORY_DAYS, 0, -1):
            self.day(days_ago)
        for moment, _, run in sorted(self.steps, key=lambda step: step[:2]):
            with at(moment):
                run()
        self.incidents()

    def day(self, days_ago: int) -> None:
        start = (self.now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
        busy = days_ago <= 7
        # Items a day by the queue the gate sends them to (None: passed straight through).
        mix = {
            "general": 4 if busy else 2,
            "regulated": 3 if busy else 2,
            "senior": 1,
            "payments": days_ago % 2,
        }
        mix[None] = 1
        for slug, count in mix.items():
            for n in range(count):
                if not self.routes[slug]:
                    continue
                sample = self.routes[slug][(days_ago * 3 + n) % len(self.routes[slug])]
                key = f"{sample.get('external_id', 'item')}#d{days_ago}-{n}"
                submitted = start + timedelta(hours=self.rng.uniform(7, 17))
                self.first_of.setdefault((slug, days_ago), key)
                self.step(submitted, self.submitter(key, sample))
                if slug is not None:
                    self.review(key, slug, submitted, days_ago, n)
        if busy and days_ago % 2 == 0:
            self.gold(days_ago, start)

    def submitter(self, key: str, sample: dict) -> Callable[[], None]:
        def submit() -> None:
            payload = dict(sample, external_id=key)
            self.items[key] = services.submit_item(integration=self.integration, payload=payload).item

        return submit

    def minutes(self, low: float, high: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(low, high))

    def review(self, key: str, slug: str, submitted: datetime, days_ago: int, n: int) -> None:
        """Who reviews the item, when, how long it takes them and what they decide."""
        rng, late = self.rng, days_ago <= 3
        if slug == "general":
            if rng.random() < 0.8:
                wait, user, action = (
                    self.minutes(20, 420 if late else 180),
                    self.second,
                    DecisionAction.APPROVE,
                )
                spent = timedelta(seconds=rng.uniform(60, 150))
            else:
                wait, user, spent = self.minutes(20, 180), self.reviewer, self.minutes(4, 11)
                action = rng.choice([DecisionAction.APPROVE, DecisionAction.EDIT, DecisionAction.REJECT])
            self.decision(key, submitted + wait, user, action, spent)
        elif slug == "regulated":
            if n == 2 and days_ago % 3 == 0:  # nobody picks it up: the timeout escalates it to senior
                due = submitted + self.queues[slug].sla + timedelta(minutes=1)
                self.step(due, lambda: services.apply_sla_timeouts(now=due))
                self.decision(
                    key, due + self.minutes(20, 60), self.reviewer, DecisionAction.APPROVE, self.minutes(3, 8)
                )
            elif rng.random() < 0.4:
                spent = timedelta(seconds=rng.uniform(8, 25))
                self.decision(key, submitted + self.minutes(5, 60), self.fast, DecisionAction.APPROVE, spent)
            else:
                action = rng.choices(
                    [DecisionAction.APPROVE, DecisionAction.EDIT, DecisionAction.REJECT], [5, 3, 2]
                )[0]
                self.decision(
                    key, submitted + self.minutes(15, 150), self.reviewer, action, self.minutes(4, 12)
                )
        elif slug == "senior":
            user = self.fast if rng.random() < 0.15 else self.reviewer  # the reviewer carries senior
            action = rng.choices([DecisionAction.APPROVE, DecisionAction.REJECT], [3, 2])[0]
            self.decision(key, submitted + self.minutes(10, 80), user, action, self.minutes(3, 9))
        elif slug == "payments":
            if days_ago % 4 == 1:  # missed: the timeout rejects it as expired
                due = submitted + self.queues[slug].sla + timedelta(minutes=1)
                self.step(due, lambda: services.apply_sla_timeouts(now=due))
                return
            first = submitted + self.minutes(5, 20)
            self.decision(key, first, self.reviewer, DecisionAction.APPROVE, self.minutes(2, 5))
            action = rng.choices([DecisionAction.APPROVE, DecisionAction.REJECT], [4, 1])[0]
            self.decision(key, first + self.minutes(12, 20), self.second, action, self.minutes(2, 6))

    def decision(self, key: str, claimed: datetime, user, action: str, spent: timedelta) -> None:
        """`user` claims the item at `claimed` and decides `spent` later (within the claim)."""
        decided = claimed + min(spent, timedelta(minutes=14))
        self.step(claimed, lambda: services.claim(item=self.items[key], user=user))

        def decide() -> None:
            item = self.items[key]
            item.refresh_from_db()
            chosen = action
            if chosen == DecisionAction.EDIT and item.kind != "output":
                chosen = DecisionAction.APPROVE  # the demo edits outputs only
            if chosen == DecisionAction.EDIT:
                self.command._edit(item, user, None)
            elif chosen == DecisionAction.REJECT:
                self.command._decide(item, user, chosen, "Does not follow the policy it cites.")
            else:
                self.command._decide(item, user, chosen, "Checked against the sources and the policy.")
            item.refresh_from_db()
            if item.status == ItemStatus.APPROVED:
                self.approved[user.username].append((key, decided))

        self.step(decided, decide)

    def gold(self, days_ago: int, start: datetime) -> None:
        """Two gold items: one whose right answer is reject, in general (reviewer2 approves
        it), one whose right answer is approve, in regulated (the reviewer approves it)."""
        for slug, answer, user in (
            ("general", "reject", self.second),
            ("regulated", "approve", self.reviewer),
        ):
            source, key = self.first_of[(slug, days_ago)], f"gold-{slug}-{days_ago}"
            seeded = start + timedelta(hours=18)

            def seed(source=source, key=key, slug=slug, answer=answer) -> None:
                self.items[key] = services.seed_gold_item(
                    item=self.items[source], queue=self.queues[slug], answer=answer, user=self.admin,
                    note="Demo: a known right answer.",
                )  # fmt: skip

            self.step(seeded, seed)
            self.decision(
                key, seeded + self.minutes(10, 90), user, DecisionAction.APPROVE, self.minutes(1, 6)
            )

    def incidents(self) -> None:
        """Harm found later in two approved items (reported a day after the approval)."""
        for username, severity in ((self.second.username, "high"), (self.fast.username, "critical")):
            approvals = [
                (key, when) for key, when in self.approved[username] if when < self.now - timedelta(days=2)
            ]
            if not approvals:
                continue
            key, when = approvals[len(approvals) // 2]
            reported = when + timedelta(days=1)
            with at(reported):
                incident = services.report_incident(
                    item=self.items[key],
                    severity=severity,
                    description="The approved answer gave a customer wrong, harmful guidance.",
                    user=self.admin,
                )
            Incident.objects.filter(pk=incident.pk).update(
                created_at=reported
            )  # its default is the real time
