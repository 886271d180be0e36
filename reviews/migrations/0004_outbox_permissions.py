"""Roles see deliveries: everyone reads them (reviewers on their own items, as the
admin scopes them); policy admins may retry failed ones."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = ["view_outboxmessage", "view_deliveryattempt"]
GRANTS = {
    "Reviewers": VIEW,
    "Compliance": VIEW,
    "Policy admins": [*VIEW, "change_outboxmessage"],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("reviews")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*Permission.objects.filter(content_type__app_label="reviews", codename__in=codenames))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="reviews", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [("reviews", "0003_outbox")]

    operations = [migrations.RunPython(grant, revoke)]
