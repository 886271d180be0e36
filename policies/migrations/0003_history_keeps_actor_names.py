"""History rows keep the actor's name next to the user reference."""

from django.db import migrations, models

from reviews.migration_helpers import backfill_actor_names


class Migration(migrations.Migration):

    dependencies = [
        ('policies', '0002_initial'),
        ('reviews', '0007_audit_trail_keeps_names_and_codes'),  # the append-only triggers exist
    ]

    operations = [
        migrations.AddField(
            model_name='historicalgatecondition',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.AddField(
            model_name='historicalgaterule',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.RunPython(
            backfill_actor_names("policies", ["historicalgatecondition", "historicalgaterule"]),
            migrations.RunPython.noop,
        ),
    ]
