"""`manage.py verify_audit_log`: reads only, finds an edited or deleted record, exits 1 when broken."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reviewapp.models import AuditEvent
from reviewapp.services.audit import SYSTEM, audit_record, audit_seal

from .test_audit_log import tampering


def sealed(n: int) -> list[AuditEvent]:
    events = [
        audit_record(actor=SYSTEM, action=f"a{i}", object_type="x", object_code=str(i)) for i in range(n)
    ]
    audit_seal()
    return events


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_audit_log", *args, stdout=out)
    return out.getvalue()


def test_it_reports_an_intact_chain(db) -> None:
    sealed(5)
    output = verify()
    assert "checked 5 sealed records" in output and "intact" in output


def test_it_does_not_seal(db) -> None:
    sealed(2)
    audit_record(actor=SYSTEM, action="late", object_type="x", object_code="late")
    assert "1 not sealed yet" in verify()
    assert AuditEvent.objects.filter(seq__isnull=True).count() == 1


def test_with_seal_it_seals_first(db) -> None:
    audit_record(actor=SYSTEM, action="late", object_type="x", object_code="late")
    output = verify("--seal")
    assert "sealed 1 pending" in output and "checked 1 sealed" in output


def test_it_finds_a_row_edited_in_the_middle(db) -> None:
    events = sealed(6)
    with tampering() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET data = '{{}}', actor_label = 'someone' WHERE id = %s",
            [events[3].id],
        )
    with pytest.raises(CommandError) as caught:
        verify()
    assert caught.value.returncode == 1
    assert f"record id {events[3].id} (seq 4)" in str(caught.value) and "edited" in str(caught.value)


def test_it_finds_a_row_deleted_in_the_middle(db) -> None:
    events = sealed(6)
    with tampering() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[2].id])
    with pytest.raises(CommandError) as caught:
        verify()
    assert caught.value.returncode == 1
    assert f"record id {events[3].id} (seq 4)" in str(caught.value) and "missing" in str(caught.value)


def test_it_finds_a_rehashed_row_by_its_broken_link(db) -> None:
    """An attacker who recomputes the edited row's own hash still breaks the next link."""
    from reviewapp.services.audit import canonical_payload, chain_hash

    events = sealed(4)
    forged = AuditEvent.objects.get(pk=events[1].id)
    forged.action = "forged"
    new_hash = chain_hash(forged.prev_hash, canonical_payload(forged))
    with tampering() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET action = 'forged', hash = %s WHERE id = %s",
            [new_hash, events[1].id],
        )
    with pytest.raises(CommandError) as caught:
        verify()
    assert f"record id {events[2].id} (seq 3)" in str(caught.value) and "prev_hash" in str(caught.value)
