"""The gold flag was never used; gold items come with the review-quality work."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('reviews', '0009_integrations_may_record_actions_only'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='historicalreviewitem',
            name='is_gold',
        ),
        migrations.RemoveField(
            model_name='reviewitem',
            name='is_gold',
        ),
    ]
