"""The audit log: append-only and hash-chained.

Every service that changes state calls `audit_record` inside its own atomic block, so
the record commits (or rolls back) with the change it describes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, transaction
from django.utils import timezone

from ..models import AuditEvent, Store, Transaction

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
    return json.loads(json.dumps(value, default=str))


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


def audit_verify_chain(*, batch_size: int = 5000) -> ChainReport:
    """Walk the sealed chain in order, in constant memory; report the first broken link."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    unsealed = AuditEvent.objects.filter(seq__isnull=True).count()
    while True:
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
