"""Items keep the strictest approval requirement of every queue they have been in,
so escalating a four-eyes item to a one-approval queue keeps its second reviewer.
Existing items take it from their queue and from the queues of their decisions."""

from django.db import migrations, models


def backfill(apps, schema_editor):
    ReviewItem = apps.get_model("reviews", "ReviewItem")
    four_eyes = ReviewItem.objects.filter(
        models.Q(queue__required_approvals__gte=2) | models.Q(decisions__queue__required_approvals__gte=2)
    )
    ReviewItem.objects.filter(pk__in=four_eyes.values("pk")).update(required_approvals=2)


class Migration(migrations.Migration):

    dependencies = [
        ('reviews', '0005_reason_codes_are_never_deleted'),
    ]

    operations = [
        migrations.AddField(
            model_name='historicalreviewitem',
            name='required_approvals',
            field=models.PositiveSmallIntegerField(default=1, help_text='The strictest approval requirement of every queue the item has been in: escalation never lowers it.'),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='required_approvals',
            field=models.PositiveSmallIntegerField(default=1, help_text='The strictest approval requirement of every queue the item has been in: escalation never lowers it.'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
