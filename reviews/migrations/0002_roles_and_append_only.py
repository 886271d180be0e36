"""Create the three staff roles with their permissions, and make decisions and
history append-only in PostgreSQL itself (UPDATE and DELETE raise), so not even
a superuser with a database shell through the app can rewrite them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

AUDITED_APPS = ("reviews", "policies")

POLICY_ADMIN_MODELS = {
    "reviews": ("queue", "reasoncode", "integration", "apikey", "backlogitem"),
    "policies": ("gaterule", "gatecondition"),
}
REVIEWER_PERMISSIONS = {
    "reviews": (
        "view_queue",
        "view_reviewitem",
        "view_decision",
        "add_decision",
        "view_reasoncode",
        "view_incident",
        "add_incident",
        "view_backlogitem",
    ),
    "policies": ("view_gaterule", "view_gatecondition"),
}


def _ensure_permissions(apps):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def create_roles(apps, schema_editor):
    _ensure_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    reviewers, _ = Group.objects.get_or_create(name="Reviewers")
    reviewers.permissions.add(
        *[
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codenames in REVIEWER_PERMISSIONS.items()
            for codename in codenames
        ]
    )

    view_all = Permission.objects.filter(content_type__app_label__in=AUDITED_APPS, codename__startswith="view_")
    compliance, _ = Group.objects.get_or_create(name="Compliance")
    compliance.permissions.add(*view_all)

    policy_admins, _ = Group.objects.get_or_create(name="Policy admins")
    policy_admins.permissions.add(*view_all)
    for app, models in POLICY_ADMIN_MODELS.items():
        for model in models:
            policy_admins.permissions.add(
                *Permission.objects.filter(
                    content_type__app_label=app,
                    content_type__model=model,
                    codename__regex=r"^(add|change|delete)_",
                )
            )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Reviewers", "Compliance", "Policy admins"]
    ).delete()


FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION hitl_append_only() RETURNS trigger AS $$
BEGIN
    -- Deleting a user may clear the history_user reference; nothing else changes.
    IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'history_user_id') = (to_jsonb(OLD) - 'history_user_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def _append_only_tables(apps):
    tables = ["reviews_decision", "reviews_decision_reason_codes"]
    for app in AUDITED_APPS:
        for model in apps.get_app_config(app).get_models():
            if model.__name__.startswith("Historical"):
                tables.append(model._meta.db_table)
    return tables


def add_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION_SQL, params=None)
    for table in _append_only_tables(apps):
        schema_editor.execute(
            f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
            "FOR EACH ROW EXECUTE FUNCTION hitl_append_only()"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in _append_only_tables(apps):
        schema_editor.execute(f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}"')
    schema_editor.execute("DROP FUNCTION IF EXISTS hitl_append_only()")


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0001_initial"),
        ("policies", "0002_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_roles, remove_roles),
        migrations.RunPython(add_triggers, drop_triggers),
    ]
