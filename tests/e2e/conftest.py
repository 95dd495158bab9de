"""Real review data for browser tests: a rendered scene, tracked and cut the way production does it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def review_scene(tmp_path_factory: Any) -> Path:
    """Five shoppers over 30 s at 640x360: enough flagged carts for several decisions."""
    from tracking.simulator import simulate

    out = tmp_path_factory.mktemp("scene-review")
    simulate(out, seed=11, preset="mixed", shoppers=5, duration=30, width=640, height=360, fps=15)
    return out


def build_review_queue(scene_dir: Path, *, store_name: str = "E2E Shop") -> list[Any]:
    """Ingest, track, triage (every cart flagged) and cut clips in-process; returns the queued tasks.

    Runs the pipeline's own services synchronously: no worker is needed. The
    follow-up Celery messages they send after commit go to this run's private broker
    folder and are never consumed.
    """
    from reviewapp.models import Footage, ReviewTask, Store, Transaction
    from reviewapp.services import clips, pipeline
    from reviewapp.services.audit import Actor
    from reviewapp.services.ingest import scene_ingest

    Store.objects.create(name=store_name, currency="USD", review_threshold=0.999, audit_sample_percent=0)
    result = scene_ingest(
        scene_dir=scene_dir, store_name=store_name, actor=Actor(label="test"), process=False
    )
    Footage.objects.filter(pk=result.footage.pk).update(status="queued")
    assert pipeline.footage_track(footage_id=result.footage.pk) == "processed"
    for txn in Transaction.objects.filter(footage=result.footage, state="needs_review"):
        clips.review_prepare(txn_id=txn.pk)
    return list(ReviewTask.objects.filter(state="queued").order_by("-priority", "settle_by", "id"))


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def scene_copy(review_scene: Path, tmp_path: Path) -> Path:
    target = tmp_path / "scene"
    shutil.copytree(review_scene, target)
    return target
