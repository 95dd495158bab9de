"""A decided transaction is captured exactly once, whatever is delivered twice or dies midway."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from reviewapp.models import AuditEvent, Charge, GatewayCapture, Transaction
from reviewapp.services import settlement
from reviewapp.tasks import settle_transaction_task
from tests.conftest import wait_for


@pytest.fixture
def approved(make_transaction):
    return make_transaction("auto_approved", proposed_amount=1234, final_amount=1234, confidence=0.99)


def test_it_captures_and_settles(approved) -> None:
    assert settlement.charge_settle(txn_id=approved.pk) == "captured"
    approved.refresh_from_db()
    charge = Charge.objects.get(transaction=approved)
    assert approved.state == "settled" and approved.settled_at
    assert (charge.state, charge.amount, charge.currency) == ("captured", 1234, "USD")
    assert GatewayCapture.objects.get().reference == charge.gateway_reference
    assert AuditEvent.objects.filter(action="charge.captured", transaction=approved).count() == 1


def test_running_it_twice_captures_once(approved) -> None:
    settlement.charge_settle(txn_id=approved.pk)
    assert settlement.charge_settle(txn_id=approved.pk) == "already settled"
    assert GatewayCapture.objects.count() == 1 and Charge.objects.count() == 1


def test_a_transaction_still_under_review_is_not_charged(make_transaction) -> None:
    txn = make_transaction("needs_review", proposed_amount=500)
    assert settlement.charge_settle(txn_id=txn.pk).startswith("not settleable")
    assert not Charge.objects.exists()


def test_an_empty_cart_settles_without_calling_the_gateway(make_transaction) -> None:
    txn = make_transaction("auto_approved", proposed_amount=0, final_amount=0)
    settlement.charge_settle(txn_id=txn.pk)
    txn.refresh_from_db()
    assert txn.state == "settled" and not GatewayCapture.objects.exists()


def test_a_decline_goes_to_the_supervisor_and_is_not_retried(approved, settings) -> None:
    settings.PAYMENT_GATEWAY_MODE = "fail"
    assert settlement.charge_settle(txn_id=approved.pk) == "declined"
    charge = Charge.objects.get()
    assert charge.state == "failed" and "declined" in charge.last_error
    assert settlement.charge_settle(txn_id=approved.pk).startswith("failed earlier")
    approved.refresh_from_db()
    assert approved.state == "auto_approved"
    from reviewapp.selectors import settlement_problems

    assert [c.pk for c in settlement_problems()] == [charge.pk]


def test_a_timeout_retries_and_the_last_try_fails_loudly(approved, settings) -> None:
    settings.PAYMENT_GATEWAY_MODE = "timeout"
    with pytest.raises(settlement.SettlementRetry):
        settlement.charge_settle(txn_id=approved.pk)
    assert Charge.objects.get().state == "pending"
    assert settlement.charge_settle(txn_id=approved.pk, final_attempt=True) == "failed"
    assert Charge.objects.get().state == "failed"


def test_a_supervisor_retry_after_a_failure_captures(
    approved, settings, supervisor, django_capture_on_commit_callbacks
) -> None:
    settings.PAYMENT_GATEWAY_MODE = "fail"
    settlement.charge_settle(txn_id=approved.pk)
    settings.PAYMENT_GATEWAY_MODE = "ok"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        settlement.charge_retry(charge=Charge.objects.get(), actor=supervisor)
    assert len(callbacks) == 1  # the settle task is queued after commit
    assert settlement.charge_settle(txn_id=approved.pk) == "captured"


@pytest.mark.worker
def test_the_same_task_delivered_twice_captures_once(
    transactional_db, celery_worker_process, make_transaction
):
    txn = make_transaction("approved", proposed_amount=700, final_amount=650)
    settle_transaction_task.delay(txn.pk)
    settle_transaction_task.delay(txn.pk)
    wait_for(
        lambda: Transaction.objects.get(pk=txn.pk).state == "settled",
        worker=celery_worker_process,
        what="settled",
    )
    wait_for(
        lambda: (
            "succeeded" in celery_worker_process.output()
            and celery_worker_process.output().count("settle_transaction_task") >= 4
        ),
        what="both deliveries to finish",
        worker=celery_worker_process,
    )
    assert GatewayCapture.objects.count() == 1
    assert Charge.objects.get().amount == 650


@pytest.mark.worker
def test_a_worker_killed_mid_settlement_captures_once_on_redelivery(make_transaction, worker_factory):
    from kombu import Exchange, Queue

    # a queue of its own, so no other worker of this test run takes the task
    own = Queue("settlement-killtest", Exchange("settlement-killtest"), routing_key="settlement-killtest")
    worker = worker_factory(
        concurrency=1,
        queues=own.name,
        CELERY_EXTRA_QUEUES=own.name,
        PAYMENT_GATEWAY_MODE="slow",
        PAYMENT_GATEWAY_SLOW_SECONDS="4",
    )
    txn = make_transaction("approved", proposed_amount=990, final_amount=990)
    settle_transaction_task.apply_async((txn.pk,), queue=own)
    # the gateway has captured and is "slow" to answer: kill the process doing the work
    wait_for(lambda: GatewayCapture.objects.exists(), what="the gateway capture", worker=worker)
    children = subprocess.run(
        ["pgrep", "-P", str(worker.proc.pid)], capture_output=True, text=True
    ).stdout.split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    # acks_late + reject_on_worker_lost: the broker delivers the task again to a fresh pool process
    wait_for(
        lambda: Transaction.objects.get(pk=txn.pk).state == "settled",
        timeout=90,
        what="settled after redelivery",
        worker=worker,
    )
    assert GatewayCapture.objects.count() == 1
    charge = Charge.objects.get()
    assert charge.state == "captured" and charge.attempts == 2
    assert "WorkerLostError" in worker.output() or "exited prematurely" in worker.output()
