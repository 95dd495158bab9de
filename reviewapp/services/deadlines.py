"""Periodic work on the queue: priorities rise as deadlines near; a missed deadline gets the store's rule."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction as db
from django.db.models import Q
from django.utils import timezone

from ..models import DeadlineRule, ReviewTask, Store, TaskKind, Transaction
from ..states import TaskState, TransactionState, check_transition
from .audit import SYSTEM, audit_record

# (minutes before the deadline, the priority a queued task has at least by then)
PRIORITY_STEPS = ((10, 30), (30, 20), (60, 10))
# a shopper's receipt about to miss the store's target (minutes left, priority at least)
RECEIPT_STEPS = ((5, 45), (15, 40))
DEADLINE_ESCALATION_PRIORITY = 60


def priority_bump(*, now: datetime | None = None) -> int:
    """Raise the priority of queued tasks as their settle-by deadline nears. Returns rows changed."""
    now = now or timezone.now()
    changed = 0
    for minutes, floor in PRIORITY_STEPS:
        changed += ReviewTask.objects.filter(
            state=TaskState.QUEUED, settle_by__lte=now + timedelta(minutes=minutes), priority__lt=floor
        ).update(priority=floor)
    # receipts: the shopper left at exited_at and should have a receipt within the store's target
    for minutes, floor in RECEIPT_STEPS:
        for store_id, target in Store.objects.values_list("id", "receipt_target_minutes"):
            changed += (
                ReviewTask.objects.filter(
                    state=TaskState.QUEUED,
                    transaction__store_id=store_id,
                    transaction__visit__exited_at__lte=now - timedelta(minutes=target - minutes),
                    priority__lt=floor,
                )
                .exclude(kind=TaskKind.GOLD)
                .update(priority=floor)
            )
    return changed


def deadline_apply(*, now: datetime | None = None, limit: int = 500) -> int:
    """Apply each store's deadline rule to queued tasks past their deadline. Returns tasks handled.

    A task a reviewer is holding is left to them (its lease expires if they walked
    away, and then it is handled here on the next run).
    """
    now = now or timezone.now()
    overdue = (
        ReviewTask.objects.filter(state=TaskState.QUEUED, settle_by__lt=now)
        .filter(Q(kind=TaskKind.PRIMARY) | Q(kind=TaskKind.SECOND_OPINION))
        .values_list("pk", flat=True)
    )
    handled = 0
    for pk in list(overdue[:limit]):
        with db.atomic():
            task = ReviewTask.objects.select_related("transaction", "transaction__store").get(pk=pk)
            if (
                ReviewTask.objects.filter(pk=pk, state=TaskState.QUEUED).update(
                    state=TaskState.CANCELLED, done_at=now
                )
                != 1
            ):
                continue
            txn = Transaction.objects.select_for_update().get(pk=task.transaction_id)
            rule = txn.store.deadline_rule
            before = {"state": txn.state}
            if rule == DeadlineRule.VOID:
                _void(txn, now)
            elif rule == DeadlineRule.CHARGE_CONFIDENT:
                _charge_confident(txn, now)
            else:
                check_transition(TransactionState, txn.state, TransactionState.ESCALATED)
                Transaction.objects.filter(pk=txn.pk).update(state=TransactionState.ESCALATED)
                ReviewTask.objects.create(
                    transaction=txn,
                    kind=TaskKind.ESCALATION,
                    priority=DEADLINE_ESCALATION_PRIORITY,
                    settle_by=now,
                )
            txn.refresh_from_db()
            audit_record(
                actor=SYSTEM,
                action="task.deadline_missed",
                obj=task,
                store=txn.store,
                txn=txn,
                before=before,
                after={"state": txn.state, "rule": rule, "final_amount": txn.final_amount},
            )
            handled += 1
    return handled


def _void(txn: Transaction, now: datetime) -> None:
    from .webhooks import webhook_queue

    check_transition(TransactionState, txn.state, TransactionState.VOIDED)
    Transaction.objects.filter(pk=txn.pk).update(
        state=TransactionState.VOIDED, final_amount=0, voided_at=now, decided_at=now
    )
    txn.refresh_from_db()
    webhook_queue(txn=txn, event="transaction.voided")


def _charge_confident(txn: Transaction, now: datetime) -> None:
    """Charge only the lines the tracker was sure of; the rest is the store's loss, not the shopper's."""
    from ..tasks import settle_transaction_task

    floor = txn.store.deadline_confidence
    lines = [line for line in txn.proposed_lines.all() if line.confidence >= floor]
    amount = sum(line.qty * line.unit_price for line in lines)
    check_transition(TransactionState, txn.state, TransactionState.APPROVED)
    Transaction.objects.filter(pk=txn.pk).update(
        state=TransactionState.APPROVED, final_amount=amount, decided_at=now
    )
    txn_id = txn.pk
    db.on_commit(lambda: settle_transaction_task.delay(txn_id))
