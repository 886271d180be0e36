"""PostgreSQL holds three more promises itself, whatever code runs against it:

- history rows are never changed, not even to clear the user of a deleted account
  (accounts named on the audit trail are deactivated, never deleted);
- a reason code that a decision cites keeps its `code`;
- a revoked API key stays revoked.
"""

from django.db import migrations

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION hitl_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

APPEND_ONLY_BEFORE = """
CREATE OR REPLACE FUNCTION hitl_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'history_user_id') = (to_jsonb(OLD) - 'history_user_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

FROZEN_CODES = """
CREATE OR REPLACE FUNCTION hitl_reason_code_frozen() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM reviews_decision_reason_codes WHERE reasoncode_id = OLD.id) THEN
        RAISE EXCEPTION 'reason code % is cited by decisions: its code cannot change', OLD.code
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reviews_reasoncode_frozen BEFORE UPDATE OF code ON reviews_reasoncode
    FOR EACH ROW WHEN (OLD.code IS DISTINCT FROM NEW.code) EXECUTE FUNCTION hitl_reason_code_frozen();
"""

FINAL_REVOCATION = """
CREATE OR REPLACE FUNCTION hitl_revocation_final() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'API key % is revoked: revocation is final', OLD.prefix
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reviews_apikey_revocation_final BEFORE UPDATE OF revoked_at ON reviews_apikey
    FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at)
    EXECUTE FUNCTION hitl_revocation_final();
"""

DROP = """
DROP TRIGGER IF EXISTS reviews_reasoncode_frozen ON reviews_reasoncode;
DROP FUNCTION IF EXISTS hitl_reason_code_frozen();
DROP TRIGGER IF EXISTS reviews_apikey_revocation_final ON reviews_apikey;
DROP FUNCTION IF EXISTS hitl_revocation_final();
"""


def add(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in (APPEND_ONLY, FROZEN_CODES, FINAL_REVOCATION):
            schema_editor.execute(sql, params=None)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in (DROP, APPEND_ONLY_BEFORE):
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("reviews", "0007_audit_trail_keeps_names_and_codes")]

    operations = [migrations.RunPython(add, remove)]
