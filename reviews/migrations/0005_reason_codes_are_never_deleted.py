"""Policy admins retire reason codes (active off) instead of deleting them:
decisions cite their codes, and a delete would rewrite those decisions."""

from django.db import migrations


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Policy admins").first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="reviews", codename="delete_reasoncode")
        )


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Policy admins").first()
    if group is not None:
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="reviews", codename="delete_reasoncode")
        )


class Migration(migrations.Migration):
    dependencies = [("reviews", "0004_outbox_permissions")]

    operations = [migrations.RunPython(revoke, grant)]
