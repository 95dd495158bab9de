"""Preparing review media in the service, without a worker: a task prepares every waiting
transaction of its footage, shortest first; media prepared twice is kept once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import pytest
from django.conf import settings
from django.db import transaction

from reviewapp.models import Clip, ReviewTask, Store, Transaction
from reviewapp.services import clips
from reviewapp.services.audit import Actor
from reviewapp.services.ingest import scene_ingest
from reviewapp.services.pipeline import footage_queue, footage_track

pytestmark = [pytest.mark.slow]


@pytest.fixture
def flagged(db: None, small_scene: Path) -> list[Transaction]:
    """The small scene tracked in this process with every cart flagged; no media task has run."""
    scene = scene_ingest(scene_dir=small_scene, store_name="Prep", actor=Actor(label="test"), process=False)
    Store.objects.filter(pk=scene.footage.store_id).update(review_threshold=1.0)
    with transaction.atomic():
        footage_queue(footage=scene.footage, actor=Actor(label="test"))
    footage_track(footage_id=scene.footage.pk)  # the media task it queues waits for a commit that never comes
    txns = list(Transaction.objects.filter(footage=scene.footage, state="needs_review"))
    assert len(txns) >= 2, "the scene should flag at least two carts"
    return txns


def media_files() -> set[Path]:
    return {p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file() and "clips" in p.parts}


def test_a_task_prepares_the_shorter_waiting_transactions_of_its_footage_first(flagged: list[Any]) -> None:
    by_length = sorted(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    longest, shorter = by_length[-1], by_length[:-1]
    assert clips.review_prepare(txn_id=longest.pk) == "queued"
    tasks = list(ReviewTask.objects.filter(transaction__in=flagged).order_by("created_at", "pk"))
    assert [t.transaction_id for t in tasks] == [t.pk for t in by_length]  # shortest first, then its own
    for txn in by_length:
        assert Clip.objects.filter(transaction=txn).exists()
        assert all(c.redacted_file and c.poster for c in Clip.objects.filter(transaction=txn))
    # their own tasks come later and find them done
    assert {clips.review_prepare(txn_id=t.pk) for t in shorter} == {"already queued"}


def test_the_shortest_prepares_the_longer_ones_too_after_itself(flagged: list[Any]) -> None:
    by_length = sorted(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    assert clips.review_prepare(txn_id=by_length[0].pk) == "queued"
    tasks = ReviewTask.objects.filter(transaction__in=flagged).order_by("created_at", "pk")
    assert list(tasks.values_list("transaction_id", flat=True)) == [t.pk for t in by_length]


def test_reviewers_get_a_clip_at_most_the_player_size_with_every_frame(flagged: list[Any]) -> None:
    txn = min(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    assert clips.review_prepare(txn_id=txn.pk) == "queued"
    clip = Clip.objects.filter(transaction=txn).first()
    assert clip is not None
    original, redacted = (cv2.VideoCapture(f.path) for f in (clip.file, clip.redacted_file))
    size = [
        (int(c.get(cv2.CAP_PROP_FRAME_WIDTH)), int(c.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        for c in (original, redacted)
    ]
    counts = [int(c.get(cv2.CAP_PROP_FRAME_COUNT)) for c in (original, redacted)]
    (width, height), (r_width, r_height) = size
    assert (
        r_height == min(height, clips.REVIEW_CLIP_HEIGHT) and abs(r_width / r_height - width / height) < 0.01
    )
    assert counts[0] == counts[1] > 10
    for event in txn.events.exclude(slot=None):  # from the full-size redacted frames
        assert event.before_crop and event.after_crop


def test_media_made_twice_is_kept_once_and_the_second_copy_removed(flagged: list[Any]) -> None:
    txn = min(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    assert clips._cut_media(txn) == []
    kept = list(Clip.objects.filter(transaction=txn).values_list("pk", "redacted_file"))
    files = media_files()
    assert kept and files
    clips._cut_media(txn)  # a second worker that got here too
    assert list(Clip.objects.filter(transaction=txn).values_list("pk", "redacted_file")) == kept
    assert media_files() == files


def test_a_transaction_another_media_task_holds_is_left_to_it_until_its_claim_lapses(
    flagged: list[Any],
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    txn = flagged[0]
    Transaction.objects.filter(pk=txn.pk).update(media_claim="other", media_claimed_at=timezone.now())
    assert clips.review_prepare(txn_id=txn.pk) == "in progress"
    assert not Clip.objects.filter(transaction=txn).exists()
    others = [t.pk for t in flagged[1:]]
    assert (
        set(Clip.objects.filter(transaction_id__in=others).values_list("transaction_id", flat=True)) == set()
    )
    # the holder was killed: once its claim is older than the media time limit, it is taken over
    lapsed = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMITS["media"] + 1)
    Transaction.objects.filter(pk=txn.pk).update(media_claimed_at=lapsed)
    assert clips.review_prepare(txn_id=txn.pk) == "queued"
    assert Clip.objects.filter(transaction=txn).exists()
    assert not Transaction.objects.filter(pk__in=[t.pk for t in flagged]).exclude(media_claim="").exists()


def test_tracking_queues_one_media_task_for_all_the_flagged_carts_of_its_footage(
    db: None, small_scene: Path, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewapp import tasks

    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(tasks.prepare_footage_review_task, "delay", lambda pk: sent.append(("footage", pk)))
    monkeypatch.setattr(tasks.prepare_review_task, "delay", lambda pk: sent.append(("transaction", pk)))
    scene = scene_ingest(scene_dir=small_scene, store_name="One", actor=Actor(label="test"), process=False)
    Store.objects.filter(pk=scene.footage.store_id).update(review_threshold=1.0)
    with transaction.atomic():
        footage_queue(footage=scene.footage, actor=Actor(label="test"))
    with django_capture_on_commit_callbacks(execute=True):
        footage_track(footage_id=scene.footage.pk)
    assert Transaction.objects.filter(footage=scene.footage, state="needs_review").count() >= 2
    assert sent == [("footage", scene.footage.pk)]


def test_the_footage_task_prepares_every_waiting_transaction_shortest_first(flagged: list[Any]) -> None:
    footage_id = flagged[0].footage_id
    by_length = sorted(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    assert clips.footage_review_prepare(footage_id=footage_id) == f"{len(flagged)} queued"
    tasks = ReviewTask.objects.filter(transaction__in=flagged).order_by("created_at", "pk")
    assert list(tasks.values_list("transaction_id", flat=True)) == [t.pk for t in by_length]
    assert all(Clip.objects.filter(transaction=t).exists() for t in flagged)
    assert clips.footage_review_prepare(footage_id=footage_id) == "nothing waiting"  # redelivered


def test_the_footage_task_leaves_a_held_transaction_to_its_holder_and_says_so(flagged: list[Any]) -> None:
    from django.utils import timezone

    footage_id = flagged[0].footage_id
    held, rest = flagged[0], flagged[1:]
    Transaction.objects.filter(pk=held.pk).update(media_claim="other", media_claimed_at=timezone.now())
    assert clips.footage_review_prepare(footage_id=footage_id) == "in progress"  # its task looks again
    assert not Clip.objects.filter(transaction=held).exists()
    assert all(ReviewTask.objects.filter(transaction=t).exists() for t in rest)
    Transaction.objects.filter(pk=held.pk).update(media_claim="", media_claimed_at=None)  # the holder gave up
    assert clips.footage_review_prepare(footage_id=footage_id) == "1 queued"
    assert ReviewTask.objects.filter(transaction=held).exists()


def test_a_flagged_cart_whose_media_task_never_finished_is_found_by_the_sweep(make_transaction: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    long_ago = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMITS["media"] + 120)
    lost = make_transaction(triaged_at=long_ago)  # its media task failed: no task, no claim
    fresh = make_transaction(triaged_at=now)  # its media task may still be on its way
    being_made = make_transaction(triaged_at=long_ago, media_claim="w", media_claimed_at=now)
    holder_died = make_transaction(triaged_at=long_ago, media_claim="w", media_claimed_at=long_ago)
    done = make_transaction(triaged_at=long_ago)
    ReviewTask.objects.create(transaction=done, kind="primary", settle_by=now)
    settled = make_transaction(state="settled", triaged_at=long_ago)
    found = clips.media_stuck(now=now)
    assert found == [lost.pk, holder_died.pk]
    assert not {fresh.pk, being_made.pk, done.pk, settled.pk} & set(found)


def test_a_dispute_whose_clips_were_never_cut_is_found_by_the_sweep_for_an_hour(
    make_transaction: Any, store: Any
) -> None:
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from reviewapp.models import Camera, Footage

    now = timezone.now()
    camera = Camera.objects.create(store=store, name="c", width=64, height=36, fps=15)
    footage = Footage(store=store, camera=camera, started_at=now - timedelta(days=2))
    footage.file.save("f.mp4", ContentFile(b"video"), save=False)
    footage.save()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMITS["media"] + 120)

    def disputed(opened: Any, **extra: Any) -> Any:
        txn = make_transaction(state="disputed", footage=footage, **extra)
        task = ReviewTask.objects.create(transaction=txn, kind="dispute", settle_by=now + timedelta(hours=2))
        ReviewTask.objects.filter(pk=task.pk).update(created_at=opened)
        return txn

    lost = disputed(stale)  # its media message was lost
    fresh = disputed(now)  # its media task may still be on its way
    given_up = disputed(now - timedelta(hours=2))  # its media cannot be made: not tried for ever
    has_clips = disputed(stale)
    Clip.objects.create(transaction=has_clips, footage=footage, t_start=0, t_end=1)
    assert clips.media_stuck(now=now) == [lost.pk]
    assert not {fresh.pk, given_up.pk, has_clips.pk} & set(clips.media_stuck(now=now))


def test_a_dispute_of_a_cart_that_settled_on_its_own_gets_its_clips_cut_for_the_reviewer(
    db: None, small_scene: Path, other_reviewer: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from reviewapp.services import disputes, settlement
    from reviewapp.services.review import claim_next_task

    scene = scene_ingest(scene_dir=small_scene, store_name="Calm", actor=Actor(label="test"), process=False)
    Store.objects.filter(pk=scene.footage.store_id).update(review_threshold=0.0, audit_sample_percent=0.0)
    with transaction.atomic():
        footage_queue(footage=scene.footage, actor=Actor(label="test"))
    footage_track(footage_id=scene.footage.pk)
    txn = (
        Transaction.objects.filter(footage=scene.footage, state="auto_approved", events__isnull=False)
        .distinct()
        .first()
    )
    assert txn is not None, "the scene should auto-approve a cart with events"
    assert settlement.charge_settle(txn_id=txn.pk) == "captured"
    assert not Clip.objects.filter(transaction=txn).exists()  # no one was meant to look at it

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        disputes.dispute_open(txn=txn, external_id="d-calm", statement="not mine", actor="api:test")
    assert len(callbacks) == 1  # its media is queued
    task = claim_next_task(reviewer=other_reviewer)
    assert task is not None and task.transaction_id == txn.pk
    client.force_login(other_reviewer)
    page = client.get(f"/review/t/{task.code}/").content.decode()  # a reviewer quicker than the media
    assert "clips are being cut" in page and 'http-equiv="refresh"' in page and "<video" not in page

    assert clips.review_prepare(txn_id=txn.pk) == "media made"
    made = list(Clip.objects.filter(transaction=txn))
    assert made and all(c.redacted_file and c.poster for c in made)
    assert list(ReviewTask.objects.filter(transaction=txn).values_list("kind", flat=True)) == ["dispute"]
    assert clips.review_prepare(txn_id=txn.pk) == "nothing to make"  # a second delivery
    page = client.get(f"/review/t/{task.code}/").content.decode()
    assert "<video" in page and "being cut" not in page and 'http-equiv="refresh"' not in page


def test_media_is_not_made_for_a_cart_past_its_dispute_window_no_one_is_asked_to_look_at(
    flagged: list[Any],
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    txn = flagged[0]
    long_ago = timezone.now() - timedelta(days=400)
    Transaction.objects.filter(pk=txn.pk).update(state="settled", settled_at=long_ago)
    assert clips.review_prepare(txn_id=txn.pk) == "not flagged"
    assert not Clip.objects.filter(transaction=txn).exists()


def test_a_cart_still_open_to_dispute_gets_its_clips_before_its_footage_goes(flagged: list[Any]) -> None:
    """What the retention job queues before it purges the footage of a cart that settled on its own."""
    from django.utils import timezone

    txn = flagged[0]
    Transaction.objects.filter(pk=txn.pk).update(state="settled", settled_at=timezone.now())
    assert clips.review_prepare(txn_id=txn.pk) == "media made"
    assert Clip.objects.filter(transaction=txn).exists()
    assert not ReviewTask.objects.filter(transaction=txn).exists()  # media only: no one is asked to look


def test_the_footage_s_shopper_tracks_are_read_once_for_all_its_carts_media(flagged: list[Any]) -> None:
    # an hour of footage holds tens of thousands of track samples: never a copy per transaction
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert clips.footage_review_prepare(footage_id=flagged[0].footage_id) == f"{len(flagged)} queued"
    reads = [q["sql"] for q in queries.captured_queries if '"reviewapp_footage"."tracks"' in q["sql"]]
    # one read of the footage row itself, not one copy per transaction row joined to it
    assert len(reads) == 1 and '"reviewapp_transaction"' not in reads[0], reads
    assert all(Clip.objects.filter(transaction=t).exists() for t in flagged)


def test_the_footage_task_makes_a_few_at_a_time_and_asks_to_run_again_for_the_rest(
    flagged: list[Any], settings: Any
) -> None:
    # an hour of footage's hundreds of flagged carts: never all in one task (its time limit, the
    # other footage waiting behind it on the media queue)
    settings.MEDIA_BATCH_TRANSACTIONS = 1
    footage_id = flagged[0].footage_id
    by_length = sorted(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    outcomes = [clips.footage_review_prepare(footage_id=footage_id) for _ in flagged]
    assert outcomes == ["more waiting"] * (len(flagged) - 1) + ["1 queued"]
    tasks = ReviewTask.objects.filter(transaction__in=flagged).order_by("created_at", "pk")
    assert list(tasks.values_list("transaction_id", flat=True)) == [t.pk for t in by_length]
    assert clips.footage_review_prepare(footage_id=footage_id) == "nothing waiting"


def test_a_cart_flagged_while_the_footage_task_works_makes_it_run_again(
    flagged: list[Any], monkeypatch: Any
) -> None:
    # carts are flagged as the tracker hands them out, while a media task of their footage may
    # already be working on the ones before: it runs again for them rather than leave them waiting
    later, others = flagged[-1], flagged[:-1]
    Transaction.objects.filter(pk=later.pk).update(state="tracking")  # not flagged yet
    make = clips._prepare_batch

    def flagged_meanwhile(*args: Any, **kwargs: Any) -> Any:
        made = make(*args, **kwargs)
        Transaction.objects.filter(pk=later.pk).update(state="needs_review")
        return made

    monkeypatch.setattr(clips, "_prepare_batch", flagged_meanwhile)
    footage_id = later.footage_id
    assert clips.footage_review_prepare(footage_id=footage_id) == "more waiting"
    assert all(ReviewTask.objects.filter(transaction=t).exists() for t in others)
    assert not ReviewTask.objects.filter(transaction=later).exists()
    assert clips.footage_review_prepare(footage_id=footage_id) == "1 queued"
    assert ReviewTask.objects.filter(transaction=later).exists()


def test_a_transaction_s_own_media_task_makes_it_first_and_a_few_others_at_most(
    flagged: list[Any], settings: Any
) -> None:
    settings.MEDIA_BATCH_TRANSACTIONS = 1
    longest = max(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    assert clips.review_prepare(txn_id=longest.pk) == "queued"
    assert set(
        ReviewTask.objects.filter(transaction__in=flagged).values_list("transaction_id", flat=True)
    ) == {longest.pk}
