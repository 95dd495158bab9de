from __future__ import annotations

from contextlib import contextmanager

from django.db import connection

from reviewapp.models import AuditEvent
from reviewapp.services.audit import SYSTEM, audit_record, audit_seal, audit_verify_chain


@contextmanager
def tampering():
    """What an attacker with database access does: on PostgreSQL, switch off the append-only trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        try:
            yield cursor
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("SET session_replication_role = DEFAULT")


def record(n: int) -> list[AuditEvent]:
    return [audit_record(actor=SYSTEM, action=f"a{i}", object_type="x", object_code=str(i)) for i in range(n)]


def test_sealing_chains_each_record_to_the_one_before(db) -> None:
    events = record(3)
    assert audit_seal() == 3
    sealed = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in sealed] == [1, 2, 3] and [e.id for e in sealed] == [e.id for e in events]
    assert sealed[1].prev_hash == sealed[0].hash and sealed[2].prev_hash == sealed[1].hash
    report = audit_verify_chain()
    assert report.ok and report.checked == 3 and report.unsealed == 0


def test_sealing_again_continues_the_chain(db) -> None:
    record(2)
    audit_seal()
    record(2)
    assert audit_seal() == 2
    assert audit_verify_chain().checked == 4


def test_editing_a_row_in_the_middle_is_detected(db) -> None:
    events = record(5)
    audit_seal()
    with tampering() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET action = 'forged' WHERE id = %s", [events[2].id]
        )
    report = audit_verify_chain()
    assert not report.ok and report.broken_at_id == events[2].id and "edited" in report.problem


def test_deleting_a_row_in_the_middle_is_detected(db) -> None:
    events = record(5)
    audit_seal()
    with tampering() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[2].id])
    report = audit_verify_chain()
    assert not report.ok and report.broken_at_id == events[3].id and "missing" in report.problem


def test_a_user_actor_is_named(db, reviewer) -> None:
    event = audit_record(actor=reviewer, action="a", object_type="x", object_code="1")
    assert event.actor_label == "rita" and event.actor_id == reviewer.id


def test_on_postgresql_the_database_refuses_to_change_a_sealed_record(db) -> None:
    import pytest
    from django.db import DatabaseError, transaction

    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's; SQLite relies on the hash chain")
    events = record(2)
    audit_seal()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEvent._meta.db_table} SET action = 'x' WHERE id = %s", [events[0].id])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[1].id])


def test_a_nul_typed_into_a_reason_is_recorded_as_a_replacement_character_not_lost(
    client, supervisor, make_transaction
) -> None:
    """No JSON column holds a NUL (PostgreSQL refuses the whole row): the reason for a legal hold,
    the original of a clip, keeps what was typed around it and the chain still verifies."""
    txn = make_transaction("settled")
    client.force_login(supervisor)
    response = client.post(
        f"/supervise/transactions/{txn.code}/hold", {"hold": "1", "reason": "court\x00 order 17"}
    )
    assert response.status_code == 302
    txn.refresh_from_db()
    assert txn.legal_hold
    event = AuditEvent.objects.get(action="transaction.legal_hold")
    assert event.data["reason"] == "court\ufffd order 17"
    audit_seal()
    assert audit_verify_chain().ok


def test_a_calibration_target_that_is_not_a_number_is_the_default(client, supervisor, store) -> None:
    client.force_login(supervisor)
    for bad in ("nan", "inf", "-inf", "x"):
        response = client.get(f"/supervise/stores/{store.code}/calibration", {"target_error": bad})
        assert response.status_code == 200
