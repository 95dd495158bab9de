"""Review tasks: claiming, leases, decisions."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction as db
from django.utils import timezone

from ..models import ReviewTask, Transaction
from ..states import TaskState, TransactionState, check_transition
from .audit import SYSTEM, audit_record


def lease_release_expired(*, now: datetime | None = None) -> int:
    """Return every task whose lease ran out to the queue. Safe to run on many workers at once."""
    now = now or timezone.now()
    released = 0
    expired = ReviewTask.objects.filter(state=TaskState.ASSIGNED, lease_expires_at__lte=now).values_list(
        "pk", "assignee_id"
    )
    for pk, assignee_id in list(expired[:1000]):
        with db.atomic():
            # compare-and-set: only if still assigned to the same reviewer with an expired lease
            changed = ReviewTask.objects.filter(
                pk=pk, state=TaskState.ASSIGNED, assignee_id=assignee_id, lease_expires_at__lte=now
            ).update(state=TaskState.QUEUED, assignee=None, lease_expires_at=None, claimed_at=None)
            if changed != 1:
                continue
            check_transition(TaskState, TaskState.ASSIGNED, TaskState.QUEUED)
            task = ReviewTask.objects.select_related("transaction").get(pk=pk)
            txn = task.transaction
            if txn.state == TransactionState.IN_REVIEW:
                check_transition(TransactionState, txn.state, TransactionState.NEEDS_REVIEW)
                Transaction.objects.filter(pk=txn.pk, state=TransactionState.IN_REVIEW).update(
                    state=TransactionState.NEEDS_REVIEW
                )
            audit_record(
                actor=SYSTEM,
                action="task.lease_expired",
                obj=task,
                store=txn.store,
                txn=txn,
                before={"state": TaskState.ASSIGNED, "assignee_id": assignee_id},
                after={"state": TaskState.QUEUED},
            )
            released += 1
    return released
