"""The gold answers' history is append-only on PostgreSQL, like every history table."""

from django.db import migrations

from reviews.migration_helpers import append_only


class Migration(migrations.Migration):
    dependencies = [("reviews", "0016_gold_items")]

    operations = [append_only("reviews_historicalgoldanswer")]
