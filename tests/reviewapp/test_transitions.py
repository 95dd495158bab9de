from __future__ import annotations

import pytest

from reviewapp.models import Charge, Transaction
from reviewapp.states import (
    TRANSITIONS,
    ChargeState,
    IllegalTransition,
    TaskState,
    TransactionState,
    check_transition,
    transition,
)

ILLEGAL = [
    (TransactionState, "tracking", "settled"),
    (TransactionState, "needs_review", "settled"),
    (TransactionState, "voided", "settled"),
    (TransactionState, "settled", "approved"),
    (TransactionState, "auto_approved", "in_review"),
    (TaskState, "done", "queued"),
    (TaskState, "cancelled", "assigned"),
    (ChargeState, "captured", "pending"),
    (ChargeState, "voided", "captured"),
]


@pytest.mark.parametrize(("choices", "current", "new"), ILLEGAL)
def test_each_illegal_transition_raises(choices, current, new) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(choices, current, new)


def test_every_state_has_a_row_in_its_table() -> None:
    for choices, table in TRANSITIONS.items():
        assert set(table) == set(choices.values), choices
        for targets in table.values():
            assert targets <= set(choices.values)


def test_transition_moves_a_model_and_refuses_a_wrong_move(make_transaction) -> None:
    txn: Transaction = make_transaction("tracking")
    assert transition(txn, TransactionState.NEEDS_REVIEW) == "tracking"
    assert txn.state == "needs_review"
    with pytest.raises(IllegalTransition):
        transition(txn, TransactionState.SETTLED)
    assert txn.state == "needs_review"


def test_transition_finds_the_machine_of_any_state_field(make_transaction) -> None:
    charge = Charge(transaction=make_transaction("approved"), amount=5, currency="USD", idempotency_key="k")
    transition(charge, ChargeState.FAILED)
    with pytest.raises(IllegalTransition):
        transition(charge, ChargeState.CAPTURED)
