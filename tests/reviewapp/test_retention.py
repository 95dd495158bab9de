"""Media goes when the store's retention runs out; decisions and the audit chain stay;
nothing an open task, an open dispute or a legal hold needs is purged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from reviewapp.models import AuditEvent, Camera, Clip, Footage, ReviewTask
from reviewapp.services.retention import legal_hold_set, media_purge


@pytest.fixture
def old_clip(make_transaction, store):
    """A settled transaction from long ago, with a clip and poster on disk."""
    long_ago = timezone.now() - timedelta(days=400)
    txn = make_transaction("settled", settled_at=long_ago, decided_at=long_ago)
    clip = Clip(transaction=txn, t_start=1.0, t_end=5.0)
    clip.file.save("c.mp4", ContentFile(b"\x00\x00\x00\x18ftypmp42 fake clip"), save=False)
    clip.poster.save("c.jpg", ContentFile(b"poster"), save=False)
    clip.save()
    return clip


def test_clips_past_retention_are_purged_and_their_hashes_kept(
    old_clip, django_capture_on_commit_callbacks
) -> None:
    path = old_clip.file.path
    with django_capture_on_commit_callbacks(execute=True):  # files go once the purge has committed
        result = media_purge()
    assert result["transactions"] == 1
    old_clip.refresh_from_db()
    assert old_clip.purged_at and "retention" in old_clip.purge_reason
    import os

    assert not os.path.exists(path)
    event = AuditEvent.objects.get(action="media.purged")
    names = {f["name"] for f in event.data["files"]}
    assert old_clip.file.name in names and all(len(f["sha256"]) == 64 for f in event.data["files"])


def test_a_legal_hold_keeps_the_media(old_clip, supervisor) -> None:
    legal_hold_set(txn=old_clip.transaction, hold=True, actor=supervisor, reason="court order 17")
    assert media_purge()["transactions"] == 0
    old_clip.refresh_from_db()
    assert old_clip.purged_at is None
    assert AuditEvent.objects.filter(action="transaction.legal_hold").exists()


def test_an_open_task_keeps_the_media(old_clip) -> None:
    ReviewTask.objects.create(transaction=old_clip.transaction, settle_by=timezone.now(), kind="dispute")
    assert media_purge()["transactions"] == 0


def test_an_open_dispute_keeps_the_media(old_clip) -> None:
    txn = old_clip.transaction
    txn.state = "disputed"
    txn.save()
    assert media_purge()["transactions"] == 0


def test_recent_clips_stay(make_transaction) -> None:
    txn = make_transaction("settled", settled_at=timezone.now() - timedelta(days=5))
    clip = Clip.objects.create(transaction=txn, t_start=0, t_end=1)
    clip.file.save("x.mp4", ContentFile(b"x"))
    assert media_purge()["transactions"] == 0


def test_old_footage_is_purged_once_its_transactions_are_final(store, make_transaction) -> None:
    camera = Camera.objects.create(store=store, name="c", width=64, height=36, fps=15)
    footage = Footage(
        store=store, camera=camera, started_at=timezone.now() - timedelta(days=45), sha256="ab" * 32
    )
    footage.file.save("f.mp4", ContentFile(b"video"), save=False)
    footage.save()
    txn = make_transaction("needs_review", footage=footage)
    assert media_purge()["footage"] == 0  # still under review
    txn.state = "settled"
    txn.settled_at = timezone.now() - timedelta(days=44)
    txn.save()
    Clip.objects.create(transaction=txn, footage=footage, t_start=0, t_end=1)  # cut for its review
    assert media_purge()["footage"] == 1
    footage.refresh_from_db()
    assert footage.purged_at and footage.sha256 == "ab" * 32


def test_footage_stays_until_the_carts_that_may_still_be_disputed_have_their_clips(
    store, make_transaction, django_capture_on_commit_callbacks
) -> None:
    """A cart that settled on its own has no clips: once its footage goes, a dispute within the
    window would find nothing to show. Its clips are cut first; the footage goes after."""
    camera = Camera.objects.create(store=store, name="c", width=64, height=36, fps=15)
    footage = Footage(store=store, camera=camera, started_at=timezone.now() - timedelta(days=45))
    footage.file.save("f.mp4", ContentFile(b"video"), save=False)
    footage.save()
    settled_at = timezone.now() - timedelta(days=44)  # footage retention 30 days, dispute window 60
    txn = make_transaction("settled", footage=footage, settled_at=settled_at, final_amount=450)
    nothing = make_transaction("settled", footage=footage, settled_at=settled_at, final_amount=0)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert media_purge()["footage"] == 0
    assert len(callbacks) == 1  # its media task (a $0 charge cannot be disputed: none for it)
    assert Footage.objects.get(pk=footage.pk).purged_at is None

    Clip.objects.create(transaction=txn, footage=footage, t_start=0, t_end=1)  # the media task ran
    assert media_purge()["footage"] == 1
    assert nothing.clips.count() == 0


def test_footage_goes_without_clips_once_the_dispute_window_has_closed(store, make_transaction) -> None:
    camera = Camera.objects.create(store=store, name="c", width=64, height=36, fps=15)
    footage = Footage(store=store, camera=camera, started_at=timezone.now() - timedelta(days=90))
    footage.file.save("f.mp4", ContentFile(b"video"), save=False)
    footage.save()
    make_transaction(
        "settled", footage=footage, settled_at=timezone.now() - timedelta(days=89), final_amount=450
    )
    assert media_purge()["footage"] == 1
