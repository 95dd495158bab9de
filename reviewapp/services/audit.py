"""The audit log: append-only and hash-chained.

Every service that changes state calls `audit_record` inside its own atomic block, so
the record commits (or rolls back) with the change it describes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, models, transaction
from django.utils import timezone

from ..models import AuditEvent, ChainCheck, Store, Transaction

GENESIS_HASH = "0" * 64
# Any constant: the key of the PostgreSQL advisory lock that serialises appends.
_CHAIN_LOCK_KEY = 72_011_931


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a user, the system (a periodic job, the pipeline) or a store's API key."""

    user: Any = None
    label: str = "system"

    @classmethod
    def of(cls, who: Any) -> Actor:
        if isinstance(who, Actor):
            return who
        if who is None or isinstance(who, AnonymousUser):
            return SYSTEM
        if isinstance(who, AbstractBaseUser):
            return cls(user=who, label=who.get_username())
        if isinstance(who, str):
            return cls(label=who)
        raise TypeError(f"cannot audit an actor of type {type(who).__name__}")


SYSTEM = Actor()


def canonical_payload(event: AuditEvent) -> str:
    """The exact text that is hashed; stable across databases and Python versions."""
    return json.dumps(
        {
            "id": event.pk,
            "seq": event.seq,
            "created_at": event.created_at.isoformat(),
            "actor_id": event.actor_id,
            "actor_label": event.actor_label,
            "action": event.action,
            "object_type": event.object_type,
            "object_code": event.object_code,
            "store_id": event.store_id,
            "transaction_id": event.transaction_id,
            "before": event.before,
            "after": event.after,
            "data": event.data,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )


def chain_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{payload}".encode()).hexdigest()


def jsonable(value: Any) -> Any:
    """The value as JSON stores it, a NUL in any text shown as U+FFFD: no JSON column can hold
    one (PostgreSQL refuses the row), and a record must never be lost over what a user typed."""
    return _without_nul(json.loads(json.dumps(value, default=str)))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: Any = None,
    object_type: str = "",
    object_code: str = "",
    store: Store | None = None,
    txn: Transaction | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one record. Call inside the atomic block of the change, so both commit or neither.

    A plain insert, no lock: the sealer chains records shortly after they commit.
    """
    who = Actor.of(actor)
    if obj is not None:
        object_type = object_type or type(obj).__name__.lower()
        object_code = object_code or str(getattr(obj, "code", None) or obj.pk)
    event = AuditEvent(
        created_at=timezone.now(),
        actor=who.user,
        actor_label=who.label,
        action=action,
        object_type=object_type,
        object_code=object_code,
        store_id=store.pk if store is not None else (txn.store_id if txn is not None else None),
        transaction=txn,
        before=jsonable(before or {}),
        after=jsonable(after or {}),
        data=jsonable(data or {}),
    )
    event.save()
    return event


def audit_seal(*, batch_size: int = 5000) -> int:
    """Chain every committed, unsealed record, oldest id first. Returns how many were sealed.

    One sealer at a time (an advisory lock on PostgreSQL; SQLite serialises writers).
    Safe to run often and from several workers.
    """
    sealed = 0
    while True:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
                    if not cursor.fetchone()[0]:
                        return sealed  # another sealer is at work
            last = (
                AuditEvent.objects.filter(seq__isnull=False)
                .order_by("-seq")
                .values_list("seq", "hash")
                .first()
            )
            seq, prev_hash = (last[0], last[1]) if last else (0, GENESIS_HASH)
            batch = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:batch_size])
            if not batch:
                return sealed
            for event in batch:
                seq += 1
                event.seq = seq
                event.prev_hash = prev_hash
                event.hash = chain_hash(prev_hash, canonical_payload(event))
                prev_hash = event.hash
            _write_seals(batch)
            sealed += len(batch)
        if len(batch) < batch_size:
            return sealed


def _write_seals(batch: list[AuditEvent]) -> None:
    """Store seq, prev_hash and hash of a sealed batch: one UPDATE ... FROM unnest() on PostgreSQL
    (Django's bulk_update builds a CASE per row and column, several times slower)."""
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_update(batch, ["seq", "prev_hash", "hash"], batch_size=1000)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} AS a SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash "  # noqa: S608 - table name from the model
            "FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[]) AS v(id, seq, prev_hash, hash) "
            "WHERE a.id = v.id AND a.seq IS NULL",
            [
                [e.id for e in batch],
                [e.seq for e in batch],
                [e.prev_hash for e in batch],
                [e.hash for e in batch],
            ],
        )
        if cursor.rowcount != len(batch):
            raise RuntimeError("audit records changed while being sealed; nothing was sealed")


@dataclass(frozen=True)
class ChainReport:
    checked: int
    ok: bool
    broken_at_id: int | None = None
    problem: str = ""
    unsealed: int = 0


def audit_verify_chain(
    *, batch_size: int = 5000, progress: Callable[[int], None] | None = None
) -> ChainReport:
    """Walk the sealed chain in order, in constant memory; report the first broken link.
    `progress` hears the count checked after each batch."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    unsealed = AuditEvent.objects.filter(seq__isnull=True).count()
    while True:
        if progress is not None and checked:
            progress(checked)
        batch = list(AuditEvent.objects.filter(seq__gte=expected_seq).order_by("seq")[:batch_size])
        if not batch:
            return ChainReport(checked=checked, ok=True, unsealed=unsealed)
        for event in batch:
            if event.seq != expected_seq:
                return ChainReport(
                    checked,
                    False,
                    event.id,
                    f"record #{expected_seq} of the chain is missing (deleted)",
                    unsealed,
                )
            if event.prev_hash != prev_hash:
                return ChainReport(
                    checked, False, event.id, "prev_hash does not match the record before", unsealed
                )
            if chain_hash(event.prev_hash, canonical_payload(event)) != event.hash:
                return ChainReport(
                    checked, False, event.id, "contents do not match the hash (edited)", unsealed
                )
            prev_hash = event.hash
            expected_seq += 1
            checked += 1


# a check queued or running this long was lost with its worker: asking again starts a new one
CHECK_STALE = timedelta(minutes=15)


def chain_check_request(*, actor: Any, now: datetime | None = None) -> tuple[ChainCheck, bool]:
    """Ask for a verification of the whole chain, run by a worker: the check already queued or
    running (and False), or a new one, queued once this commits (and True)."""
    from ..tasks import verify_audit_chain_task

    now = now or timezone.now()
    live = (
        ChainCheck.objects.filter(
            state__in=[ChainCheck.State.QUEUED, ChainCheck.State.RUNNING], requested_at__gte=now - CHECK_STALE
        )
        .order_by("-requested_at")
        .first()
    )
    if live is not None:
        return live, False
    with transaction.atomic():
        check = ChainCheck.objects.create(requested_by=Actor.of(actor).user, requested_at=now)
        audit_record(actor=actor, action="audit.verify_requested", obj=check)
        check_id = check.pk
        transaction.on_commit(lambda: verify_audit_chain_task.delay(check_id))
    return check, True


def chain_check_run(*, check_id: int, now: datetime | None = None) -> str:
    """Run a requested check (once: a second delivery of it finds it taken), keeping its progress
    and then its result on the row, and logging the result."""
    now = now or timezone.now()
    taken = (
        ChainCheck.objects.filter(pk=check_id)
        .filter(
            models.Q(state=ChainCheck.State.QUEUED)
            | models.Q(state=ChainCheck.State.RUNNING, started_at__lt=now - CHECK_STALE)
        )
        .update(state=ChainCheck.State.RUNNING, started_at=now)
    )
    if not taken:
        return "taken"
    rows = ChainCheck.objects.filter(pk=check_id)
    rows.update(total=AuditEvent.objects.count())  # counted once taken: a second delivery reads nothing
    try:
        report = audit_verify_chain(progress=lambda n: rows.update(checked=n))
    except Exception as exc:
        rows.update(
            state=ChainCheck.State.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        raise
    rows.update(
        state=ChainCheck.State.DONE,
        ok=report.ok,
        checked=report.checked,
        unsealed=report.unsealed,
        broken_at_id=report.broken_at_id,
        problem=report.problem,
        finished_at=timezone.now(),
    )
    check = rows.get()
    audit_record(
        actor=SYSTEM,
        action="audit.verified",
        obj=check,
        data={"ok": report.ok, "checked": report.checked, "broken_at": report.broken_at_id},
    )
    return "intact" if report.ok else "broken"
