"""Writes to gate rules that the admin and `import_policy` share.

A rule's history row is a version of the rule with its conditions, so it is
written once the conditions are saved: the rule itself is saved without history
(`save_without_historical_record`), then one of these writes the version.
"""

from __future__ import annotations

from django.db import transaction

from policies.models import RULE_HISTORY, GateRule


def record_new_rule(*, rule: GateRule) -> None:
    """Write version 1 of a rule just created, with the conditions it was created with."""
    RULE_HISTORY.create_historical_record(rule, "+")


def record_rule_change(*, rule: GateRule) -> None:
    """Give `rule` a new version after it or its conditions changed.

    1. Lock the row and read the current version, so two concurrent edits get
       two different versions rather than both writing the same one.
    2. Save the version on the caller's instance: the history row this writes
       carries the new version and the conditions next to the rule as it now
       stands, which is what an item's snapshot (id, name, version) is later
       looked up against.
    """
    with transaction.atomic():
        current = GateRule.objects.select_for_update().values_list("version", flat=True).get(pk=rule.pk)
        rule.version = current + 1
        rule.save(update_fields=["version", "updated_at"])
