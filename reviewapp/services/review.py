"""Review tasks: claiming under a lease, renewing, releasing, and deciding.

A claim is a lease: the reviewer holds the task until `lease_expires_at`; the page
renews it while open, and the periodic job returns expired ones to the queue. Every
move of a task is a compare-and-set on its state (and assignee), so two reviewers
never hold one task and a task is never decided twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db import transaction as db
from django.db.models import Q
from django.utils import timezone

from ..models import (
    Charge,
    Decision,
    DecisionOutcome,
    DecisionUndo,
    Product,
    ReviewTask,
    TaskKind,
    Transaction,
)
from ..states import DomainError, TaskState, TransactionState, check_transition
from .audit import SYSTEM, audit_record

LEASE = timedelta(minutes=5)
ESCALATION_PRIORITY = 50


class LeaseExpired(DomainError):
    pass


class AlreadyDecided(DomainError):
    pass


class NotYourTask(DomainError):
    pass


REASON_CODES = {
    "wrong_quantity": "Wrong quantity",
    "wrong_product": "Wrong product (look-alike or misread)",
    "missed_item": "Item the tracker missed",
    "phantom_item": "Item not actually taken",
    "returned": "Put back later",
    "other_shopper": "Taken by another shopper",
    "other": "Other",
}


def claimable_by(reviewer: Any) -> Q:
    """The queued tasks this user may claim (the queue as they see it)."""
    from ..access import is_supervisor

    query = Q(state=TaskState.QUEUED)
    if not is_supervisor(reviewer):
        query &= ~Q(kind=TaskKind.ESCALATION)
    # a reviewer never gets a second look at a transaction they already decided
    query &= ~Q(transaction__decisions__reviewer=reviewer)
    return query


def claim_next_task(
    *, reviewer: Any, now: datetime | None = None, exclude: Collection[int] = ()
) -> ReviewTask | None:
    """The reviewer's current task if they hold one, else the next queued one, leased to them.

    Highest priority first, then the earliest deadline, then the oldest; never a task
    whose id is in `exclude` (those the reviewer just skipped, so a skip does not hand
    them back). PostgreSQL skips rows other claimers have locked (FOR UPDATE SKIP
    LOCKED) and does it all, the held-task check included, in one statement; SQLite
    serialises writers (the IMMEDIATE transaction mode), so the compare-and-set of the
    ORM path never races there.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        return _claim_postgres(reviewer=reviewer, now=now, action="task.claimed", exclude=exclude, held=True)
    held = (
        ReviewTask.objects.filter(state=TaskState.ASSIGNED, assignee=reviewer, lease_expires_at__gt=now)
        .select_related("transaction")
        .order_by("claimed_at", "id")  # with an on-deck task held too, the older claim is current
        .first()
    )
    if held:
        return held
    return _claim_queued(reviewer=reviewer, now=now, action="task.claimed", exclude=exclude)


def _claim_queued(
    *, reviewer: Any, now: datetime, action: str, exclude: Collection[int] = ()
) -> ReviewTask | None:
    """Lease the next queued task to `reviewer` (see claim_next_task for the ordering and locking)."""
    if connection.vendor == "postgresql":
        return _claim_postgres(reviewer=reviewer, now=now, action=action, exclude=exclude, held=False)
    claimable = claimable_by(reviewer)
    if exclude:
        claimable &= ~Q(pk__in=list(exclude))
    for _attempt in range(5):
        with db.atomic():
            candidates = ReviewTask.objects.filter(claimable).order_by("-priority", "settle_by", "id")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            task = candidates.select_related("transaction").first()
            if task is None:
                return None
            changed = ReviewTask.objects.filter(pk=task.pk, state=TaskState.QUEUED).update(
                state=TaskState.ASSIGNED, assignee=reviewer, lease_expires_at=now + LEASE, claimed_at=now
            )
            if changed != 1:
                continue  # someone else took it between our read and our write
            txn = task.transaction
            if txn.state in (TransactionState.NEEDS_REVIEW, TransactionState.ESCALATED):
                check_transition(TransactionState, txn.state, TransactionState.IN_REVIEW)
                Transaction.objects.filter(pk=txn.pk, state=txn.state).update(
                    state=TransactionState.IN_REVIEW
                )
            task.refresh_from_db()
            audit_record(
                actor=reviewer,
                action=action,
                obj=task,
                txn=txn,
                after={"lease_expires_at": task.lease_expires_at},
            )
            return task
    return None


_TASK_FIELDS = [field.attname for field in ReviewTask._meta.concrete_fields]
_TASK_COLUMNS = ", ".join(f'"{field.column}"' for field in ReviewTask._meta.concrete_fields)
# column names from the model; every value is a bound parameter
_CLAIM_SQL = f"SELECT {_TASK_COLUMNS} FROM reviewapp_claim_task(%s, %s, %s::bigint[], %s, %s, %s, %s, %s, %s)"  # noqa: S608


def _claim_postgres(
    *, reviewer: Any, now: datetime, action: str, exclude: Collection[int], held: bool
) -> ReviewTask | None:
    """The ORM path's claim (and, with `held`, claim_next_task's held-task check) in one
    statement: the function of migration 0012. Its row becomes the task without another
    query; the transaction loads only if the caller touches it."""
    from ..access import is_supervisor

    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            [
                reviewer.pk,
                is_supervisor(reviewer),
                list(exclude),
                now,
                now + LEASE,
                action,
                reviewer.get_username(),
                held,
                # a claim that is its own transaction does not wait for the WAL flush (see
                # migration 0012); inside a caller's transaction the caller's durability holds
                not connection.in_atomic_block,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return ReviewTask.from_db(connection.alias, _TASK_FIELDS, row)


def on_deck_claim(
    *, reviewer: Any, current: ReviewTask, now: datetime | None = None, exclude: Collection[int] = ()
) -> ReviewTask | None:
    """The task held in reserve while the reviewer works on `current`, claimed if there is none.

    The reviewer page prefetches the on-deck task's clip, so that after a decision the
    next task opens with its video already in the browser. It is an ordinary claim
    with its own lease: the page renews it with the current one, and when the page
    is left or closed it expires and returns to the queue like any other. At most one
    is held: a reviewer who already holds another live task gets that one back.
    """
    now = now or timezone.now()
    other = (
        ReviewTask.objects.filter(state=TaskState.ASSIGNED, assignee=reviewer, lease_expires_at__gt=now)
        .exclude(pk=current.pk)
        .select_related("transaction")
        .order_by("claimed_at", "id")
        .first()
    )
    if other:
        return other
    if not (current.state == TaskState.ASSIGNED and current.assignee_id == reviewer.pk):
        return None
    return _claim_queued(reviewer=reviewer, now=now, action="task.claimed_on_deck", exclude=exclude)


LEAVE_GRACE = timedelta(seconds=20)


def lease_leave(
    *, task: ReviewTask, reviewer: Any, grace: timedelta = LEAVE_GRACE, now: datetime | None = None
) -> bool:
    """The reviewer's page was closed or navigated away: cut the lease short to `grace`.

    Not an immediate release, so a reload (which also fires the page's leave signal)
    keeps the task: the page view renews the lease. Otherwise the periodic
    lease_release_expired returns the task to the queue. Returns whether it was held.
    """
    now = now or timezone.now()
    until = now + grace
    return (
        ReviewTask.objects.filter(
            pk=task.pk, state=TaskState.ASSIGNED, assignee=reviewer, lease_expires_at__gt=until
        ).update(lease_expires_at=until)
        == 1
    )


def _held(task: ReviewTask, reviewer: Any, now: datetime) -> None:
    if task.state == TaskState.DONE:
        raise AlreadyDecided("this task has already been decided")
    if task.state != TaskState.ASSIGNED or task.assignee_id != reviewer.pk:
        raise NotYourTask("this task is not assigned to you (it may have been returned to the queue)")
    if task.lease_expires_at is None or task.lease_expires_at <= now:
        raise LeaseExpired("your hold on this task expired; it may be with another reviewer now")


def lease_renew(*, task: ReviewTask, reviewer: Any, now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    until = now + LEASE
    changed = ReviewTask.objects.filter(
        pk=task.pk, state=TaskState.ASSIGNED, assignee=reviewer, lease_expires_at__gt=now
    ).update(lease_expires_at=until)
    if changed != 1:
        task.refresh_from_db()
        _held(task, reviewer, now)
    return until


def task_release(*, task: ReviewTask, reviewer: Any, reason: str, actor: Any = None) -> None:
    """The reviewer skips or leaves: the task goes back to the queue, the reason logged."""
    with db.atomic():
        changed = ReviewTask.objects.filter(pk=task.pk, state=TaskState.ASSIGNED, assignee=reviewer).update(
            state=TaskState.QUEUED, assignee=None, lease_expires_at=None, claimed_at=None
        )
        if changed != 1:
            return  # already released, expired or decided: nothing to do
        _transaction_back_to_queue(task)
        audit_record(
            actor=actor or reviewer,
            action="task.released",
            obj=task,
            txn=task.transaction,
            before={"assignee": reviewer.get_username()},
            after={"state": TaskState.QUEUED, "reason": reason[:500]},
        )


def task_reassign(*, task: ReviewTask, to: Any | None, actor: Any, now: datetime | None = None) -> None:
    """A supervisor hands a task to someone (or back to the queue with `to=None`)."""
    now = now or timezone.now()
    with db.atomic():
        task = ReviewTask.objects.select_for_update().get(pk=task.pk)
        if task.state not in (TaskState.QUEUED, TaskState.ASSIGNED):
            raise AlreadyDecided("this task is finished")
        before = {"state": task.state, "assignee": task.assignee.get_username() if task.assignee else None}
        if to is None:
            ReviewTask.objects.filter(pk=task.pk).update(
                state=TaskState.QUEUED, assignee=None, lease_expires_at=None, claimed_at=None
            )
            _transaction_back_to_queue(task)
        else:
            ReviewTask.objects.filter(pk=task.pk).update(
                state=TaskState.ASSIGNED, assignee=to, lease_expires_at=now + LEASE * 6, claimed_at=now
            )
            txn = task.transaction
            if txn.state in (TransactionState.NEEDS_REVIEW, TransactionState.ESCALATED):
                Transaction.objects.filter(pk=txn.pk).update(state=TransactionState.IN_REVIEW)
        audit_record(
            actor=actor,
            action="task.reassigned",
            obj=task,
            txn=task.transaction,
            before=before,
            after={"assignee": to.get_username() if to else None},
        )


def _transaction_back_to_queue(task: ReviewTask) -> None:
    txn = task.transaction
    back = TransactionState.ESCALATED if task.kind == TaskKind.ESCALATION else TransactionState.NEEDS_REVIEW
    Transaction.objects.filter(pk=txn.pk, state=TransactionState.IN_REVIEW).update(state=back)


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
            task = ReviewTask.objects.select_related("transaction", "transaction__store").get(pk=pk)
            _transaction_back_to_queue(task)
            audit_record(
                actor=SYSTEM,
                action="task.lease_expired",
                obj=task,
                store=task.transaction.store,
                txn=task.transaction,
                before={"state": TaskState.ASSIGNED, "assignee_id": assignee_id},
                after={"state": TaskState.QUEUED},
            )
            released += 1
    return released


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class FinalLine:
    sku: str
    qty: int
    reason: str = ""  # a REASON_CODES key when this line differs from the proposal
    event: str = ""  # the evidence event (code) an added line is tied to


def cart_diff(*, txn: Transaction, lines: list[FinalLine]) -> list[dict[str, Any]]:
    """What the final cart changes against the tracker's proposal, line by line."""
    proposed = {line.product.sku: line.qty for line in txn.proposed_lines.select_related("product")}
    final: dict[str, FinalLine] = {line.sku: line for line in lines if line.qty > 0}
    diff = []
    for sku in sorted(set(proposed) | set(final)):
        before, after = proposed.get(sku, 0), final[sku].qty if sku in final else 0
        if before != after:
            reason = final[sku].reason if sku in final else ""
            diff.append({"sku": sku, "proposed": before, "final": after, "reason": reason})
    return diff


def decision_submit(
    *,
    task: ReviewTask,
    reviewer: Any,
    outcome: str,
    lines: list[FinalLine] | None = None,
    note: str = "",
    removed_reasons: dict[str, str] | None = None,
    time_spent_ms: int = 0,
    now: datetime | None = None,
) -> Decision:
    """Record the reviewer's decision on the task they hold, and move the money along.

    approve: `lines` (the final cart; None means the proposal as it is) is charged,
    as `approved` if it equals the proposal and `adjusted` otherwise. escalate: goes
    to supervisors with the note. void (supervisors, on an escalation): nothing is
    charged. Raises AlreadyDecided, NotYourTask or LeaseExpired; then nothing changes.
    """
    from ..access import is_supervisor

    now = now or timezone.now()
    with db.atomic():
        task = (
            ReviewTask.objects.select_for_update()
            .select_related("transaction", "transaction__store")
            .get(pk=task.pk)
        )
        _held(task, reviewer, now)
        txn = Transaction.objects.select_for_update().get(pk=task.transaction_id)
        supervisor = is_supervisor(reviewer)
        if outcome == DecisionOutcome.VOIDED and not supervisor:
            raise DomainError("only a supervisor can void a transaction")
        if outcome == DecisionOutcome.ESCALATED and task.kind == TaskKind.ESCALATION:
            raise DomainError(
                "this task is the escalation: decide it (approve, correct or void); it cannot be escalated again"
            )
        proposal = [
            FinalLine(sku=line.product.sku, qty=line.qty)
            for line in txn.proposed_lines.select_related("product")
        ]
        final = proposal if lines is None else [line for line in lines if line.qty > 0]
        skus = {line.sku for line in final}
        products = {p.sku: p for p in Product.objects.filter(store_id=txn.store_id, sku__in=skus)}
        unknown = skus - set(products)
        if unknown:
            raise DomainError(f"unknown product(s): {', '.join(sorted(unknown))}")
        proposed_price = {
            line.product.sku: line.unit_price for line in txn.proposed_lines.select_related("product")
        }
        cart = [
            {
                "sku": line.sku,
                "name": products[line.sku].name,
                "qty": line.qty,
                "unit_price": proposed_price.get(line.sku, products[line.sku].price),
            }
            for line in sorted(final, key=lambda item: item.sku)
        ]
        amount = sum(item["qty"] * item["unit_price"] for item in cart)
        diff = cart_diff(txn=txn, lines=final)
        for change in diff:
            if not change["reason"] and removed_reasons:
                change["reason"] = removed_reasons.get(change["sku"], "")
        if outcome == DecisionOutcome.APPROVED and diff:
            outcome = DecisionOutcome.ADJUSTED
        gold = task.kind == TaskKind.GOLD
        disputed = txn.state == TransactionState.DISPUTED
        new_state = {
            DecisionOutcome.APPROVED: TransactionState.APPROVED,
            DecisionOutcome.ADJUSTED: TransactionState.ADJUSTED,
            DecisionOutcome.ESCALATED: TransactionState.ESCALATED,
            DecisionOutcome.VOIDED: TransactionState.VOIDED,
        }[DecisionOutcome(outcome)]
        if not (gold or disputed):
            check_transition(TransactionState, txn.state, new_state)
        changed = ReviewTask.objects.filter(pk=task.pk, state=TaskState.ASSIGNED, assignee=reviewer).update(
            state=TaskState.DONE, done_at=now
        )
        if changed != 1:
            raise AlreadyDecided("this task has already been decided")
        charged = outcome in (DecisionOutcome.APPROVED, DecisionOutcome.ADJUSTED)
        decision = Decision.objects.create(
            task=task,
            transaction=txn,
            reviewer=reviewer,
            outcome=outcome,
            lines=cart if outcome != DecisionOutcome.ESCALATED else [],
            amount=amount if charged else 0,
            currency=txn.currency,
            diff=diff,
            note=note[:2000],
            time_spent_ms=max(0, min(time_spent_ms, 24 * 3600 * 1000)),
            by_supervisor=supervisor and task.kind == TaskKind.ESCALATION,
        )
        audit_record(
            actor=reviewer,
            action=f"decision.{outcome}",
            obj=decision,
            store=txn.store,
            txn=txn,
            before={"state": txn.state},
            after={"amount": decision.amount, "diff": diff, "note": note[:500]},
            data={"task": str(task.code), "kind": task.kind, "time_spent_ms": decision.time_spent_ms},
        )
        if gold:
            pass  # a gold check only measures the reviewer: the transaction and its money stay as they are
        elif outcome == DecisionOutcome.ESCALATED:
            _escalate(txn=txn, task=task, reviewer=reviewer, to_state=None if disputed else new_state)
        elif disputed:
            from .disputes import dispute_resolve

            dispute_resolve(decision=decision, now=now)
        else:
            _decided(txn=txn, task=task, decision=decision, new_state=new_state, now=now)
    return decision


def _escalate(*, txn: Transaction, task: ReviewTask, reviewer: Any, to_state: str | None) -> ReviewTask:
    """Hand the transaction to supervisors. A disputed one stays disputed while they look."""
    if to_state is not None:
        Transaction.objects.filter(pk=txn.pk).update(state=to_state)
    escalation = ReviewTask.objects.create(
        transaction=txn, kind=TaskKind.ESCALATION, priority=ESCALATION_PRIORITY, settle_by=task.settle_by
    )
    audit_record(actor=reviewer, action="task.queued", obj=escalation, txn=txn, after={"kind": "escalation"})
    return escalation


def _decided(
    *, txn: Transaction, task: ReviewTask, decision: Decision, new_state: str, now: datetime
) -> None:
    """An approving (or voiding) decision: settle, or first ask for a second opinion, or, when the
    second opinion disagrees, send both to a supervisor. Caller holds the transaction's row lock."""
    from ..tasks import settle_transaction_task
    from . import quality

    if new_state == TransactionState.VOIDED:
        Transaction.objects.filter(pk=txn.pk).update(
            state=new_state, final_amount=0, decided_at=now, voided_at=now
        )
        from .webhooks import webhook_queue

        txn.refresh_from_db()
        webhook_queue(txn=txn, event="transaction.voided")
        return
    if task.kind == TaskKind.PRIMARY:
        reason = quality.second_opinion_reason(txn=txn, amount=decision.amount)
        if reason:
            quality.second_opinion_queue(txn=txn, first=decision, reason=reason)
            return
    if task.kind == TaskKind.SECOND_OPINION:
        first = quality.first_opinion(txn)
        if first is not None and not quality.opinions_agree(first, decision):
            audit_record(
                actor=decision.reviewer,
                action="second_opinion.disagreed",
                obj=txn,
                txn=txn,
                data={"first": str(first.code), "second": str(decision.code)},
            )
            _escalate(txn=txn, task=task, reviewer=decision.reviewer, to_state=TransactionState.ESCALATED)
            return
    Transaction.objects.filter(pk=txn.pk).update(
        state=new_state, final_amount=decision.amount, decided_at=now
    )
    txn_id = txn.pk
    # captured once the reviewer can no longer take it back (decision_undo)
    wait = float(settings.DECISION_UNDO_SECONDS)
    db.on_commit(lambda: settle_transaction_task.apply_async((txn_id,), countdown=wait))


UNDOABLE_KINDS = (TaskKind.PRIMARY, TaskKind.SECOND_OPINION)


def undo_until(decision: Decision) -> datetime | None:
    """Until when the reviewer may take this decision back; None if it is not the kind that can be."""
    if decision.outcome not in (DecisionOutcome.APPROVED, DecisionOutcome.ADJUSTED):
        return None
    if decision.task.kind not in UNDOABLE_KINDS or decision.by_supervisor:
        return None
    return decision.created_at + timedelta(seconds=float(settings.DECISION_UNDO_SECONDS))


def decision_undo(*, decision: Decision, reviewer: Any, now: datetime | None = None) -> ReviewTask:
    """Take back one's own approval in the moments after it (Enter pressed on the wrong cart).

    The transaction goes back to review with a new task of the same kind, held by the same
    reviewer, and the decision is marked undone (it stays, as every decision does). Only while
    nothing has acted on it: within DECISION_UNDO_SECONDS, before any charge (the capture waits
    that long, and takes the transaction's row lock as this does), and when it went straight to
    settlement rather than on to a second reviewer. Raises DomainError saying why otherwise.
    """
    now = now or timezone.now()
    with db.atomic():
        txn = Transaction.objects.select_for_update().get(pk=decision.transaction_id)
        decision = Decision.objects.select_related("task").get(pk=decision.pk)
        if decision.reviewer_id != getattr(reviewer, "pk", None):
            raise NotYourTask("only the reviewer who made a decision can undo it")
        until = undo_until(decision)
        if until is None:
            raise DomainError("only an approval can be undone (an escalation or a void cannot)")
        if DecisionUndo.objects.filter(decision=decision).exists():
            raise AlreadyDecided("this decision was already undone")
        if now > until:
            raise DomainError(
                f"too late to undo: an approval can be taken back for {settings.DECISION_UNDO_SECONDS:g} s"
            )
        moved_on = (
            txn.state != decision.outcome
            or Charge.objects.filter(transaction=txn).exists()
            or txn.decisions.filter(created_at__gt=decision.created_at).exists()
        )
        if moved_on:
            raise DomainError("it can no longer be undone: the transaction has moved on")
        check_transition(TransactionState, txn.state, TransactionState.IN_REVIEW)
        Transaction.objects.filter(pk=txn.pk).update(
            state=TransactionState.IN_REVIEW, final_amount=None, decided_at=None
        )
        task = ReviewTask.objects.create(
            transaction=txn,
            kind=decision.task.kind,
            state=TaskState.ASSIGNED,
            priority=decision.task.priority,
            settle_by=decision.task.settle_by,
            assignee=reviewer,
            claimed_at=now,
            lease_expires_at=now + LEASE,
        )
        DecisionUndo.objects.create(decision=decision, created_at=now, reopened=task)
        audit_record(
            actor=reviewer,
            action="decision.undone",
            obj=decision,
            txn=txn,
            before={"state": txn.state, "amount": decision.amount},
            after={"state": TransactionState.IN_REVIEW, "task": str(task.code)},
        )
    return task
