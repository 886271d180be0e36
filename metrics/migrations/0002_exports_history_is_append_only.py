"""The export history is append-only on PostgreSQL, like every history table."""

from django.db import migrations

from reviews.migration_helpers import append_only


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0001_snapshots_summaries_exports"),
        ("reviews", "0012_attribution_triggers_and_seals"),  # the append-only function
    ]

    operations = [append_only("metrics_historicalfeedbackexport")]
