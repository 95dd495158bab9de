from __future__ import annotations

from django.db import connection

from reviewapp.models import AuditEvent
from reviewapp.services.audit import SYSTEM, audit_record, audit_verify_chain


def test_each_record_carries_the_hash_of_the_one_before(db) -> None:
    first = audit_record(actor=SYSTEM, action="a", object_type="x", object_code="1")
    second = audit_record(actor=SYSTEM, action="b", object_type="x", object_code="2", after={"n": 1})
    assert second.prev_hash == first.hash
    assert audit_verify_chain().ok


def test_editing_a_row_in_the_middle_is_detected(db) -> None:
    events = [
        audit_record(actor=SYSTEM, action=f"a{i}", object_type="x", object_code=str(i)) for i in range(5)
    ]
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET action = 'forged' WHERE id = %s", [events[2].id])
    report = audit_verify_chain()
    assert not report.ok
    assert report.broken_at_id == events[2].id


def test_deleting_a_row_in_the_middle_is_detected(db) -> None:
    events = [
        audit_record(actor=SYSTEM, action=f"a{i}", object_type="x", object_code=str(i)) for i in range(5)
    ]
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [events[2].id])
    report = audit_verify_chain()
    assert not report.ok
    assert report.broken_at_id == events[3].id


def test_a_user_actor_is_named(db, reviewer) -> None:
    event = audit_record(actor=reviewer, action="a", object_type="x", object_code="1")
    assert event.actor_label == "rita" and event.actor_id == reviewer.id
