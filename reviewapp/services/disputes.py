"""Disputes: a shopper contests a settled charge; another reviewer looks again.

A corrected cart refunds the difference, exactly once (one refund per dispute, a
unique idempotency key, and the gateway's own idempotency); an upheld charge closes
the dispute. A dispute never raises a charge.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError
from django.db import transaction as db
from django.utils import timezone

from ..gateway import GatewayDeclined, GatewayError, get_gateway
from ..models import Charge, Decision, Dispute, Refund, ReviewTask, TaskKind, Transaction
from ..states import ChargeState, DomainError, TransactionState, check_transition
from .audit import SYSTEM, audit_record

DISPUTE_PRIORITY = 70


class RefundRetry(Exception):
    pass


def dispute_window_open(txn: Transaction, *, now: datetime | None = None) -> bool:
    """Can this transaction still be disputed: settled, and within its store's dispute window."""
    if txn.state not in (TransactionState.SETTLED, TransactionState.DISPUTED):
        return False
    settled = txn.settled_at or txn.decided_at or txn.created_at
    now = now or timezone.now()
    return settled >= now - timedelta(days=txn.store.dispute_window_days)


def dispute_open(*, txn: Transaction, external_id: str, statement: str, actor: Any) -> tuple[Dispute, bool]:
    """Record the dispute and reopen the transaction for review. The same external id twice is one dispute."""
    existing = Dispute.objects.filter(transaction=txn, external_id=external_id).first()
    if existing:
        return existing, False
    with db.atomic():
        locked = Transaction.objects.select_for_update().select_related("store").get(pk=txn.pk)
        if locked.state == TransactionState.DISPUTED:
            raise DomainError("this transaction already has an open dispute")
        if locked.state != TransactionState.SETTLED:
            raise DomainError(f"only a settled transaction can be disputed (this one is {locked.state})")
        if not dispute_window_open(locked):
            raise DomainError(f"the {locked.store.dispute_window_days}-day dispute window has closed")
        try:
            with db.atomic():
                dispute = Dispute.objects.create(
                    transaction=locked, external_id=external_id, statement=statement
                )
        except IntegrityError:
            return Dispute.objects.get(transaction=locked, external_id=external_id), False
        check_transition(TransactionState, locked.state, TransactionState.DISPUTED)
        Transaction.objects.filter(pk=locked.pk).update(state=TransactionState.DISPUTED)
        task = ReviewTask.objects.create(
            transaction=locked,
            kind=TaskKind.DISPUTE,
            priority=DISPUTE_PRIORITY,
            settle_by=timezone.now() + timedelta(minutes=locked.store.settle_within_minutes),
        )
        if not locked.clips.exists():
            # it settled on its own and no one has seen it: its clips are cut now, for the
            # reviewer of the dispute (retention keeps its footage until they are)
            from ..tasks import prepare_review_task

            txn_id = locked.pk
            db.on_commit(lambda: prepare_review_task.delay(txn_id))
        audit_record(
            actor=actor,
            action="dispute.opened",
            obj=dispute,
            store=locked.store,
            txn=locked,
            before={"state": TransactionState.SETTLED},
            after={"state": TransactionState.DISPUTED, "task": str(task.code)},
            data={"external_id": external_id, "statement": statement[:2000]},
        )
    return dispute, True


def dispute_resolve(*, decision: Decision, now: datetime | None = None) -> Dispute:
    """Called by decision_submit for a dispute task, inside its atomic block.

    The corrected cart's amount against what was captured: less → refund the
    difference; the same or more → the charge is upheld (we never charge more).
    """
    from ..tasks import refund_task

    now = now or timezone.now()
    txn = decision.transaction
    dispute = Dispute.objects.select_for_update().get(transaction=txn, status=Dispute.Status.OPEN)
    charge = Charge.objects.filter(transaction=txn).first()
    captured = (
        charge.amount
        if charge and charge.state in (ChargeState.CAPTURED, ChargeState.PARTIALLY_REFUNDED)
        else 0
    )
    difference = captured - decision.amount
    if difference > 0 and charge is not None:
        refund = Refund.objects.create(
            dispute=dispute,
            charge=charge,
            amount=difference,
            currency=charge.currency,
            idempotency_key=f"refund-{dispute.code}",
        )
        Dispute.objects.filter(pk=dispute.pk).update(status=Dispute.Status.REFUNDED, resolved_at=now)
        refund_id = refund.pk
        db.on_commit(lambda: refund_task.delay(refund_id))
        outcome = {"status": Dispute.Status.REFUNDED, "refund": difference}
    else:
        Dispute.objects.filter(pk=dispute.pk).update(status=Dispute.Status.UPHELD, resolved_at=now)
        outcome = {"status": Dispute.Status.UPHELD, "refund": 0}
    check_transition(TransactionState, txn.state, TransactionState.SETTLED)
    Transaction.objects.filter(pk=txn.pk).update(
        state=TransactionState.SETTLED, final_amount=min(captured, decision.amount)
    )
    audit_record(
        actor=decision.reviewer,
        action="dispute.resolved",
        obj=dispute,
        txn=txn,
        before={"captured": captured},
        after={**outcome, "corrected_amount": decision.amount},
        data={"decision": str(decision.code)},
    )
    dispute.refresh_from_db()
    return dispute


def _refund_failed(refund: Refund, error: str) -> None:
    """Out of tries or declined: kept as failed for a supervisor, and logged."""
    with db.atomic():
        Refund.objects.filter(pk=refund.pk).update(state="failed", last_error=error[:1000])
        audit_record(
            actor=SYSTEM,
            action="refund.failed",
            obj=refund,
            txn=refund.dispute.transaction,
            data={"error": error},
        )


def refund_execute(*, refund_id: int, final_attempt: bool = False) -> str:
    """Give the money back through the gateway, exactly once. Safe to run any number of times."""
    refund = Refund.objects.select_related("charge", "dispute__transaction").get(pk=refund_id)
    if refund.state == "refunded":
        return "already refunded"
    try:
        result = get_gateway().refund(
            idempotency_key=refund.idempotency_key,
            capture_reference=refund.charge.gateway_reference,
            amount=refund.amount,
            currency=refund.currency,
        )
    except GatewayDeclined as exc:
        Refund.objects.filter(pk=refund.pk).update(state="failed", last_error=f"declined: {exc}"[:1000])
        audit_record(
            actor=SYSTEM,
            action="refund.failed",
            obj=refund,
            txn=refund.dispute.transaction,
            data={"error": str(exc)},
        )
        return "declined"
    except GatewayError as exc:
        if final_attempt:
            Refund.objects.filter(pk=refund.pk).update(state="failed", last_error=str(exc)[:1000])
            audit_record(
                actor=SYSTEM,
                action="refund.failed",
                obj=refund,
                txn=refund.dispute.transaction,
                data={"error": str(exc)},
            )
            return "failed"
        raise RefundRetry(str(exc)) from exc
    with db.atomic():
        changed = (
            Refund.objects.filter(pk=refund.pk)
            .exclude(state="refunded")
            .update(
                state="refunded",
                gateway_reference=result.reference,
                refunded_at=timezone.now(),
                last_error="",
            )
        )
        if changed == 1:
            charge = Charge.objects.select_for_update().get(pk=refund.charge_id)
            refunded = sum(
                Refund.objects.filter(charge=charge, state="refunded").values_list("amount", flat=True)
            )
            new_state = ChargeState.REFUNDED if refunded >= charge.amount else ChargeState.PARTIALLY_REFUNDED
            Charge.objects.filter(pk=charge.pk).update(state=new_state)
            audit_record(
                actor=SYSTEM,
                action="refund.refunded",
                obj=refund,
                txn=refund.dispute.transaction,
                after={"amount": refund.amount, "reference": result.reference, "charge_state": new_state},
            )
    return "refunded"
