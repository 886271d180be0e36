"""Items keep the strictest approval requirement of every queue they have been in,
so escalating a four-eyes item to a one-approval queue keeps its second reviewer.
Existing items take it from every queue their history shows them in (a timeout
escalation leaves no decision behind, only a history row) and their decisions'."""

from django.db import migrations, models


def backfill(apps, schema_editor):
    Queue = apps.get_model("reviews", "Queue")
    ReviewItem = apps.get_model("reviews", "ReviewItem")
    HistoricalReviewItem = apps.get_model("reviews", "HistoricalReviewItem")
    four_eyes = Queue.objects.filter(required_approvals__gte=2).values("pk")
    been_there = HistoricalReviewItem.objects.filter(queue_id__in=four_eyes).values("id")
    ReviewItem.objects.filter(
        models.Q(queue__in=four_eyes) | models.Q(decisions__queue__in=four_eyes) | models.Q(pk__in=been_there)
    ).update(required_approvals=2)


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
