"""Gate criteria stored as data: rules with conditions, evaluated by `policies.engine`."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from policies.patterns import MAX_PATTERN_LENGTH, InvalidPattern, compile_re2
from reviews.models import AuditedHistory, RiskLevel, audited_history

# Fields a condition may name. `metadata.` takes any key below it.
FIELD_PATHS = (
    "kind",
    "integration",
    "external_id",
    "action.type",
    "action.params.",
    "output.",
    "input.",
    "signals.confidence",
    "signals.category",
    "signals.filter_flags",
    "signals.rubric_score",
    "signals.evaluator_disagreement",
    "signals.",
    "metadata.",
)
FIELD_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


class Outcome(models.TextChoices):
    BLOCK = "block", "Block"
    REVIEW = "review", "Hold for review"
    SPOT_CHECK = "spot_check", "Pass, then spot-check"
    AUTO_APPROVE = "auto_approve", "Auto-approve"


QUEUED_OUTCOMES = (Outcome.REVIEW, Outcome.SPOT_CHECK)


class Match(models.TextChoices):
    ALL = "all", "All conditions"
    ANY = "any", "Any condition"


class Mode(models.TextChoices):
    ENFORCE = "enforce", "Enforce"
    SHADOW = "shadow", "Shadow (record only)"


class Operator(models.TextChoices):
    EQ = "eq", "equals"
    NE = "ne", "does not equal"
    LT = "lt", "is less than"
    LTE = "lte", "is at most"
    GT = "gt", "is greater than"
    GTE = "gte", "is at least"
    IN = "in", "is one of"
    NOT_IN = "not_in", "is none of"
    CONTAINS = "contains", "contains"
    CONTAINS_ANY = "contains_any", "contains any of"
    EXISTS = "exists", "is present"
    NOT_EXISTS = "not_exists", "is missing"
    MATCHES = "matches", "matches the pattern"


LIST_OPERATORS = (Operator.IN, Operator.NOT_IN, Operator.CONTAINS_ANY)
VALUELESS_OPERATORS = (Operator.EXISTS, Operator.NOT_EXISTS)
ORDERING_OPERATORS = (Operator.LT, Operator.LTE, Operator.GT, Operator.GTE)


def validate_field_path(path: str) -> None:
    if not isinstance(path, str) or not FIELD_PATH_RE.match(path) or len(path) > 200:
        raise ValidationError(f"{path!r} is not a dotted field path such as signals.confidence.")
    if not any(
        path == allowed or (allowed.endswith(".") and path.startswith(allowed)) for allowed in FIELD_PATHS
    ):
        raise ValidationError(
            f"{path!r} is not a submission field. Use kind, integration, action.type, "
            "action.params.<name>, signals.<name> or metadata.<name>."
        )


def validate_condition_value(op: str, value) -> None:
    """The value a condition compares against must suit its operator."""
    if op in VALUELESS_OPERATORS:
        return
    if op in LIST_OPERATORS:
        if not isinstance(value, list) or not value:
            raise ValidationError(f"The operator {op} needs a non-empty list of values.")
        return
    if value is None:
        raise ValidationError(f"The operator {op} needs a value.")
    if op in ORDERING_OPERATORS:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValidationError(f"The operator {op} compares with a number or a string.")
        return
    if op == Operator.MATCHES:
        if not isinstance(value, str) or not value:
            raise ValidationError("The operator matches needs a regular expression.")
        if len(value) > MAX_PATTERN_LENGTH:
            raise ValidationError(f"Patterns are limited to {MAX_PATTERN_LENGTH} characters.")
        try:
            compile_re2(value)
        except InvalidPattern as exc:
            raise ValidationError(
                f"Not a regular expression the gate can run (RE2 syntax, without backreferences "
                f"or lookarounds): {exc}."
            ) from exc


class RuleVersion(AuditedHistory):
    """A rule's history row is one version of it, conditions included, so "what
    changed in version 4" is answered on the rule's own history."""

    conditions = models.JSONField(
        default=list, blank=True, help_text="The rule's conditions in this version."
    )

    class Meta:
        abstract = True


# Kept by name so a version can be written once its conditions are saved (`policies.services`).
RULE_HISTORY = audited_history(bases=[RuleVersion])


class GateRule(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(
        default=100, help_text="Lower runs first; among review rules it picks the queue."
    )
    match = models.CharField(max_length=3, choices=Match.choices, default=Match.ALL)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    queue = models.ForeignKey(
        "reviews.Queue",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="gate_rules",
        help_text="Required for review and spot-check outcomes.",
    )
    risk_level = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.ENFORCE)
    sample_rate = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Fraction (0 to 1) of matching items the rule applies to, chosen from the item id.",
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = RULE_HISTORY

    class Meta:
        ordering = ["priority", "name"]
        indexes = [models.Index(fields=["enabled", "priority"], name="gaterule_enabled_priority")]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=["block", "auto_approve"]) | Q(queue__isnull=False),
                name="gaterule_queued_outcome_has_queue",
            ),
            models.CheckConstraint(
                condition=Q(sample_rate__gte=0) & Q(sample_rate__lte=1), name="gaterule_sample_rate_fraction"
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=["block", "review", "spot_check", "auto_approve"]),
                name="gaterule_outcome_valid",
            ),
            models.CheckConstraint(condition=Q(match__in=["all", "any"]), name="gaterule_match_valid"),
            models.CheckConstraint(condition=Q(mode__in=["enforce", "shadow"]), name="gaterule_mode_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.outcome in QUEUED_OUTCOMES and self.queue_id is None:
            raise ValidationError({"queue": "Review and spot-check rules send items to a queue: choose one."})

    def snapshot(self) -> dict:
        """What an item keeps of a rule that matched it, as the rule was then."""
        return {
            "id": self.pk,
            "name": self.name,
            "version": self.version,
            "outcome": self.outcome,
            "queue": self.queue.slug if self.queue_id else None,
            "risk_level": self.risk_level,
            "description": self.description,
        }


class GateCondition(models.Model):
    rule = models.ForeignKey(GateRule, on_delete=models.CASCADE, related_name="conditions")
    field = models.CharField(max_length=200, validators=[validate_field_path])
    op = models.CharField(max_length=20, choices=Operator.choices)
    value = models.JSONField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    history = audited_history()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        if self.op in VALUELESS_OPERATORS:
            return f"{self.field} {self.get_op_display()}"
        return f"{self.field} {self.get_op_display()} {self.value!r}"

    def clean(self) -> None:
        try:
            validate_condition_value(self.op, self.value)
        except ValidationError as exc:
            raise ValidationError({"value": exc.messages}) from exc

    def as_version(self) -> dict:
        """The condition as a rule version records it."""
        return {"field": self.field, "op": self.op, "value": self.value}
