"""Preparing review media in the service, without a worker: shortest first within a footage,
and media prepared twice is kept once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    footage_track(footage_id=scene.footage.pk)  # the media tasks it queues wait for a commit that never comes
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


def test_the_shortest_prepares_only_itself(flagged: list[Any]) -> None:
    shortest = min(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    assert clips.review_prepare(txn_id=shortest.pk) == "queued"
    assert list(
        ReviewTask.objects.filter(transaction__in=flagged).values_list("transaction_id", flat=True)
    ) == [shortest.pk]


def test_media_made_twice_is_kept_once_and_the_second_copy_removed(flagged: list[Any]) -> None:
    txn = min(flagged, key=lambda t: (clips._clip_seconds(t), t.pk))
    assert clips._cut_media(txn) == []
    kept = list(Clip.objects.filter(transaction=txn).values_list("pk", "redacted_file"))
    files = media_files()
    assert kept and files
    clips._cut_media(txn)  # a second worker that got here too
    assert list(Clip.objects.filter(transaction=txn).values_list("pk", "redacted_file")) == kept
    assert media_files() == files
