"""A rule's history row records its conditions as they are when the row is written."""

from __future__ import annotations

from simple_history.signals import pre_create_historical_record

from policies.models import GateRule


def record_conditions(sender, instance, history_instance, **kwargs) -> None:
    if isinstance(instance, GateRule) and instance.pk is not None:
        history_instance.conditions = [condition.as_version() for condition in instance.conditions.all()]


def connect() -> None:
    pre_create_historical_record.connect(
        record_conditions, sender=GateRule.history.model, dispatch_uid="policies.history.record_conditions"
    )
