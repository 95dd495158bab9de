"""claim_next_task on PostgreSQL in one statement: `reviewapp_claim_task` replaces
`reviewapp_claim_next` (migration 0008).

The rules are those of 0008 and of the ORM path in reviewapp/services/review.py, which
SQLite uses: a queued task, escalations only for supervisors, never one the reviewer
asked to skip or one on a transaction they already decided; highest priority, then the
earliest deadline, then the oldest; FOR UPDATE SKIP LOCKED, so two claimers never wait
on or take the same row. What changes is the cost per claim:

- With `p_held` it first returns the task the reviewer already holds (the check
  claim_next_task made in its own query), so a claim is one round trip in all.
- It returns the task's row, so the caller builds the task from it instead of
  fetching it again; the transaction's store comes from the UPDATE ... RETURNING.
- With `p_async` (the claim is its own transaction) it turns synchronous_commit off
  for that transaction only: a lease need not survive a database crash (a lost claim
  returns the task to the queue and the reviewer's decision is refused). Inside a
  caller's transaction it leaves the caller's durability alone.

The task_claim_order index (ReviewTask.Meta.indexes) now ends with id, the last key
of the ORDER BY, so the LIMIT 1 reads the first row that passes instead of sorting
every queued task that shares the top priority and deadline.
"""

import importlib

from django.db import migrations, models

CREATE = """
CREATE OR REPLACE FUNCTION reviewapp_claim_task(
    p_reviewer integer, p_supervisor boolean, p_exclude bigint[], p_now timestamptz,
    p_until timestamptz, p_action text, p_label text, p_held boolean, p_async boolean
) RETURNS SETOF reviewapp_reviewtask AS $$
DECLARE
    v_task reviewapp_reviewtask;
    v_id bigint;
    v_store bigint;
BEGIN
    IF p_held THEN
        -- with an on-deck task held too, the older claim is the current one
        SELECT t.* INTO v_task
          FROM reviewapp_reviewtask t
         WHERE t.state = 'assigned' AND t.assignee_id = p_reviewer AND t.lease_expires_at > p_now
         ORDER BY t.claimed_at, t.id
         LIMIT 1;
        IF FOUND THEN
            RETURN NEXT v_task;
            RETURN;
        END IF;
    END IF;
    SELECT t.id INTO v_id
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
        RETURN;
    END IF;
    IF p_async THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    UPDATE reviewapp_reviewtask
       SET state = 'assigned', assignee_id = p_reviewer, lease_expires_at = p_until, claimed_at = p_now
     WHERE id = v_id
    RETURNING * INTO v_task;
    UPDATE reviewapp_transaction SET state = 'in_review'
     WHERE id = v_task.transaction_id AND state IN ('needs_review', 'escalated')
    RETURNING store_id INTO v_store;
    IF NOT FOUND THEN
        SELECT store_id INTO v_store FROM reviewapp_transaction WHERE id = v_task.transaction_id;
    END IF;
    INSERT INTO reviewapp_auditevent
        (created_at, actor_id, actor_label, action, object_type, object_code, store_id, transaction_id,
         before, after, data, prev_hash)
    VALUES (p_now, p_reviewer, p_label, p_action, 'reviewtask', v_task.code::text, v_store,
            v_task.transaction_id, '{}'::jsonb, jsonb_build_object('lease_expires_at', p_until),
            '{}'::jsonb, '');
    RETURN NEXT v_task;
END;
$$ LANGUAGE plpgsql;
"""
DROP = (
    "DROP FUNCTION IF EXISTS reviewapp_claim_task("
    "integer, boolean, bigint[], timestamptz, timestamptz, text, text, boolean, boolean);"
)


def _previous():  # the module name starts with a digit: no plain import
    return importlib.import_module("reviewapp.migrations.0008_claim_function")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)
        schema_editor.execute(_previous().DROP)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous().CREATE)
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("reviewapp", "0011_dashboard_indexes")]
    operations = [
        migrations.RemoveIndex(model_name="reviewtask", name="task_claim_order"),
        migrations.AddIndex(
            model_name="reviewtask",
            index=models.Index(
                condition=models.Q(("state", "queued")),
                fields=["-priority", "settle_by", "id"],
                name="task_claim_order",
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
