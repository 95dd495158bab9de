"""Charging a decided transaction, exactly once.

Three guards: the `Charge` row is unique per transaction with a unique idempotency
key; the gateway is called with that key (it captures once per key); and our state
moves pending -> captured by compare-and-set. A worker killed anywhere in between
and run again ends with one capture.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from django.db import transaction as db
from django.utils import timezone

from ..gateway import GatewayDeclined, GatewayError, get_gateway
from ..models import Charge, Transaction
from ..states import ChargeState, DomainError, TransactionState, check_transition
from .audit import SYSTEM, audit_record

SETTLEABLE = (TransactionState.AUTO_APPROVED, TransactionState.APPROVED, TransactionState.ADJUSTED)


class SettlementRetry(Exception):
    """A temporary failure: the task retries with backoff."""


def idempotency_key_for(txn: Transaction) -> str:
    return f"capture-{txn.code}"


def charge_settle(*, txn_id: int, final_attempt: bool = False) -> str:
    """Capture the transaction's final amount and mark it settled. Safe to run any number of times."""
    with db.atomic():
        # the row lock orders this against a reviewer undoing the approval (review.decision_undo):
        # either the charge exists first and the undo is refused, or the state is no longer settleable
        txn = (
            Transaction.objects.select_for_update(of=("self",))
            .select_related("store", "visit")
            .get(pk=txn_id)
        )
        if txn.state == TransactionState.SETTLED:
            return "already settled"
        if txn.state not in SETTLEABLE:
            return f"not settleable ({txn.state})"
        amount = txn.final_amount if txn.final_amount is not None else txn.proposed_amount
        charge = _charge_for(txn=txn, amount=amount)
    if charge.state == ChargeState.CAPTURED:
        _mark_settled(txn=txn, charge=charge)
        return "already captured"
    if charge.state == ChargeState.FAILED:
        return "failed earlier; waiting for a supervisor to retry"
    Charge.objects.filter(pk=charge.pk).update(attempts=charge.attempts + 1)
    if amount == 0:
        reference = "none:empty-cart"
    else:
        try:
            capture = get_gateway().capture(
                idempotency_key=charge.idempotency_key,
                amount=amount,
                currency=charge.currency,
                token_hash=txn.visit.token_hash,
            )
            reference = capture.reference
        except GatewayDeclined as exc:
            _charge_failed(charge=charge, txn=txn, error=f"declined: {exc}")
            return "declined"
        except GatewayError as exc:
            if final_attempt:
                _charge_failed(charge=charge, txn=txn, error=f"gave up after retries: {exc}")
                return "failed"
            Charge.objects.filter(pk=charge.pk).update(last_error=str(exc)[:1000])
            raise SettlementRetry(str(exc)) from exc
    with db.atomic():
        changed = Charge.objects.filter(
            pk=charge.pk, state__in=[ChargeState.PENDING, ChargeState.FAILED]
        ).update(
            state=ChargeState.CAPTURED, gateway_reference=reference, captured_at=timezone.now(), last_error=""
        )
        charge.refresh_from_db()
        if changed == 1:
            audit_record(
                actor=SYSTEM,
                action="charge.captured",
                obj=charge,
                store=txn.store,
                txn=txn,
                after={"amount": charge.amount, "currency": charge.currency, "reference": reference},
            )
        _mark_settled(txn=txn, charge=charge)
    return "captured"


def _charge_for(*, txn: Transaction, amount: int) -> Charge:
    existing = Charge.objects.filter(transaction=txn).first()
    if existing:
        return existing
    try:
        with db.atomic():
            charge = Charge.objects.create(
                transaction=txn,
                amount=amount,
                currency=txn.currency,
                idempotency_key=idempotency_key_for(txn),
            )
            audit_record(
                actor=SYSTEM,
                action="charge.created",
                obj=charge,
                store=txn.store,
                txn=txn,
                after={"amount": amount},
            )
            return charge
    except IntegrityError:  # a concurrent run created it
        return Charge.objects.get(transaction=txn)


def _mark_settled(*, txn: Transaction, charge: Charge) -> None:
    with db.atomic():
        now = timezone.now()
        changed = Transaction.objects.filter(pk=txn.pk, state__in=SETTLEABLE).update(
            state=TransactionState.SETTLED, settled_at=now
        )
        if changed == 1:
            check_transition(TransactionState, txn.state, TransactionState.SETTLED)
            audit_record(
                actor=SYSTEM,
                action="transaction.settled",
                obj=txn,
                store=txn.store,
                txn=txn,
                before={"state": txn.state},
                after={
                    "state": TransactionState.SETTLED,
                    "amount": charge.amount,
                    "charge": str(charge.code),
                },
            )
            from .webhooks import webhook_queue

            webhook_queue(txn=txn, event="transaction.settled")


def _charge_failed(*, charge: Charge, txn: Transaction, error: str) -> None:
    with db.atomic():
        changed = Charge.objects.filter(pk=charge.pk, state=ChargeState.PENDING).update(
            state=ChargeState.FAILED, last_error=error[:1000]
        )
        if changed == 0:
            Charge.objects.filter(pk=charge.pk).update(last_error=error[:1000])
        audit_record(
            actor=SYSTEM,
            action="charge.failed",
            obj=charge,
            store=txn.store,
            txn=txn,
            after={"error": error[:500]},
        )


def charge_retry(*, charge: Charge, actor: Any) -> None:
    """A supervisor retries a failed settlement (after fixing whatever made it fail)."""
    from ..tasks import settle_transaction_task

    if charge.state != ChargeState.FAILED:
        raise DomainError("only a failed charge can be retried")
    with db.atomic():
        check_transition(ChargeState, charge.state, ChargeState.PENDING)
        Charge.objects.filter(pk=charge.pk, state=ChargeState.FAILED).update(
            state=ChargeState.PENDING, last_error=""
        )
        audit_record(
            actor=actor,
            action="charge.retry",
            obj=charge,
            store=charge.transaction.store,
            txn=charge.transaction,
        )
        txn_id = charge.transaction_id
        db.on_commit(lambda: settle_transaction_task.delay(txn_id))
