"""Every state machine of the domain, and the one function that moves along them.

A service changes a state only through `transition()`, which raises `IllegalTransition`
for a move the table does not allow. The tables are the single source of truth for
what may follow what; DESIGN.md draws the same picture.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class DomainError(Exception):
    """A request that the domain refuses; the message is safe to show to the user."""


class IllegalTransition(DomainError):
    pass


class TransactionState(models.TextChoices):
    TRACKING = "tracking", "Tracking"
    AUTO_APPROVED = "auto_approved", "Auto-approved"
    NEEDS_REVIEW = "needs_review", "Needs review"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    ADJUSTED = "adjusted", "Adjusted"
    ESCALATED = "escalated", "Escalated"
    SETTLED = "settled", "Settled"
    VOIDED = "voided", "Voided"
    DISPUTED = "disputed", "Disputed"


class TaskState(models.TextChoices):
    QUEUED = "queued", "Queued"
    ASSIGNED = "assigned", "Assigned"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class FootageStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"


class ChargeState(models.TextChoices):
    PENDING = "pending", "Pending"
    CAPTURED = "captured", "Captured"
    FAILED = "failed", "Failed"
    VOIDED = "voided", "Voided"
    REFUNDED = "refunded", "Refunded"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"


_T = TransactionState
_K = TaskState
_F = FootageStatus
_C = ChargeState

TRANSITIONS: dict[type[models.TextChoices], dict[str, frozenset[str]]] = {
    TransactionState: {
        _T.TRACKING: frozenset({_T.AUTO_APPROVED, _T.NEEDS_REVIEW, _T.VOIDED}),
        _T.AUTO_APPROVED: frozenset({_T.SETTLED, _T.VOIDED}),
        # a deadline rule may escalate, charge the confident lines, or void
        _T.NEEDS_REVIEW: frozenset({_T.IN_REVIEW, _T.ESCALATED, _T.APPROVED, _T.VOIDED}),
        # back to needs_review when the lease expires or the reviewer skips
        _T.IN_REVIEW: frozenset({_T.NEEDS_REVIEW, _T.APPROVED, _T.ADJUSTED, _T.ESCALATED, _T.VOIDED}),
        _T.ESCALATED: frozenset({_T.IN_REVIEW, _T.APPROVED, _T.ADJUSTED, _T.VOIDED}),
        # back to review: the reviewer undid their approval before it was charged
        _T.APPROVED: frozenset({_T.SETTLED, _T.VOIDED, _T.IN_REVIEW}),
        _T.ADJUSTED: frozenset({_T.SETTLED, _T.VOIDED, _T.IN_REVIEW}),
        _T.SETTLED: frozenset({_T.DISPUTED}),
        _T.DISPUTED: frozenset({_T.SETTLED}),
        _T.VOIDED: frozenset(),
    },
    TaskState: {
        _K.QUEUED: frozenset({_K.ASSIGNED, _K.CANCELLED, _K.DONE}),
        _K.ASSIGNED: frozenset({_K.QUEUED, _K.DONE, _K.CANCELLED}),
        _K.DONE: frozenset(),
        _K.CANCELLED: frozenset(),
    },
    FootageStatus: {
        _F.RECEIVED: frozenset({_F.QUEUED, _F.FAILED}),
        _F.QUEUED: frozenset({_F.PROCESSING, _F.FAILED}),
        _F.PROCESSING: frozenset({_F.PROCESSED, _F.FAILED, _F.QUEUED}),
        _F.PROCESSED: frozenset(),
        _F.FAILED: frozenset({_F.QUEUED}),
    },
    ChargeState: {
        _C.PENDING: frozenset({_C.CAPTURED, _C.FAILED, _C.VOIDED}),
        _C.FAILED: frozenset({_C.PENDING, _C.VOIDED}),
        _C.CAPTURED: frozenset({_C.REFUNDED, _C.PARTIALLY_REFUNDED}),
        _C.PARTIALLY_REFUNDED: frozenset({_C.REFUNDED, _C.PARTIALLY_REFUNDED}),
        _C.REFUNDED: frozenset(),
        _C.VOIDED: frozenset(),
    },
}

TERMINAL_TRANSACTION_STATES = frozenset({_T.SETTLED, _T.VOIDED})
DECIDED_TRANSACTION_STATES = frozenset({_T.AUTO_APPROVED, _T.APPROVED, _T.ADJUSTED})
OPEN_TASK_STATES = (_K.QUEUED, _K.ASSIGNED)


def check_transition(choices: type[models.TextChoices], current: str, new: str) -> None:
    allowed = TRANSITIONS[choices].get(current)
    if allowed is None:
        raise IllegalTransition(f"unknown {choices.__name__} {current!r}")
    if new not in allowed:
        raise IllegalTransition(f"{choices.__name__}: {current!r} cannot become {new!r}")


def _enum_of(field_choices: Any) -> type[models.TextChoices]:
    values = {value for value, _label in field_choices}
    for enum in TRANSITIONS:
        if set(enum.values) == values:
            return enum
    raise LookupError("field has no state machine")


def transition(obj: Any, new: str, *, field: str = "state") -> str:
    """Move `obj.<field>` to `new` if the table allows it; returns the old value.

    Does not save: the caller saves inside its atomic block, usually with a
    compare-and-set on the old value so a concurrent change is noticed.
    """
    choices = _enum_of(type(obj)._meta.get_field(field).choices)
    old = getattr(obj, field)
    check_transition(choices, old, new)
    setattr(obj, field, new)
    return str(old)
