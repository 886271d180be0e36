"""The audit trail keeps what it said: decisions store the codes they cite, history rows
the actor's name, and staff API tokens are listed by prefix (the StaffToken proxy).

Existing rows are filled in here. On PostgreSQL the append-only triggers are paused
for that one backfill, inside this migration's transaction."""

from django.db import migrations, models

from reviews.migration_helpers import backfill_actor_names, paused_triggers

HISTORY_MODELS = [
    "historicalapikey",
    "historicalbacklogitem",
    "historicalincident",
    "historicalintegration",
    "historicalqueue",
    "historicalreasoncode",
    "historicalreviewitem",
]


def backfill_cited_codes(apps, schema_editor):
    Decision = apps.get_model("reviews", "Decision")

    def fill():
        for decision in Decision.objects.prefetch_related("reason_codes").iterator(chunk_size=2000):
            codes = sorted(code.code for code in decision.reason_codes.all())
            if codes:
                Decision.objects.filter(pk=decision.pk).update(cited_codes=codes)

    paused_triggers(schema_editor, ["reviews_decision"], fill)


class Migration(migrations.Migration):

    dependencies = [
        ('authtoken', '0004_alter_tokenproxy_options'),
        ('reviews', '0006_item_keeps_strictest_approvals'),
    ]

    operations = [
        migrations.CreateModel(
            name='StaffToken',
            fields=[
            ],
            options={
                'verbose_name': 'staff API token',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('authtoken.token',),
        ),
        migrations.AddField(
            model_name='decision',
            name='cited_codes',
            field=models.JSONField(blank=True, default=list, help_text='The reason codes as the reviewer gave them, kept as they were.'),
        ),
        migrations.AddField(
            model_name='historicalapikey',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.AddField(
            model_name='historicalbacklogitem',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.AddField(
            model_name='historicalincident',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.AddField(
            model_name='historicalintegration',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.AddField(
            model_name='historicalqueue',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.AddField(
            model_name='historicalreasoncode',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.AddField(
            model_name='historicalreviewitem',
            name='history_actor',
            field=models.CharField(blank=True, help_text='Who made the change, by name, as it was at the time.', max_length=150),
        ),
        migrations.RunPython(backfill_cited_codes, migrations.RunPython.noop),
        migrations.RunPython(backfill_actor_names("reviews", HISTORY_MODELS), migrations.RunPython.noop),
    ]
