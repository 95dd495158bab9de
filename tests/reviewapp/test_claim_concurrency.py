"""Many reviewers claiming at once never share a task."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from reviewapp.models import ReviewTask
from reviewapp.services.review import claim_next_task
from tests.conftest import make_user


def queued_tasks(make_transaction, n: int) -> list[ReviewTask]:
    now = timezone.now()
    return [
        ReviewTask.objects.create(
            transaction=make_transaction(), priority=i % 3, settle_by=now + timedelta(minutes=i)
        )
        for i in range(n)
    ]


def test_reviewers_claiming_at_once_never_get_the_same_task(transactional_db, make_transaction) -> None:
    tasks = queued_tasks(make_transaction, 24)
    reviewers = [make_user(f"r{i}", "reviewer") for i in range(8)]
    claimed: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(reviewers))

    def work(user) -> None:
        try:
            start.wait()
            while True:
                task = claim_next_task(reviewer=user)
                if task is None:
                    return
                claimed.append((task.pk, user.pk))
                ReviewTask.objects.filter(pk=task.pk).update(state="done")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    ids = [pk for pk, _ in claimed]
    assert sorted(ids) == sorted(t.pk for t in tasks)  # every task claimed exactly once


@pytest.mark.postgres
def test_a_claim_skips_a_task_another_claim_has_locked(transactional_db, make_transaction, reviewer) -> None:
    first, second = queued_tasks(make_transaction, 2)
    first.priority, second.priority = 9, 1
    first.save()
    second.save()
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with transaction.atomic():
            list(ReviewTask.objects.select_for_update().filter(pk=first.pk))
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(10)
    try:
        assert connection.vendor == "postgresql"
        task = claim_next_task(reviewer=reviewer)  # does not wait for the lock: skips the row
        assert task.pk == second.pk
    finally:
        release.set()
        holder.join()
