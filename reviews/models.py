"""The review domain: queues, items, decisions and what they feed.

Status fields change only in `reviews.services`; this module holds the shape of
the data, the database constraints that make impossible states impossible, and
single-row facts as properties.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from rest_framework.authtoken.models import Token
from simple_history import register as register_history
from simple_history.models import HistoricalRecords


class DecisionAction(models.TextChoices):
    APPROVE = "approve", "Approve"
    EDIT = "edit", "Edit"
    REJECT = "reject", "Reject"
    ESCALATE = "escalate", "Escalate"


class RiskLevel(models.TextChoices):
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


# Lower numbers are reviewed first (queue order is priority, then due_at, then age).
PRIORITY_BY_RISK = {RiskLevel.HIGH: 10, RiskLevel.MEDIUM: 20, RiskLevel.LOW: 30}


# --- History ------------------------------------------------------------------------


class ActorKind(models.TextChoices):
    USER = "user", "Person"
    INTEGRATION = "integration", "Integration"
    SYSTEM = "system", "System"


class AuditedHistory(models.Model):
    """Extra columns on every history table (the `bases` of each HistoricalRecords).

    `history_user` is a foreign key and names people only; `history_actor_kind` and
    `history_actor` name whoever acted (a username, an integration's slug, or a
    system task or command), as they were at the time, so a record never reads
    "changed by None". Filled in by `reviews.history` as each row is written.
    """

    history_actor_kind = models.CharField(max_length=12, choices=ActorKind.choices, blank=True)
    history_actor = models.CharField(
        max_length=150,
        blank=True,
        help_text="Who made the change, by name, as it was at the time.",
    )

    class Meta:
        abstract = True

    @property
    def actor_label(self) -> str:
        if self.history_actor_kind == ActorKind.SYSTEM:
            return f"system:{self.history_actor}"
        return self.history_actor or "unknown"


class AuditedRecords(HistoricalRecords):
    """simple-history's records, with what the audit log needs: indexes to read one
    actor's or one kind of actor's changes newest first, and no row for a save that
    touched only columns history leaves out (a login's `last_login`)."""

    def get_meta_options(self, model):
        meta = super().get_meta_options(model)
        meta["indexes"] = (
            models.Index(fields=("history_actor", "history_date")),
            models.Index(fields=("history_actor_kind", "history_date")),
        )
        return meta

    def post_save(self, instance, created, using=None, **kwargs):
        update_fields = kwargs.get("update_fields")
        if not created and update_fields and set(update_fields) <= set(self.excluded_fields):
            return
        super().post_save(instance, created, using=using, **kwargs)


def audited_history(**options) -> HistoricalRecords:
    """The history of an audited model: append-only, with the actor on each row
    (filled in as the row is written, by the receiver in `reviews.history`)."""
    options.setdefault("bases", [AuditedHistory])
    return AuditedRecords(**options)


# --- Integrations ----------------------------------------------------------------


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Integration(models.Model):
    """An AI application or agent that submits items through the API."""

    class ActionDelivery(models.TextChoices):
        WEBHOOK = "webhook", "Send to the action URL (or the executor registered for the action type)"
        RECORD = "record", "Record only: nothing is called, the approved action is marked executed"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    webhook_secret = models.CharField(
        max_length=100,
        default=new_webhook_secret,
        help_text="Signs callbacks and action requests (shown once by create_integration).",
    )
    previous_webhook_secret = models.CharField(
        max_length=100,
        blank=True,
        help_text="During a rotation, webhooks are signed with both secrets.",
    )
    callback_url = models.URLField(max_length=2000, blank=True)
    action_url = models.URLField(max_length=2000, blank=True)
    action_delivery = models.CharField(
        max_length=10,
        choices=ActionDelivery.choices,
        default=ActionDelivery.WEBHOOK,
        help_text="How approved actions are carried out. Record only is for demos and trials.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = audited_history(excluded_fields=["webhook_secret", "previous_webhook_secret"])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKeyQuerySet(models.QuerySet):
    def usable(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, integration__is_active=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """One of an integration's API keys; only a hash of the key is stored.

    Keys look like ``hitl_<prefix>.<secret>``. The prefix finds the row, the
    SHA-256 of the whole key proves it. Keys carry 256 bits of randomness, so a
    fast hash is as strong as a slow one here and keeps authentication cheap.
    """

    PREFIX_LENGTH = 12

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()
    history = audited_history(excluded_fields=["hashed_key", "last_used_at"])

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.integration} / {self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def split_key(cls, key: str) -> tuple[str, str] | None:
        if not key.startswith("hitl_") or "." not in key:
            return None
        prefix = key[len("hitl_") :].split(".", 1)[0]
        if len(prefix) != cls.PREFIX_LENGTH:
            return None
        return prefix, key


class StaffToken(Token):
    """DRF's token for people using the API, as the admin lists it: by a prefix, never
    the whole key (it is shown once, by `manage.py drf_create_token`)."""

    class Meta:
        proxy = True
        verbose_name = "staff API token"

    def __str__(self) -> str:
        return f"{self.key[:6]}… ({self.user})"


# --- Queues and reason codes -----------------------------------------------------------


# The three staff roles (SPEC section 2), created by a data migration.
REVIEWERS_GROUP = "Reviewers"
COMPLIANCE_GROUP = "Compliance"
POLICY_ADMINS_GROUP = "Policy admins"


class QueueQuerySet(models.QuerySet):
    def reviewable_by(self, user) -> QueueQuerySet:
        """Queues the user may review: superusers all; others need the Reviewers
        role and membership of one of the queue's reviewer groups."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        has_role = models.Exists(Group.objects.filter(name=REVIEWERS_GROUP, user=user))
        # A subquery, not a join: no duplicate rows to spoil counts annotated on top.
        member_of = self.model.reviewer_groups.through.objects.filter(group__user=user).values("queue_id")
        return self.filter(has_role, pk__in=member_of)


class Queue(models.Model):
    class TimeoutOutcome(models.TextChoices):
        REJECT = "reject", "Reject as expired"
        ESCALATE = "escalate", "Escalate"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    sla_minutes = models.PositiveIntegerField(default=240)
    required_approvals = models.PositiveSmallIntegerField(
        default=1,
        choices=[(1, "One reviewer"), (2, "Two different reviewers (four-eyes)")],
    )
    checklist = models.JSONField(
        default=list,
        blank=True,
        help_text="Statements the reviewer must tick before approving, one per entry.",
    )
    reviewer_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="review_queues",
        help_text="Members of these groups (who also hold the Reviewers role) may review this queue.",
    )
    escalation_queue = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="escalations_from"
    )
    timeout_outcome = models.CharField(
        max_length=10, choices=TimeoutOutcome.choices, default=TimeoutOutcome.ESCALATE
    )
    bulk_approve_allowed = models.BooleanField(
        default=False, help_text="Low-risk queues only: allows bulk approval in the admin."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = QueueQuerySet.as_manager()
    history = audited_history(m2m_fields=[reviewer_groups])

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(required_approvals__in=[1, 2]), name="queue_required_approvals_1_or_2"
            ),
            models.CheckConstraint(condition=Q(sla_minutes__gt=0), name="queue_sla_positive"),
            models.CheckConstraint(
                condition=Q(timeout_outcome__in=["reject", "escalate"]), name="queue_timeout_outcome_valid"
            ),
            models.CheckConstraint(
                condition=~Q(escalation_queue=models.F("id")), name="queue_not_escalating_to_itself"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.checklist, list) or not all(
            isinstance(entry, str) and entry.strip() for entry in self.checklist
        ):
            raise ValidationError({"checklist": "The checklist is a list of non-empty statements."})
        if self.pk and self.escalation_queue_id == self.pk:
            raise ValidationError({"escalation_queue": "A queue cannot escalate to itself."})

    @property
    def sla(self) -> timedelta:
        return timedelta(minutes=self.sla_minutes)

    @property
    def is_four_eyes(self) -> bool:
        return self.required_approvals >= 2


class ReasonCode(models.Model):
    code = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=200)
    applies_to = models.JSONField(
        default=list,
        help_text="The decision actions this code may accompany: approve, edit, reject, escalate.",
    )
    active = models.BooleanField(default=True)
    creates_backlog_item = models.BooleanField(
        default=False, help_text="A rejection or edit with this code opens or updates a backlog item."
    )

    history = audited_history()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code}: {self.label}"

    def clean(self) -> None:
        valid = set(DecisionAction.values)
        if (
            not isinstance(self.applies_to, list)
            or not self.applies_to
            or not set(self.applies_to) <= valid
            or len(set(self.applies_to)) != len(self.applies_to)
        ):
            raise ValidationError(
                {"applies_to": f"Choose one or more of: {', '.join(DecisionAction.values)}."}
            )
        if self.pk and self.is_cited:
            stored = ReasonCode.objects.filter(pk=self.pk).values_list("code", flat=True).first()
            if stored is not None and stored != self.code:
                raise ValidationError(
                    {"code": f"Decisions cite {stored!r}, so its code cannot change; add a new code instead."}
                )

    def applies(self, action: str) -> bool:
        return action in (self.applies_to or [])

    @property
    def is_cited(self) -> bool:
        """Once a decision cites a code, the code itself is frozen (label and active may change)."""
        return bool(self.pk) and self.decisions.exists()


# --- Review items ------------------------------------------------------------------------


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    EDITED = "edited", "Edited"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    AUTO_APPROVED = "auto_approved", "Auto-approved"
    BLOCKED = "blocked", "Blocked"


OPEN_STATUSES = (ItemStatus.PENDING, ItemStatus.IN_REVIEW)
APPROVED_STATUSES = (ItemStatus.APPROVED, ItemStatus.EDITED, ItemStatus.AUTO_APPROVED)


class ExecutionStatus(models.TextChoices):
    NOT_REQUIRED = "not_required", "Not required"
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ItemKind(models.TextChoices):
    OUTPUT = "output", "Output"
    ACTION = "action", "Action"


class ReviewItemQuerySet(models.QuerySet):
    def open(self) -> ReviewItemQuerySet:
        return self.filter(status__in=OPEN_STATUSES)

    def claimable(self, now=None) -> ReviewItemQuerySet:
        """Open items nobody holds: pending, or in review with a lapsed claim."""
        now = now or timezone.now()
        return self.filter(
            Q(status=ItemStatus.PENDING) | Q(status=ItemStatus.IN_REVIEW, claim_expires_at__lte=now)
        )

    def at_risk(self, now=None) -> ReviewItemQuerySet:
        now = now or timezone.now()
        return self.open().filter(at_risk_at__lte=now, due_at__gt=now)

    def overdue(self, now=None) -> ReviewItemQuerySet:
        now = now or timezone.now()
        return self.open().filter(due_at__lte=now)

    def in_review_order(self) -> ReviewItemQuerySet:
        return self.order_by("priority", "due_at", "created_at")

    def visible_to_integration(self, integration: Integration) -> ReviewItemQuerySet:
        # Spot-check copies and gold items are internal: never in the integration's list.
        # NOT EXISTS rather than a join on `gold` that keeps the missing rows: PostgreSQL
        # plans the anti-join with real estimates, so a page walks the integration's index
        # by creation time instead of sorting every item it ever sent.
        return self.filter(integration=integration, spot_check_of__isnull=True).exclude(
            Exists(GoldAnswer.objects.filter(item=OuterRef("pk")))
        )

    def reviewable_by(self, user) -> ReviewItemQuerySet:
        if user.is_superuser:
            return self
        return self.filter(queue__in=Queue.objects.reviewable_by(user))


class ReviewItem(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    integration = models.ForeignKey(Integration, on_delete=models.PROTECT, related_name="items")
    external_id = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=10, choices=ItemKind.choices)

    # What the integration sent. Never changed after submission.
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    action = models.JSONField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)
    signals = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)

    # Why the gate decided what it did: snapshots of the rules as they were.
    matched_rules = models.JSONField(default=list, blank=True)
    shadow_matches = models.JSONField(default=list, blank=True)
    risk_level = models.CharField(max_length=10, choices=RiskLevel.choices, blank=True)

    queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.PROTECT, related_name="items")
    status = models.CharField(max_length=20, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    priority = models.PositiveSmallIntegerField(default=PRIORITY_BY_RISK[RiskLevel.MEDIUM])
    review_round = models.PositiveSmallIntegerField(
        default=1, help_text="Increases each time the item is escalated to another queue."
    )
    required_approvals = models.PositiveSmallIntegerField(
        default=1,
        help_text="The strictest approval requirement of every queue the item has been in: "
        "escalation never lowers it.",
    )
    entered_queue_at = models.DateTimeField(null=True, blank=True)
    at_risk_at = models.DateTimeField(null=True, blank=True)
    at_risk_flagged_at = models.DateTimeField(
        null=True, blank=True, help_text="When the SLA sweep flagged the item at half its SLA."
    )
    due_at = models.DateTimeField(null=True, blank=True)

    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="claimed_items",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)

    # What the reviewer approved (or the original, when approved as is).
    final_output = models.JSONField(null=True, blank=True)
    final_action = models.JSONField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    execution_status = models.CharField(
        max_length=20, choices=ExecutionStatus.choices, default=ExecutionStatus.NOT_REQUIRED
    )

    # What the executor actually ran, kept apart from the proposal and the approval.
    executed_action = models.JSONField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)

    spot_check_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="spot_checks"
    )

    idempotency_key = models.CharField(max_length=255, blank=True)
    request_hash = models.CharField(max_length=64, blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReviewItemQuerySet.as_manager()
    # The submitted payload is immutable, so history keeps the state, not copies of it.
    # Its history grows several rows per item: only the columns the timeline and the
    # audit log look rows up by (the item, its queue, the date, the actor) are indexed.
    history = audited_history(
        excluded_fields=["input", "output", "action", "context", "signals", "metadata", "request_hash"],
        history_change_reason_field=models.TextField(null=True),
        no_db_index=["integration", "claimed_by", "spot_check_of"],
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["queue", "status", "priority", "due_at"], name="item_queue_order"),
            models.Index(fields=["status", "due_at"], name="item_status_due"),
            models.Index(fields=["status", "claim_expires_at"], name="item_status_claim"),
            models.Index(fields=["integration", "created_at"], name="item_integration_created"),
            models.Index(fields=["integration", "external_id"], name="item_integration_external"),
            models.Index(fields=["created_at"], name="item_created"),
            models.Index(fields=["decided_at"], name="item_decided"),
            # Metrics: what each queue decided (or let expire) in a window, and how long it
            # took, read from the index alone (metrics.selectors); with the item's key, for
            # leaving gold items out without reading the rows.
            models.Index(
                fields=["queue", "decided_at"],
                include=["status", "entered_queue_at", "due_at", "id"],
                name="item_queue_decided",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="item_idempotency_key_unique_per_integration",
            ),
            models.CheckConstraint(
                condition=Q(kind="output") | Q(action__isnull=False), name="item_action_has_action"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["pending", "in_review"]) | Q(queue__isnull=False),
                name="item_open_has_queue",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status="in_review", claimed_by__isnull=False, claim_expires_at__isnull=False)
                    | (~Q(status="in_review") & Q(claimed_by__isnull=True, claim_expires_at__isnull=True))
                ),
                name="item_claim_only_in_review",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["rejected", "expired", "cancelled", "blocked"])
                | Q(final_output__isnull=True, final_action__isnull=True),
                name="item_unapproved_has_no_final_version",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["approved", "edited", "auto_approved"])
                | Q(execution_status="not_required"),
                name="item_executes_only_when_approved",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id or self.id} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_final(self) -> bool:
        return not self.is_open

    @property
    def is_spot_check(self) -> bool:
        return self.spot_check_of_id is not None

    @property
    def is_gold(self) -> bool:
        """A gold item: seeded with a known right answer to measure review quality."""
        try:
            return self.gold is not None
        except GoldAnswer.DoesNotExist:
            return False

    @property
    def never_executes(self) -> bool:
        """Spot-check copies are reviewed after the fact and gold items only measure
        reviewers: approving either runs nothing."""
        return self.is_spot_check or self.is_gold

    def claim_is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return (
            self.status == ItemStatus.IN_REVIEW
            and self.claim_expires_at is not None
            and self.claim_expires_at > now
        )

    def is_claimed_by_other(self, user, now=None) -> bool:
        return self.claim_is_active(now) and self.claimed_by_id != user.pk

    def is_at_risk(self, now=None) -> bool:
        now = now or timezone.now()
        return bool(self.is_open and self.at_risk_at and self.due_at and self.at_risk_at <= now < self.due_at)

    def is_overdue(self, now=None) -> bool:
        now = now or timezone.now()
        return bool(self.is_open and self.due_at and self.due_at <= now)

    @property
    def approvals_needed(self) -> int:
        """Approvals from different reviewers that make the item final: the strictest
        requirement it has met on its way, or its queue's, whichever is higher."""
        current = self.queue.required_approvals if self.queue_id else 1
        return max(self.required_approvals, current)

    @property
    def may_be_bulk_approved(self) -> bool:
        """Only in a queue marked for it, and never an item that needs two reviewers
        (one kept four-eyes from an earlier queue included): someone must open it."""
        return bool(self.queue_id and self.queue.bulk_approve_allowed and self.approvals_needed == 1)

    def can_be_reviewed_by(self, user) -> bool:
        return (
            self.queue_id is not None and Queue.objects.reviewable_by(user).filter(pk=self.queue_id).exists()
        )


class Decision(models.Model):
    """A reviewer's decision. Append-only: never updated, never deleted.

    `round` counts the item's passes through a queue (escalation starts a new
    one); `step` is the approval step within the round (four-eyes has two).
    The constraints keep one decision per step, one final decision per item,
    and at most one approval per reviewer per round (so both approvals of a
    four-eyes queue always come from different people).
    """

    item = models.ForeignKey(ReviewItem, on_delete=models.PROTECT, related_name="decisions")
    # Indexed with the queue below (decision_reviewer_queue), which serves lookups by reviewer too.
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions", db_index=False
    )
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="decisions")
    action = models.CharField(max_length=10, choices=DecisionAction.choices)
    justification = models.TextField()
    reason_codes = models.ManyToManyField(ReasonCode, blank=True, related_name="decisions")
    cited_codes = models.JSONField(
        default=list, blank=True, help_text="The reason codes as the reviewer gave them, kept as they were."
    )
    edited_output = models.JSONField(null=True, blank=True)
    edited_action = models.JSONField(null=True, blank=True)
    checklist = models.JSONField(default=list, blank=True)
    round = models.PositiveSmallIntegerField()
    step = models.PositiveSmallIntegerField()
    is_final = models.BooleanField(default=False)
    seconds_spent = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    # Written once: its history is the one "created" event the audit log shows (looked
    # up by item, queue, date and actor; never by reviewer id, the actor names them).
    history = audited_history(no_db_index=["reviewer"])

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["created_at"], name="decision_created"),  # the list, newest first
            models.Index(fields=["queue", "created_at"], name="decision_queue_created"),
            # Covering, for the metrics: each reviewer's decisions in a window, read in
            # reviewer order from the index alone (and the counts by queue and action).
            models.Index(
                fields=["reviewer", "created_at"],
                include=["queue", "seconds_spent", "action"],
                name="decision_reviewer_created",
            ),
            # Whether someone decided in given queues (the item list's reviewer filter):
            # one probe per person, not a read of everything they ever decided.
            models.Index(fields=["reviewer", "queue"], name="decision_reviewer_queue"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(justification=""), name="decision_justification_required"),
            models.CheckConstraint(
                condition=Q(action__in=["approve", "edit", "reject", "escalate"]),
                name="decision_action_valid",
            ),
            models.CheckConstraint(
                condition=~Q(action="edit") | Q(edited_output__isnull=False) | Q(edited_action__isnull=False),
                name="decision_edit_has_edited_version",
            ),
            models.CheckConstraint(
                condition=~Q(action="escalate") | Q(is_final=False), name="decision_escalation_not_final"
            ),
            models.UniqueConstraint(fields=["item", "round", "step"], name="decision_one_per_step"),
            models.UniqueConstraint(
                fields=["item"], condition=Q(is_final=True), name="decision_one_final_per_item"
            ),
            models.UniqueConstraint(
                fields=["item", "round", "reviewer"],
                condition=Q(action__in=["approve", "edit"]),
                name="decision_four_eyes_distinct_reviewers",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.reviewer} on {self.item_id}"

    @property
    def is_approval(self) -> bool:
        return self.action in (DecisionAction.APPROVE, DecisionAction.EDIT)


class GoldAnswer(models.Model):
    """The known right answer of a gold item: a copy of an earlier item seeded into a
    queue, reviewed like any other (nothing on the item tells it apart), never
    executed and never reported to the integration. Kept apart from the item so
    that no page or answer a reviewer sees carries it."""

    class Answer(models.TextChoices):
        APPROVE = "approve", "Approve (an edit agrees too)"
        REJECT = "reject", "Reject"

    item = models.OneToOneField(ReviewItem, on_delete=models.PROTECT, related_name="gold")
    answer = models.CharField(max_length=10, choices=Answer.choices)
    copied_from = models.ForeignKey(
        ReviewItem,
        on_delete=models.PROTECT,
        related_name="gold_copies",
        help_text="The item it was copied from.",
    )
    note = models.TextField(
        blank=True, help_text="Why this is the right answer (for compliance, not reviewers)."
    )
    seeded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    history = audited_history()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(answer__in=["approve", "reject"]), name="gold_answer_valid"),
        ]

    def __str__(self) -> str:
        return f"Gold answer {self.get_answer_display().lower()} for {self.item_id}"

    def agrees_with(self, action: str) -> bool:
        if self.answer == self.Answer.APPROVE:
            return action in (DecisionAction.APPROVE, DecisionAction.EDIT)
        return action == DecisionAction.REJECT


# --- Feedback: backlog items and incidents ---------------------------------------------------


class BacklogItem(models.Model):
    """A root cause to fix, raised by rejections and edits whose reason code asks for it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        RESOLVED = "resolved", "Resolved"
        WONT_FIX = "wont_fix", "Won't fix"

    title = models.CharField(max_length=300)
    reason_code = models.ForeignKey(ReasonCode, on_delete=models.PROTECT, related_name="backlog_items")
    queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="backlog_items"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    notes = models.TextField(blank=True)
    decisions = models.ManyToManyField(Decision, blank=True, related_name="backlog_items")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audited_history()

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["reason_code", "queue"],
                condition=Q(status__in=["open", "in_progress"]),
                name="backlog_one_open_per_code_and_queue",
            )
        ]

    def __str__(self) -> str:
        return self.title


class Incident(models.Model):
    """Something harmful that passed the gate or a reviewer."""

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    class Source(models.TextChoices):
        INTEGRATION = "integration", "Reported by the integration"
        REVIEWER = "reviewer", "Reported by a reviewer"
        SPOT_CHECK = "spot_check", "Spot check rejected"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    item = models.ForeignKey(ReviewItem, on_delete=models.PROTECT, related_name="incidents")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    description = models.TextField()
    source = models.CharField(max_length=20, choices=Source.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # The decision that let the item through, if a reviewer did (null when the gate did).
    decision = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="incidents"
    )
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reported_incidents",
    )
    reported_by_integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.PROTECT, related_name="reported_incidents"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    history = audited_history()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_at"], name="incident_created")]
        constraints = [
            models.CheckConstraint(condition=~Q(description=""), name="incident_description_required"),
        ]

    def __str__(self) -> str:
        return f"{self.get_severity_display()} incident on {self.item_id}"


# --- Outbox: consequences of decisions, delivered after commit ------------------------------------


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class OutboxMessage(models.Model):
    """One consequence of a final state (a callback or an action to execute), written
    in the same transaction as the state change and delivered after commit.

    `msg_id` is the `webhook-id` of every attempt, so receivers dedupe on it; an
    action also carries `Idempotency-Key: <item id>`. A worker owns an attempt
    while `lease_until` is in the future; a crashed worker's lease runs out and
    the sweep hands the message to another.
    """

    class Kind(models.TextChoices):
        CALLBACK = "callback", "Callback webhook"
        EXECUTE = "execute", "Execute action"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    item = models.ForeignKey(ReviewItem, on_delete=models.PROTECT, related_name="outbox_messages")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    msg_id = models.CharField(max_length=64, unique=True, default=new_message_id, editable=False)
    url = models.URLField(max_length=2000, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=8, help_text="Raised when an admin retries.")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    # The payload is the item's content (not for every reader of the log) and never
    # changes; the lease, dispatch and retry-clock columns are the worker's
    # bookkeeping, claimed by compare-and-set updates. Each attempt is its own record.
    history = audited_history(
        excluded_fields=["payload", "lease_until", "dispatched_at", "attempts", "next_attempt_at"]
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due")]
        constraints = [
            # One execution per item, ever: the heart of "never twice".
            models.UniqueConstraint(
                fields=["item"], condition=Q(kind="execute"), name="outbox_one_execution_per_item"
            ),
            models.UniqueConstraint(
                fields=["item"], condition=Q(kind="callback"), name="outbox_one_callback_per_item"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.item_id} ({self.get_status_display()})"


class DeliveryAttempt(models.Model):
    """One HTTP attempt at an outbox message: what came back and how long it took."""

    message = models.ForeignKey(OutboxMessage, on_delete=models.PROTECT, related_name="delivery_attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    history = audited_history()

    class Meta:
        ordering = ["message", "number"]
        constraints = [
            models.UniqueConstraint(fields=["message", "number"], name="attempt_number_unique_per_message")
        ]

    def __str__(self) -> str:
        outcome = self.status_code or self.error[:40]
        return f"Attempt {self.number}: {outcome}"


# --- Audit: hash chains and their checks ----------------------------------------------------


class AuditChainHead(models.Model):
    """The last seal of one chain; locked while a seal is added (`reviews.chain`)."""

    chain = models.CharField(max_length=32, primary_key=True)
    seq = models.PositiveBigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"{self.chain} at {self.seq}"


class AuditSeal(models.Model):
    """One link of a hash chain: the hashes of one sealed row, and of the link before."""

    chain = models.CharField(max_length=32)
    seq = models.PositiveBigIntegerField()
    model = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    fields = models.JSONField(help_text="A hash of each column of the row as it was sealed.")
    content_hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["chain", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="seal_one_per_place_in_chain"),
            models.UniqueConstraint(fields=["model", "object_id"], name="seal_one_per_row"),
        ]

    def __str__(self) -> str:
        return f"{self.chain} #{self.seq}: {self.model} {self.object_id}"


class AuditCheck(models.Model):
    """One run of `verify_audit` (by the daily task or by hand): what it found."""

    ran_at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField()
    checked = models.PositiveBigIntegerField(default=0)
    broken_link = models.TextField(blank=True)
    heads = models.JSONField(default=dict, help_text="Each chain's last seal: keep a copy elsewhere.")
    actor = models.CharField(max_length=150)

    class Meta:
        ordering = ["-ran_at"]
        get_latest_by = "ran_at"

    def __str__(self) -> str:
        return f"Audit check {self.ran_at:%Y-%m-%d %H:%M}: {'intact' if self.ok else 'broken'}"


# People and roles are audited too: who was made a reviewer, and by whom. Passwords
# and login times are not history.
register_history(
    User,
    app="reviews",
    records_class=AuditedRecords,
    bases=[AuditedHistory],
    excluded_fields=["password", "last_login"],
    m2m_fields=["groups"],
)
register_history(
    Group, app="reviews", records_class=AuditedRecords, bases=[AuditedHistory], m2m_fields=["permissions"]
)
