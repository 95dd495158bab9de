"""Media retention: footage and clips are deleted when the store's retention runs out.

Decisions, carts, charges and the audit chain stay forever; what goes is the video
and the images. Each purge keeps the SHA-256 of every file it deleted (in the audit
record), so a file produced later in a dispute can still be matched to what we held.
Nothing that an open task, an open dispute or a legal hold needs is ever purged.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction as db
from django.db.models import Q
from django.utils import timezone

from ..media import sha256_of
from ..models import Clip, EvidenceEvent, Footage, Transaction
from ..states import OPEN_TASK_STATES, TransactionState
from .audit import SYSTEM, audit_record
from .disputes import dispute_window_open

FINAL_STATES = (TransactionState.SETTLED, TransactionState.VOIDED)


def _file_digest(field: Any) -> dict[str, str] | None:
    if not field or not field.name:
        return None
    try:
        with field.storage.open(field.name, "rb") as handle:
            digest = sha256_of(handle)
    except FileNotFoundError:
        digest = "missing"
    return {"name": field.name, "sha256": digest}


def _delete(field: Any) -> None:
    if field and field.name:
        field.storage.delete(field.name)


def _held_transactions() -> Q:
    """Transactions whose media must stay: an open task, a dispute, a legal hold, or not final yet."""
    return (
        Q(legal_hold=True)
        | Q(state=TransactionState.DISPUTED)
        | Q(tasks__state__in=OPEN_TASK_STATES)
        | ~Q(state__in=FINAL_STATES)
    )


def footage_purge_due(*, now: datetime | None = None, limit: int = 200) -> list[Footage]:
    now = now or timezone.now()
    due = []
    candidates = Footage.objects.filter(purged_at__isnull=True).exclude(file="").select_related("store")
    for footage in candidates.order_by("started_at")[: limit * 5]:
        if footage.started_at > now - timedelta(days=footage.store.footage_retention_days):
            continue
        if Transaction.objects.filter(footage=footage).filter(_held_transactions()).exists():
            continue
        due.append(footage)
        if len(due) >= limit:
            break
    return due


def clips_purge_due(*, now: datetime | None = None, limit: int = 500) -> list[Transaction]:
    """Final transactions past the dispute window and the clip retention, with media left."""
    now = now or timezone.now()
    due = []
    with_media = (
        Transaction.objects.filter(state__in=FINAL_STATES, clips__purged_at__isnull=True)
        .exclude(_held_transactions())
        .select_related("store")
        .distinct()
    )
    for txn in with_media.order_by("id")[: limit * 5]:
        final_at = txn.settled_at or txn.voided_at or txn.decided_at
        if final_at is None:
            continue
        keep_days = txn.store.dispute_window_days + txn.store.clip_retention_days
        if final_at <= now - timedelta(days=keep_days):
            due.append(txn)
        if len(due) >= limit:
            break
    return due


def evidence_missing(footage: Footage, *, now: datetime) -> list[int]:
    """Carts of this footage that settled on their own and may still be disputed, with no clips:
    the footage is the only record of what the camera saw them take."""
    txns = (
        Transaction.objects.filter(footage=footage, clips__isnull=True)
        .exclude(final_amount=0)  # nothing charged: nothing to refund, nothing to dispute
        .select_related("store")
        .distinct()
    )
    return [t.pk for t in txns if dispute_window_open(t, now=now)]


def media_purge(*, now: datetime | None = None, actor: Any = SYSTEM) -> dict[str, int]:
    """The periodic job: purge what is due. Returns how many footage files and transactions' clips went.

    A footage file goes only once the carts on it that may still be disputed have their clips:
    those are cut first (media tasks, queued here), and the file goes at a later run."""
    from ..tasks import prepare_review_task

    now = now or timezone.now()
    purged_footage = 0
    for footage in footage_purge_due(now=now):
        missing = evidence_missing(footage, now=now)
        if missing:
            for txn_id in missing:
                db.on_commit(lambda txn_id=txn_id: prepare_review_task.delay(txn_id))
            continue
        with db.atomic():
            locked = Footage.objects.select_for_update().get(pk=footage.pk)
            if locked.purged_at is not None:
                continue
            files = [f for f in (_file_digest(locked.file),) if f]
            reason = f"footage retention of {footage.store.footage_retention_days} days"
            Footage.objects.filter(pk=locked.pk).update(purged_at=now, purge_reason=reason)
            audit_record(
                actor=actor,
                action="media.purged",
                obj=locked,
                store=footage.store,
                data={"reason": reason, "files": files, "recorded_sha256": locked.sha256},
            )
            db.on_commit(lambda field=locked.file: _delete(field))
            purged_footage += 1
    purged_txns = 0
    for txn in clips_purge_due(now=now):
        with db.atomic():
            clips = list(Clip.objects.select_for_update().filter(transaction=txn, purged_at__isnull=True))
            events = list(EvidenceEvent.objects.filter(transaction=txn))
            fields = [c.file for c in clips] + [c.redacted_file for c in clips] + [c.poster for c in clips]
            fields += [e.before_crop for e in events] + [e.after_crop for e in events]
            files = [d for d in (_file_digest(f) for f in fields) if d]
            reason = (
                f"clip retention: {txn.store.clip_retention_days} days after the "
                f"{txn.store.dispute_window_days}-day dispute window"
            )
            Clip.objects.filter(pk__in=[c.pk for c in clips]).update(purged_at=now, purge_reason=reason)
            audit_record(
                actor=actor, action="media.purged", obj=txn, txn=txn, data={"reason": reason, "files": files}
            )
            db.on_commit(lambda fields=fields: [_delete(f) for f in fields])
            purged_txns += 1
    return {"footage": purged_footage, "transactions": purged_txns}


def legal_hold_set(*, txn: Transaction, hold: bool, actor: Any, reason: str) -> None:
    """A supervisor keeps (or releases) a transaction's media whatever the retention says."""
    with db.atomic():
        if Transaction.objects.filter(pk=txn.pk).exclude(legal_hold=hold).update(legal_hold=hold) != 1:
            return
        audit_record(
            actor=actor,
            action="transaction.legal_hold" if hold else "transaction.legal_hold_released",
            obj=txn,
            txn=txn,
            before={"legal_hold": not hold},
            after={"legal_hold": hold},
            data={"reason": reason[:500]},
        )
    txn.legal_hold = hold
