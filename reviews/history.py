"""The actor's name on every history row, written as the row is created.

simple-history records the acting user as a foreign key (`history_user`); the
name is copied next to it (`history_actor`, from `reviews.models.AuditedHistory`)
so the record still says who acted after that account is deactivated.
"""

from __future__ import annotations

from simple_history.signals import pre_create_historical_record


def record_actor_name(sender, history_instance, history_user=None, **kwargs) -> None:
    if not hasattr(history_instance, "history_actor") or history_instance.history_actor:
        return
    if history_user is not None:
        history_instance.history_actor = history_user.get_username()


def connect() -> None:
    pre_create_historical_record.connect(record_actor_name, dispatch_uid="reviews.history.record_actor_name")
