"""Fill PostgreSQL with a realistic load: `generate_load_data --items N --decisions-per-item K --days D`."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from policies.engine import evaluate
from policies.io import PolicyError, import_policy
from reviews import services
from reviews.management import loadgen
from reviews.management.audited import AuditedCommand
from reviews.models import REVIEWERS_GROUP, Integration, ItemStatus, Queue, ReasonCode, ReviewItem

DEMO_DIR = Path(settings.BASE_DIR) / "demo"
BOTS = ("support-bot", "ops-agent", "writer")
REVIEWERS_PER_QUEUE = 8
# How the first integration of a seed remembers what the seed was generated with.
SIGNATURE = re.compile(
    r"\(seed (?P<seed>\d+): (?P<days>\d+) days to (?P<end>\S+), (?P<k>[\d.]+) decisions per reviewed item\)"
)


class Command(AuditedCommand):
    help = (
        "Fill PostgreSQL with generated items, decisions (four-eyes, edits, rejections, escalations), "
        "history, seals, deliveries and incidents over a span of days, through COPY. Idempotent per "
        "--seed: running it again adds only what is missing. Refuses a database with items it did not "
        "make, unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, required=True, help="Items in all, for this seed.")
        parser.add_argument(
            "--decisions-per-item",
            type=float,
            default=1.3,
            dest="decisions_per_item",
            help="Mean decisions per item that went to review (default 1.3): four-eyes queues give two, "
            "escalations one more.",
        )
        parser.add_argument(
            "--days", type=int, default=365, help="Span the items are spread over (default 365)."
        )
        parser.add_argument(
            "--seed", type=int, default=1, help="The same seed gives the same data (default 1)."
        )
        parser.add_argument(
            "--force", action="store_true", help="Add load data to a database with other items in it."
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=os.cpu_count() or 1,
            help="Worker processes making the rows (default: one per CPU).",
        )
        parser.add_argument("--no-analyze", action="store_true", help="Skip ANALYZE at the end.")

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                "generate_load_data writes through PostgreSQL's COPY: set DATABASE_URL=postgres://... "
                f"(this database is {connection.vendor})."
            )
        items, k, days, seed = (
            options["items"],
            options["decisions_per_item"],
            options["days"],
            options["seed"],
        )
        if items < 1:
            raise CommandError("--items must be at least 1.")
        if days < 1:
            raise CommandError("--days must be at least 1.")
        if not 0 <= k <= 10:
            raise CommandError("--decisions-per-item is a mean between 0 and 10.")
        if options["processes"] < 1:
            raise CommandError("--processes must be at least 1.")
        if seed < 0:
            raise CommandError("--seed must be 0 or more.")

        real = ReviewItem.objects.exclude(integration__slug__startswith=loadgen.PREFIX)
        if not options["force"] and real.exists():
            raise CommandError(
                "This database holds items that generate_load_data did not make (real or demo data). "
                "Point DATABASE_URL at a database for load tests, or pass --force to add load data anyway."
            )

        integrations, end = self._integrations(seed=seed, days=days, k=k)
        existing = ReviewItem.objects.filter(integration__in=[i[0] for i in integrations]).count()
        if existing >= items:
            self.stdout.write(f"Seed {seed} already has {existing:,} items: nothing to do.")
            return
        queues, usernames = self._queues_and_reviewers()
        templates = self._templates(integrations[0][1])
        codes = ReasonCode.objects.filter(active=True)
        generator = loadgen.Generator(
            seed=seed,
            end=end,
            days=days,
            escalation_share=self._escalation_share(k, templates, queues),
            templates=templates,
            queues=queues,
            integrations=integrations,
            codes=loadgen.reason_codes_by_action(codes),
            usernames=usernames,
        )
        writer = loadgen.Writer({code.code: code.pk for code in codes}, usernames)

        started = time.monotonic()
        progress = Progress(self.stderr, existing, items, started)
        done = loadgen.run(
            generator, writer, start=existing, stop=items, processes=options["processes"], progress=progress
        )
        progress.finish()
        elapsed = time.monotonic() - started
        if not options["no_analyze"]:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        rate = done.items / elapsed if elapsed else 0
        self.stdout.write(
            f"Added {done.items:,} items and {done.decisions:,} decisions for seed {seed} in {elapsed:.1f} s "
            f"({rate:,.0f} items/s); the seed now has {existing + done.items:,} items over {days} days "
            f"to {end:%Y-%m-%d %H:%M} UTC."
        )
        self.stdout.write("For the dashboard's backlog trends: python manage.py backfill_snapshots")

    # --- setup ------------------------------------------------------------------------

    def _integrations(self, *, seed: int, days: int, k: float) -> tuple[list[tuple[int, str, str]], datetime]:
        slugs = [f"{loadgen.PREFIX}{seed}-{bot}" for bot in BOTS]
        found = {i.slug: i for i in Integration.objects.filter(slug__in=slugs)}
        if found:
            first = found.get(slugs[0])
            signature = SIGNATURE.search(first.name) if first else None
            if signature is None:
                raise CommandError(
                    f"Integrations {', '.join(found)} exist but were not made for seed {seed}."
                )
            made_with = (int(signature["days"]), float(signature["k"]))
            if made_with != (days, k):
                days_then, k_then = made_with
                raise CommandError(
                    f"Seed {seed} was generated with --days {days_then} --decisions-per-item {k_then:g}: "
                    "use those to add to it, or another --seed."
                )
            end = datetime.fromisoformat(signature["end"])
        else:
            end = timezone.now().astimezone(UTC).replace(microsecond=0)
        result = []
        for n, (bot, slug) in enumerate(zip(BOTS, slugs, strict=True)):
            integration = found.get(slug)
            if integration is None:
                label = f"Load data {bot}"
                if n == 0:
                    label += (
                        f" (seed {seed}: {days} days to {end.isoformat()}, {k:g} decisions per reviewed item)"
                    )
                integration, _ = services.create_integration(name=label, slug=slug)
            callback = "" if bot == "writer" else f"https://hooks.example.com/{bot}"
            result.append((integration.pk, integration.slug, callback))
        return result, end

    def _queues_and_reviewers(self) -> tuple[dict[int, loadgen.QueuePlan], dict[int, str]]:
        if not Queue.objects.exists():
            try:
                import_policy(json.loads((DEMO_DIR / "policy.json").read_text(encoding="utf-8")))
            except PolicyError as exc:
                raise CommandError(f"The demo policy did not import: {exc}") from exc
        role = Group.objects.get_or_create(name=REVIEWERS_GROUP)[0]
        User = get_user_model()
        plans, usernames = {}, {}
        for queue in Queue.objects.prefetch_related("reviewer_groups").order_by("pk"):
            groups = list(queue.reviewer_groups.all())
            if not groups:
                group = Group.objects.get_or_create(name=f"{loadgen.PREFIX}{queue.slug}-reviewers")[0]
                queue.reviewer_groups.add(group)
                groups = [group]
            reviewers = []
            for n in range(REVIEWERS_PER_QUEUE):
                username = f"{loadgen.PREFIX}{queue.slug}-reviewer-{n}"
                user, created = User.objects.get_or_create(username=username, defaults={"is_staff": True})
                if created:
                    user.set_unusable_password()
                    user.save(update_fields=["password"])
                    user.groups.add(role, *groups)
                reviewers.append(user.pk)
                usernames[user.pk] = username
            plans[queue.pk] = loadgen.QueuePlan(
                id=queue.pk,
                slug=queue.slug,
                sla=queue.sla,
                required_approvals=queue.required_approvals,
                escalation_id=queue.escalation_queue_id,
                reviewers=tuple(reviewers),
                checklist_length=len(queue.checklist or []),
            )
        return plans, usernames

    def _templates(self, integration_slug: str) -> list[loadgen.Template]:
        templates = []
        for path in sorted((DEMO_DIR / "items").glob("*.json")):
            payload = json.loads(path.read_text(encoding="utf-8"))
            gate = evaluate(payload, item_id=uuid.UUID(int=len(templates)), integration_slug=integration_slug)
            status = (
                gate.status if gate.status in (ItemStatus.BLOCKED, ItemStatus.PENDING) else "auto_approved"
            )
            templates.append(
                loadgen.Template(
                    kind=payload["kind"],
                    columns={
                        name: loadgen.raw_json(payload.get(name))
                        if name in ("output", "action")
                        else loadgen.raw_json(payload.get(name) or {})
                        for name in ("input", "output", "action", "context", "signals", "metadata")
                    },
                    external_id=payload.get("external_id") or path.stem,
                    status=status,
                    queue_id=gate.queue_id,
                    risk_level=gate.risk_level or "",
                    matched_rules=loadgen.raw_json(gate.matched_rules),
                    shadow_matches=loadgen.raw_json(gate.shadow_matches),
                )
            )
        if not any(t.status == ItemStatus.PENDING for t in templates):
            raise CommandError(
                "No demo submission goes to review under the policy in force: nothing to review."
            )
        return templates

    @staticmethod
    def _escalation_share(k: float, templates: list[loadgen.Template], queues) -> float:
        """The share of first reviews that escalate, so reviewed items average about `k` decisions."""
        reviewed = [queues[t.queue_id] for t in templates if t.status == ItemStatus.PENDING]
        base = sum(q.required_approvals for q in reviewed) / len(reviewed)
        return max(0.0, min(0.9, k - base))


class Progress:
    """A one-line progress bar on stderr: items written, rate, time left."""

    def __init__(self, out, existing: int, target: int, started: float):
        self.out, self.existing, self.total, self.started = out, existing, target - existing, started
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < 5 and done < total:
            return
        self.last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed else 0
        left = (total - done) / rate if rate else 0
        width = 30
        filled = int(width * done / total)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} items "
            f"({100 * done / total:.0f}%), {rate:,.0f}/s, {timedelta(seconds=int(left))} left"
        )
        self.out.write(("\r" + line) if self.tty else line, ending="" if self.tty else "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("", ending="\n")
            self.out.flush()
