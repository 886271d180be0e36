"""The audit trail's data: actor kinds on the rows written before they existed,
append-only triggers on the new history and audit tables, and the first seals.

- History rows that name an actor were written by people (only people had names).
- On PostgreSQL every history table, the seals and the audit checks refuse UPDATE
  and DELETE, like the decisions.
- Decisions, rule versions and integration key events written before the chains
  existed are sealed now, oldest first, so `verify_audit` passes on an upgraded
  database and covers everything from here on.
"""

from django.db import migrations

from reviews import chain
from reviews.migration_helpers import paused_triggers

AUDITED_APPS = ("reviews", "policies")
APPEND_ONLY_TABLES = ("reviews_auditseal", "reviews_auditcheck")


def _history_models(apps):
    return [
        model
        for app in AUDITED_APPS
        for model in apps.get_app_config(app).get_models()
        if model.__name__.startswith("Historical") and hasattr(model, "history_actor_kind")
    ]


def backfill_kinds(apps, schema_editor):
    models_ = _history_models(apps)

    def fill():
        for model in models_:
            model.objects.exclude(history_actor="").update(history_actor_kind="user")

    paused_triggers(schema_editor, [model._meta.db_table for model in models_], fill)


def _all_append_only(apps):
    tables = list(APPEND_ONLY_TABLES)
    for app in AUDITED_APPS:
        for model in apps.get_app_config(app).get_models():
            if model.__name__.startswith("Historical"):
                tables.append(model._meta.db_table)
    return tables


def add_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in _all_append_only(apps):
        schema_editor.execute(f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}"')
        schema_editor.execute(
            f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
            "FOR EACH ROW EXECUTE FUNCTION hitl_append_only()"
        )


def drop_new_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}"')


def seal_existing(apps, schema_editor):
    for label in (
        "reviews.Decision",
        "policies.HistoricalGateRule",
        "reviews.HistoricalIntegration",
        "reviews.HistoricalApiKey",
    ):
        chain.seal_unsealed(apps.get_model(label))


def forget_seals(apps, schema_editor):
    def clear():
        apps.get_model("reviews", "AuditSeal").objects.all().delete()
        apps.get_model("reviews", "AuditChainHead").objects.all().delete()

    paused_triggers(schema_editor, ["reviews_auditseal"], clear)


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0011_audit_trail"),
        ("policies", "0004_audit_trail"),
    ]

    operations = [
        migrations.RunPython(add_triggers, drop_new_triggers),
        migrations.RunPython(backfill_kinds, migrations.RunPython.noop),
        migrations.RunPython(seal_existing, forget_seals),
    ]
