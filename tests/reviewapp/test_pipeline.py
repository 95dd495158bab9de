"""The whole loop on a real worker: footage in, carts tracked and triaged, clips cut, charges settled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from reviewapp.models import Charge, Clip, Footage, ReviewTask, Transaction
from reviewapp.services.audit import Actor
from reviewapp.services.ingest import scene_ingest
from reviewapp.services.pipeline import audit_sample_draw, footage_track, triage_reasons
from reviewapp.tokens import token_hash
from tests.conftest import wait_for
from tracking.tracker import SHELF_NOT_IN_VIEW

pytestmark = [pytest.mark.slow]


@pytest.mark.worker
def test_footage_becomes_settled_charges_and_review_tasks_with_clips(
    transactional_db, celery_worker_process, small_scene
):
    result = scene_ingest(scene_dir=small_scene, store_name="Sim", actor=Actor(label="test"))
    visits = json.loads((small_scene / "visits.json").read_text())
    footage = result.footage

    def done() -> bool:
        txns = Transaction.objects.filter(footage=footage)
        if Footage.objects.get(pk=footage.pk).status in ("failed",):
            raise AssertionError(Footage.objects.get(pk=footage.pk).error)
        if txns.count() < len(visits):
            return False
        flagged = txns.filter(state="needs_review")
        return (
            all(ReviewTask.objects.filter(transaction=t).exists() for t in flagged)
            and not txns.filter(state__in=["tracking", "auto_approved"]).exists()
        )

    wait_for(done, timeout=120, what="tracking, triage, clips and settlement", worker=celery_worker_process)
    footage.refresh_from_db()
    assert footage.status == "processed" and footage.progress == 1.0
    txns = list(Transaction.objects.filter(footage=footage))
    assert len(txns) == len(visits)  # every visit becomes a transaction, none dropped or doubled
    for txn in txns:
        assert txn.state in ("needs_review", "settled"), txn.state
        if txn.state == "settled":
            assert Charge.objects.get(transaction=txn).state == "captured"
            assert not txn.review_reasons
        else:
            assert txn.review_reasons
            task = ReviewTask.objects.get(transaction=txn)
            assert task.state == "queued" and task.settle_by > txn.visit.exited_at
            # privacy mode (the default): crops come from the redacted clip, and exist
            for event in txn.events.exclude(slot=None):
                assert event.before_crop and event.after_crop
            for clip in Clip.objects.filter(transaction=txn):
                capture = cv2.VideoCapture(clip.file.path)
                assert capture.isOpened() and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 10
                assert clip.poster


@pytest.mark.worker
def test_corrupt_footage_sends_every_visit_to_review_and_does_not_loop(
    transactional_db, celery_worker_process, small_scene, tmp_path
):
    bad = tmp_path / "bad"
    shutil.copytree(small_scene, bad)
    scene = scene_ingest(scene_dir=bad, store_name="Sim", actor=Actor(label="test"), process=False)
    # the stored file is damaged after ingest (disk or network trouble)
    Path(scene.footage.file.path).write_bytes(b"\x00\x00garbage" * 1000)
    from django.db import transaction

    from reviewapp.services.pipeline import footage_queue

    with transaction.atomic():
        footage_queue(footage=scene.footage, actor=Actor(label="test"))
    wait_for(
        lambda: Footage.objects.get(pk=scene.footage.pk).status == "failed",
        what="the footage to fail",
        worker=celery_worker_process,
    )
    footage = Footage.objects.get(pk=scene.footage.pk)
    assert footage.error
    wait_for(
        lambda: ReviewTask.objects.filter(transaction__footage=footage).count() == len(scene.visits),
        what="review tasks",
        worker=celery_worker_process,
    )
    for txn in Transaction.objects.filter(footage=footage):
        assert txn.state == "needs_review" and "no usable footage" in txn.review_reasons
    assert celery_worker_process.output().count("track_footage_task") >= 1


def test_triage_follows_the_store_policy(make_transaction, store) -> None:
    txn = make_transaction("tracking", confidence=0.99, proposed_amount=500)
    store.audit_sample_percent = 0
    assert triage_reasons(txn=txn, store=store) == []
    store.review_threshold = 0.995
    assert triage_reasons(txn=txn, store=store)[0].startswith("confidence 0.99 under")
    store.review_threshold = 0.9
    store.review_limit_amount = 400
    assert "over the review limit" in triage_reasons(txn=txn, store=store)[0]
    store.review_limit_amount = 10_000
    store.audit_sample_percent = 100
    assert triage_reasons(txn=txn, store=store) == ["random audit sample"]


def test_the_audit_sample_is_reproducible_and_about_the_right_size(make_transaction, store) -> None:
    txns = [make_transaction("tracking") for _ in range(400)]
    draws = [audit_sample_draw(store=store, txn=t) for t in txns]
    assert draws == [audit_sample_draw(store=store, txn=t) for t in txns]
    share = sum(d < 10 for d in draws) / len(draws)
    assert 0.05 < share < 0.15


def test_footage_of_another_shelf_is_tracked_but_no_cart_from_it_is_trusted(db, small_scene, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(small_scene, other)
    images = sorted((other / "products").glob("*.png"))
    data = [p.read_bytes() for p in images]
    for path, content in zip(images, data[1:] + data[:1], strict=True):  # a stale planogram: all moved
        path.write_bytes(content)
    scene = scene_ingest(scene_dir=other, store_name="Sim", actor=Actor(label="test"), process=False)
    Footage.objects.filter(pk=scene.footage.pk).update(status="queued")
    assert footage_track(footage_id=scene.footage.pk) == "processed"
    footage = Footage.objects.get(pk=scene.footage.pk)
    assert footage.status == "processed" and SHELF_NOT_IN_VIEW in footage.error
    txns = list(Transaction.objects.filter(footage=footage))
    assert len(txns) == len(scene.visits)
    for txn in txns:  # every cart goes to a person, saying why
        assert txn.state == "needs_review" and SHELF_NOT_IN_VIEW in txn.review_reasons


@pytest.mark.worker
def test_footage_with_frames_missing_sends_the_visits_then_to_a_person_saying_why(db, small_scene, tmp_path):
    import subprocess

    from reviewapp.services.pipeline import NOT_ALL_SEEN
    from tracking.ffmpeg import ffmpeg_binary

    gappy = tmp_path / "gappy"
    shutil.copytree(small_scene, gappy)
    cmd = [ffmpeg_binary(), "-v", "error", "-y", "-i", str(small_scene / "footage.mp4")]
    cmd += ["-vf", "select='not(between(n,45,150))'", "-fps_mode", "vfr", "-c:v", "libx264"]
    subprocess.run([*cmd, "-preset", "veryfast", str(gappy / "footage.mp4")], check=True)  # 3 to 10 s lost
    scene = scene_ingest(scene_dir=gappy, store_name="Sim", actor=Actor(label="test"), process=False)
    Footage.objects.filter(pk=scene.footage.pk).update(status="queued")
    assert footage_track(footage_id=scene.footage.pk) == "processed"
    footage = Footage.objects.get(pk=scene.footage.pk)
    assert footage.status == "processed" and "no picture from 2.9s to 10.1s" in footage.error
    visits = {v["token"][-4:]: v for v in json.loads((gappy / "visits.json").read_text())}
    txns = list(Transaction.objects.filter(footage=footage).select_related("visit"))
    assert len(txns) == len(visits)
    during = [t for t in txns if visits[t.visit.token_last4]["entered_at"] <= 10.1]
    assert during
    for txn in during:
        assert txn.state == "needs_review" and NOT_ALL_SEEN in txn.review_reasons


@pytest.fixture(scope="module")
def long_scene(small_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small scene played three times over (a minute, six visits): the first passes' shoppers
    leave long before the footage ends."""
    from tracking.bench import repeated_scene

    return repeated_scene(small_scene, tmp_path_factory.mktemp("long"), 3)


def test_a_tracking_run_killed_after_some_carts_were_recorded_runs_again_to_one_transaction_a_visit(
    db, long_scene, monkeypatch
):
    """Carts are recorded as the tracker hands them out; a worker killed in the middle leaves the
    footage in processing with some of them, and the redelivered task records the rest, none twice."""
    from reviewapp.services import pipeline

    scene = scene_ingest(scene_dir=long_scene, store_name="Sim", actor=Actor(label="test"), process=False)
    Footage.objects.filter(pk=scene.footage.pk).update(status="queued")
    early = pipeline._Recorder.early
    handed: list[str] = []

    def killed_after_the_first_carts(self: pipeline._Recorder, carts) -> None:  # type: ignore[no-untyped-def]
        if handed:
            raise SystemExit("worker killed")
        early(self, carts)
        handed.extend(cart.token for cart in carts.carts)

    monkeypatch.setattr(pipeline._Recorder, "early", killed_after_the_first_carts)
    with pytest.raises(SystemExit):
        footage_track(footage_id=scene.footage.pk)
    footage = Footage.objects.get(pk=scene.footage.pk)
    assert footage.status == "processing"
    recorded = {t.visit_id: t for t in Transaction.objects.filter(footage=footage)}
    assert 1 <= len(recorded) == len(handed) < len(scene.visits)
    assert all(t.state != "tracking" for t in recorded.values())
    assert all(t.triaged_at for t in recorded.values())

    monkeypatch.setattr(pipeline._Recorder, "early", early)
    assert footage_track(footage_id=scene.footage.pk) == "processed"
    txns = list(Transaction.objects.filter(footage=footage))
    assert len(txns) == len(scene.visits) == 6  # every visit once
    again = {t.visit_id: t for t in txns}
    for visit_id, txn in recorded.items():  # the carts recorded before are left as they were
        assert again[visit_id].triaged_at == txn.triaged_at and again[visit_id].confidence == txn.confidence
        assert again[visit_id].events.count() == txn.events.count()


@pytest.mark.worker
def test_a_shopper_s_cart_is_triaged_and_prepared_while_the_rest_of_the_footage_is_tracked(
    transactional_db, celery_worker_process, long_scene
):
    """The shoppers of the first pass left long before the footage ends: their carts are triaged
    (and flagged ones queued for their media) before the footage is processed, and everything ends
    as if recorded at once: a transaction a visit, each flagged one with clips and its task."""
    result = scene_ingest(scene_dir=long_scene, store_name="Sim", actor=Actor(label="test"))
    footage = result.footage
    visits = json.loads((long_scene / "visits.json").read_text())

    def done() -> bool:
        row = Footage.objects.get(pk=footage.pk)
        if row.status == "failed":
            raise AssertionError(row.error)
        txns = Transaction.objects.filter(footage=footage)
        return (
            row.status == "processed"
            and txns.count() == len(visits)
            and all(
                ReviewTask.objects.filter(transaction=t).exists() for t in txns.filter(state="needs_review")
            )
            and not txns.filter(state__in=["tracking", "auto_approved"]).exists()
        )

    wait_for(done, timeout=180, what="tracking, triage, clips and settlement", worker=celery_worker_process)
    footage.refresh_from_db()
    assert footage.processed_at is not None
    txns = list(Transaction.objects.filter(footage=footage).select_related("visit"))
    assert len(txns) == len(visits)
    length = (footage.duration_s or 0) / 3
    first_pass = {token_hash(v["token"]) for v in visits if v["exited_at"] < length}
    left_early = [t for t in txns if t.visit.token_hash in first_pass]
    assert left_early and len(left_early) < len(txns)
    for txn in left_early:
        assert txn.triaged_at is not None and txn.triaged_at < footage.processed_at
    for txn in txns:
        if txn.state == "needs_review":
            assert Clip.objects.filter(transaction=txn).exists()
            for event in txn.events.exclude(slot=None):
                assert event.before_crop and event.after_crop
