"""On PostgreSQL the database itself keeps the audit log append-only: a sealed record
cannot be updated and no record can be deleted. (SQLite relies on the model and the
hash chain.)"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION reviewapp_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit records are never deleted';
    END IF;
    IF OLD.seq IS NOT NULL THEN
        RAISE EXCEPTION 'sealed audit records are never changed';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reviewapp_audit_append_only BEFORE UPDATE OR DELETE ON reviewapp_auditevent
    FOR EACH ROW EXECUTE FUNCTION reviewapp_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS reviewapp_audit_append_only ON reviewapp_auditevent;
DROP FUNCTION IF EXISTS reviewapp_audit_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("reviewapp", "0004_audit_sealed_chain")]
    operations = [migrations.RunPython(forwards, backwards)]
