"""The database itself refuses what would move money twice or decide a task twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviewapp.models import Charge, Decision, ReviewTask
from reviewapp.states import DomainError


def make_task(txn, **fields):
    fields.setdefault("settle_by", timezone.now() + timedelta(hours=2))
    return ReviewTask.objects.create(transaction=txn, **fields)


def test_it_allows_only_one_charge_per_transaction(make_transaction) -> None:
    txn = make_transaction("approved")
    Charge.objects.create(transaction=txn, amount=100, currency="USD", idempotency_key="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        Charge.objects.create(transaction=txn, amount=100, currency="USD", idempotency_key="b")


def test_it_refuses_a_repeated_idempotency_key(make_transaction) -> None:
    Charge.objects.create(
        transaction=make_transaction("approved"), amount=1, currency="USD", idempotency_key="k"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Charge.objects.create(
            transaction=make_transaction("approved"), amount=1, currency="USD", idempotency_key="k"
        )


def test_a_captured_charge_needs_a_gateway_reference(make_transaction) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Charge.objects.create(
            transaction=make_transaction("approved"),
            amount=1,
            currency="USD",
            idempotency_key="x",
            state="captured",
        )


def test_it_allows_one_decision_per_task(make_transaction, reviewer) -> None:
    txn = make_transaction("in_review")
    task = make_task(txn, state="done")
    Decision.objects.create(task=task, transaction=txn, reviewer=reviewer, outcome="approved", currency="USD")
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            task=task, transaction=txn, reviewer=reviewer, outcome="adjusted", currency="USD"
        )


def test_decisions_are_immutable(make_transaction, reviewer) -> None:
    txn = make_transaction("in_review")
    decision = Decision.objects.create(
        task=make_task(txn, state="done"),
        transaction=txn,
        reviewer=reviewer,
        outcome="approved",
        currency="USD",
    )
    decision.note = "changed my mind"
    with pytest.raises(DomainError):
        decision.save()
    with pytest.raises(DomainError):
        decision.delete()


def test_it_allows_one_open_primary_task_per_transaction(make_transaction) -> None:
    txn = make_transaction()
    make_task(txn)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_task(txn)


def test_a_finished_primary_task_does_not_block_a_new_one(make_transaction) -> None:
    txn = make_transaction()
    make_task(txn, state="done")
    make_task(txn)
    make_task(txn, kind="second_opinion")
    assert txn.tasks.count() == 3


def test_an_assigned_task_needs_an_assignee_and_a_lease(make_transaction) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make_task(make_transaction(), state="assigned")


def test_it_refuses_a_slot_of_zero_size(store) -> None:
    from reviewapp.models import Camera, PlanogramSlot, Product

    camera = Camera.objects.create(store=store, name="c", width=1280, height=720, fps=15)
    product = Product.objects.create(store=store, sku="A", name="A", price=100, currency="USD")
    with pytest.raises(IntegrityError), transaction.atomic():
        PlanogramSlot.objects.create(camera=camera, slot_id="S1", product=product, x=0, y=0, w=0, h=10)


def test_it_refuses_a_threshold_outside_zero_to_one(store) -> None:
    store.review_threshold = 1.5
    with pytest.raises(IntegrityError), transaction.atomic():
        store.save()
