"""claim_next_task on PostgreSQL in one round trip: pick (FOR UPDATE SKIP LOCKED), lease,
move the transaction into review and write the audit record, inside the database.

The same rules as the ORM path in reviewapp/services/review.py (_claim_queued), which
SQLite uses; tests run both (CI on PostgreSQL, `make test` on SQLite)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION reviewapp_claim_next(
    p_reviewer integer, p_supervisor boolean, p_exclude bigint[], p_now timestamptz,
    p_until timestamptz, p_action text, p_label text
) RETURNS bigint AS $$
DECLARE
    v_id bigint; v_txn bigint; v_code uuid; v_store bigint;
BEGIN
    SELECT t.id, t.transaction_id, t.code INTO v_id, v_txn, v_code
      FROM reviewapp_reviewtask t
     WHERE t.state = 'queued'
       AND (p_supervisor OR t.kind <> 'escalation')
       AND NOT (t.id = ANY(p_exclude))
       AND NOT EXISTS (SELECT 1 FROM reviewapp_decision d
                        WHERE d.transaction_id = t.transaction_id AND d.reviewer_id = p_reviewer)
     ORDER BY t.priority DESC, t.settle_by ASC, t.id ASC
     LIMIT 1
       FOR UPDATE OF t SKIP LOCKED;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE reviewapp_reviewtask
       SET state = 'assigned', assignee_id = p_reviewer, lease_expires_at = p_until, claimed_at = p_now
     WHERE id = v_id;
    UPDATE reviewapp_transaction SET state = 'in_review'
     WHERE id = v_txn AND state IN ('needs_review', 'escalated');
    SELECT store_id INTO v_store FROM reviewapp_transaction WHERE id = v_txn;
    INSERT INTO reviewapp_auditevent
        (created_at, actor_id, actor_label, action, object_type, object_code, store_id, transaction_id,
         before, after, data, prev_hash)
    VALUES (p_now, p_reviewer, p_label, p_action, 'reviewtask', v_code::text, v_store, v_txn,
            '{}'::jsonb, jsonb_build_object('lease_expires_at', p_until), '{}'::jsonb, '');
    RETURN v_id;
END;
$$ LANGUAGE plpgsql;
"""
DROP = "DROP FUNCTION IF EXISTS reviewapp_claim_next(integer, boolean, bigint[], timestamptz, timestamptz, text, text);"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("reviewapp", "0007_disputes_refunds_gold")]
    operations = [migrations.RunPython(forwards, backwards)]
