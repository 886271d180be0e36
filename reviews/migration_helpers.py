"""Steps that data migrations share. They take the historical models from `apps` and
touch no current model class, so they keep working as the models change."""

from __future__ import annotations

from django.db import migrations
from django.db.models import OuterRef, Subquery


def paused_triggers(schema_editor, tables, statement):
    """Run `statement()` with the append-only triggers of `tables` off (PostgreSQL only)."""
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        for table in tables:
            schema_editor.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER "{table}_append_only"')
    statement()
    if postgres:
        for table in tables:
            schema_editor.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER "{table}_append_only"')


def backfill_actor_names(app_label, model_names):
    def backfill(apps, schema_editor):
        User = apps.get_model("auth", "User")
        models_ = [apps.get_model(app_label, name) for name in model_names]
        username = Subquery(User.objects.filter(pk=OuterRef("history_user_id")).values("username")[:1])

        def fill():
            for model in models_:
                model.objects.filter(history_user__isnull=False).update(history_actor=username)

        paused_triggers(schema_editor, [model._meta.db_table for model in models_], fill)

    return backfill


def append_only(*tables):
    """A RunPython operation that puts the append-only trigger (the function
    `hitl_append_only`, from reviews 0008) on `tables`, on PostgreSQL; reversible."""

    def add(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            schema_editor.execute(f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}"')
            schema_editor.execute(
                f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
                "FOR EACH ROW EXECUTE FUNCTION hitl_append_only()"
            )

    def drop(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            schema_editor.execute(f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}"')

    return migrations.RunPython(add, drop)
