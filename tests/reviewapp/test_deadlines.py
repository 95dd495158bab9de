"""As deadlines near, priority rises; a missed deadline gets the store's rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reviewapp.models import Product, ProposedLine, ReviewTask
from reviewapp.services.deadlines import deadline_apply, priority_bump


@pytest.fixture
def task_due(make_transaction, store):
    tea = Product.objects.create(store=store, sku="T", name="Tea", price=300, currency="USD")
    jam = Product.objects.create(store=store, sku="J", name="Jam", price=500, currency="USD")

    def make(minutes: float, state: str = "queued", **task_fields):
        txn = make_transaction("needs_review", confidence=0.6, proposed_amount=800)
        ProposedLine.objects.create(transaction=txn, product=tea, qty=1, unit_price=300, confidence=0.99)
        ProposedLine.objects.create(transaction=txn, product=jam, qty=1, unit_price=500, confidence=0.7)
        return ReviewTask.objects.create(
            transaction=txn, settle_by=timezone.now() + timedelta(minutes=minutes), state=state, **task_fields
        )

    return make


def test_priority_rises_as_the_deadline_nears(task_due) -> None:
    far, soon, sooner = task_due(300), task_due(45), task_due(5)
    priority_bump()
    assert [ReviewTask.objects.get(pk=t.pk).priority for t in (far, soon, sooner)] == [0, 10, 30]


def test_a_missed_deadline_escalates_by_default(task_due) -> None:
    task = task_due(-1)
    assert deadline_apply() == 1
    task.refresh_from_db()
    assert task.state == "cancelled"
    assert task.transaction.tasks.get(kind="escalation").state == "queued"
    task.transaction.refresh_from_db()
    assert task.transaction.state == "escalated"


def test_the_charge_confident_rule_charges_only_the_sure_lines(
    task_due, store, django_capture_on_commit_callbacks
) -> None:
    store.deadline_rule = "charge_confident"
    store.deadline_confidence = 0.95
    store.save()
    task = task_due(-1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        deadline_apply()
    task.transaction.refresh_from_db()
    assert (task.transaction.state, task.transaction.final_amount) == ("approved", 300)
    assert len(callbacks) == 1


def test_the_void_rule_voids(task_due, store) -> None:
    store.deadline_rule = "void"
    store.save()
    task = task_due(-1)
    deadline_apply()
    task.transaction.refresh_from_db()
    assert task.transaction.state == "voided"


def test_a_task_a_reviewer_is_holding_is_left_to_them(task_due, reviewer) -> None:
    task = task_due(
        -1, state="assigned", assignee=reviewer, lease_expires_at=timezone.now() + timedelta(minutes=3)
    )
    assert deadline_apply() == 0
    task.refresh_from_db()
    assert task.state == "assigned"


def test_a_receipt_about_to_miss_its_target_rises_to_the_top(task_due, store) -> None:
    store.receipt_target_minutes = 60
    store.save()
    task = task_due(300)  # the settle-by deadline is far, but the shopper left long ago
    txn = task.transaction
    txn.visit.entered_at = timezone.now() - timedelta(minutes=58)
    txn.visit.exited_at = timezone.now() - timedelta(minutes=50)
    txn.visit.save()
    priority_bump()
    task.refresh_from_db()
    assert task.priority == 40
