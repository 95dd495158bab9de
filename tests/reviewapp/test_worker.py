"""A real Celery worker process, on the configured broker, runs our tasks against the database."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from reviewapp.models import AuditEvent, ReviewTask
from reviewapp.tasks import release_expired_leases_task
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker]


def test_a_real_worker_releases_an_expired_lease(
    transactional_db, celery_worker_process, make_transaction, reviewer
):
    txn = make_transaction("in_review")
    task = ReviewTask.objects.create(
        transaction=txn,
        state="assigned",
        assignee=reviewer,
        lease_expires_at=timezone.now() - timedelta(seconds=5),
        claimed_at=timezone.now() - timedelta(minutes=5),
        settle_by=timezone.now() + timedelta(hours=1),
    )

    release_expired_leases_task.delay()

    wait_for(
        lambda: ReviewTask.objects.get(pk=task.pk).state == "queued",
        what="the worker to return the task to the queue",
        worker=celery_worker_process,
    )
    txn.refresh_from_db()
    assert txn.state == "needs_review"
    assert AuditEvent.objects.filter(action="task.lease_expired", object_code=str(task.code)).count() == 1
    assert "release_expired_leases_task" in celery_worker_process.output()


def test_a_real_worker_verifies_the_audit_chain_asked_for_on_the_page(
    transactional_db, celery_worker_process, client, auditor
):
    from django.urls import reverse

    from reviewapp.models import ChainCheck
    from reviewapp.services.audit import audit_record, audit_seal

    for i in range(30):
        audit_record(actor="system", action=f"a{i}", object_type="x", object_code=str(i))
    audit_seal()
    client.force_login(auditor)
    response = client.get(reverse("auditor:verify"), {"run": "1"})
    assert response.status_code == 302  # the page does not walk the chain itself
    check = ChainCheck.objects.get()
    wait_for(
        lambda: ChainCheck.objects.get(pk=check.pk).state == "done",
        what="the worker to verify the chain",
        worker=celery_worker_process,
    )
    check.refresh_from_db()
    assert check.ok and check.checked >= 30 and check.requested_by == auditor
    body = client.get(reverse("auditor:verify")).content.decode()
    assert "The chain is intact" in body and 'http-equiv="refresh"' not in body
    assert AuditEvent.objects.filter(action="audit.verified", object_code=str(check.code)).exists()


def test_tasks_are_routed_to_their_queues() -> None:
    from config.celery import QUEUES, app

    assert release_expired_leases_task.queue == "default"
    assert {q.name for q in app.conf.task_queues} == set(QUEUES)
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1


def test_a_real_worker_cuts_the_clips_of_a_disputed_cart_that_settled_on_its_own(
    transactional_db, celery_worker_process, small_scene
):
    from django.db import transaction

    from reviewapp.models import Clip, Store, Transaction
    from reviewapp.services import disputes
    from reviewapp.services.audit import Actor
    from reviewapp.services.ingest import scene_ingest
    from reviewapp.services.pipeline import footage_queue

    scene = scene_ingest(scene_dir=small_scene, store_name="Calm", actor=Actor(label="test"), process=False)
    Store.objects.filter(pk=scene.footage.store_id).update(
        review_threshold=0.0, audit_sample_percent=0.0, second_opinion_percent=0, gold_percent=0
    )
    with transaction.atomic():
        footage_queue(footage=scene.footage, actor=Actor(label="test"))
    settled = wait_for(
        lambda: Transaction.objects.filter(
            footage=scene.footage, state="settled", events__isnull=False
        ).first(),
        timeout=60,
        what="the worker to track the footage and settle a cart with events",
        worker=celery_worker_process,
    )
    assert not Clip.objects.filter(transaction=settled).exists()

    disputes.dispute_open(txn=settled, external_id="w-1", statement="I took nothing", actor="api:test")
    wait_for(
        lambda: Clip.objects.filter(transaction=settled).exclude(redacted_file="").exists(),
        timeout=60,
        what="the worker to cut the disputed cart's clips",
        worker=celery_worker_process,
    )
    assert list(settled.tasks.values_list("kind", flat=True)) == ["dispute"]


def test_a_real_worker_makes_a_footage_s_media_a_batch_at_a_time_until_every_flagged_cart_has_its_task(
    transactional_db, worker_factory, small_scene, monkeypatch
):
    from kombu import Exchange, Queue

    from reviewapp import tasks
    from reviewapp.models import Clip, Store, Transaction
    from reviewapp.services.audit import Actor
    from reviewapp.services.ingest import scene_ingest
    from reviewapp.services.pipeline import footage_queue, footage_track

    # a queue of its own, so no other worker of this test run takes the media task or its reruns
    own = Queue("media-batchtest", Exchange("media-batchtest"), routing_key="media-batchtest")
    worker = worker_factory(
        concurrency=1, queues=own.name, CELERY_EXTRA_QUEUES=own.name, MEDIA_BATCH_TRANSACTIONS="1"
    )
    scene = scene_ingest(scene_dir=small_scene, store_name="Busy", actor=Actor(label="test"), process=False)
    Store.objects.filter(pk=scene.footage.store_id).update(review_threshold=1.0)  # every cart flagged
    media_task = tasks.prepare_footage_review_task
    sent: list[int] = []
    # tracked here, not by any worker; its media task goes to our queue, not the media queue
    monkeypatch.setattr(tasks, "track_footage_task", SimpleNamespace(delay=sent.append))
    monkeypatch.setattr(tasks, "prepare_footage_review_task", SimpleNamespace(delay=sent.append))
    footage_queue(footage=scene.footage, actor=Actor(label="test"))
    assert footage_track(footage_id=scene.footage.pk) == "processed"
    assert sent == [scene.footage.pk, scene.footage.pk]
    media_task.apply_async((scene.footage.pk,), queue=own)

    def all_tasked() -> bool:
        flagged = Transaction.objects.filter(footage=scene.footage, flagged=True)
        return flagged.count() >= 2 and not flagged.filter(tasks__isnull=True).exists()

    wait_for(all_tasked, timeout=120, what="every flagged cart's media and task", worker=worker)
    flagged = Transaction.objects.filter(footage=scene.footage, flagged=True)
    assert all(Clip.objects.filter(transaction=t).exists() for t in flagged)
    assert ReviewTask.objects.filter(transaction__in=flagged, kind="primary").count() == flagged.count()
    # one cart a run: the task ran again for each of the others
    assert worker.output().count("retry: Retry in 0s") == flagged.count() - 1
