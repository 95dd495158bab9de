"""A simulated store with human decisions: for the calibration report and for demos.

    python manage.py review_scenes_from_truth var/bench-scenes/mixed-* --store "Sim Calibration"

Ingests each scene folder, runs the tracker in this process, sends every cart to
review (threshold 1.0, so each is a label), and decides every task with the cart from
the scene's truth.json, as a stand-in for reviewers. Then prints the calibration
report. Write into a scratch database and broker (VAR_DIR=...): it creates a store,
users and decisions, and queues clip and settlement tasks that a worker would run.

Each scene is a world of its own, so each gets its own time window (one after the
other, ending now) and its own camera named after the folder. Ingested at the default
time (ending now) the scenes' windows overlap, and the tracker of a later scene is
handed the earlier scenes' shoppers as visits present in the store; on one shared
camera it also watches slots left over from earlier scenes' planograms. Either makes
the carts differ from the tracker benchmark's on the same scenes.

Only this stand-in reviewer (and tests) read truth.json; the product never does.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction as db
from django.utils import timezone

from reviewapp.models import Footage, Store, Transaction
from reviewapp.services import pipeline
from reviewapp.services.audit import Actor
from reviewapp.services.clips import review_task_queue
from reviewapp.services.ingest import IngestError, IngestResult, scene_ingest
from reviewapp.services.review import FinalLine, claim_next_task, decision_submit
from reviewapp.states import TransactionState
from reviewapp.tokens import token_hash
from tracking.video import VideoError, probe

SCENE_GAP = timedelta(minutes=5)  # between one scene's last frame and the next one's first


def scene_as_own_camera(scene: Path, into: Path) -> Path:
    """The scene as a folder whose planogram names a camera of its own (after the scene's
    folder); the other files are links to the scene's."""
    into.mkdir(parents=True)
    for item in scene.iterdir():
        if item.name != "planogram.json":
            (into / item.name).symlink_to(item.resolve())
    planogram = json.loads((scene / "planogram.json").read_text())
    planogram["camera"]["name"] = f"{planogram['camera']['name']} {scene.name}"[:100]
    (into / "planogram.json").write_text(json.dumps(planogram))
    return into


def truth_carts(scenes: Sequence[Path]) -> dict[str, dict[str, int]]:
    """Each scene shopper's true cart (no zero quantities), by the keyed hash of their token."""
    out: dict[str, dict[str, int]] = {}
    for scene in scenes:
        for token, cart in json.loads((scene / "truth.json").read_text())["carts"].items():
            out[token_hash(token)] = {sku: int(qty) for sku, qty in cart.items() if int(qty) > 0}
    return out


def scenes_track(
    *, scenes: Sequence[Path], store_name: str, say: Callable[[str], None] = lambda _: None
) -> list[IngestResult]:
    """Ingest each scene into the store, each in its own time window (back to back, ending now
    or before the store's earliest footage) on its own camera, and track it in this process;
    triage follows the store's policy. A scene already in the store is skipped."""
    durations: dict[Path, timedelta] = {}
    for scene in scenes:
        if not (scene / "truth.json").exists():
            raise CommandError(f"{scene} has no truth.json")
        try:
            durations[scene] = timedelta(seconds=probe(scene / "footage.mp4").duration)
        except VideoError as exc:
            raise CommandError(f"{scene}: {exc}") from exc
    end = timezone.now()
    earliest = Footage.objects.filter(store__name=store_name).order_by("started_at").first()
    if earliest is not None:
        end = min(end, earliest.started_at - SCENE_GAP)
    started_at = end - sum(durations.values(), SCENE_GAP * len(durations))
    results = []
    with tempfile.TemporaryDirectory(prefix="review-scenes-") as scratch:
        for i, scene in enumerate(scenes):
            try:
                with db.atomic():
                    result = scene_ingest(
                        scene_dir=scene_as_own_camera(scene, Path(scratch) / f"{i:05d}-{scene.name}"),
                        store_name=store_name,
                        actor=Actor(label="truth-script"),
                        started_at=started_at,
                        process=False,
                    )
                    Footage.objects.filter(pk=result.footage.pk).update(status="queued")
            except IngestError as exc:
                say(f"skipped {scene}: {exc}")
                continue
            finally:
                started_at += durations[scene] + SCENE_GAP
            pipeline.footage_track(footage_id=result.footage.pk)
            results.append(result)
            say(f"tracked {scene.name}: {len(result.visits)} visits")
    return results


def decide_from_truth(*, store: Store, truth: dict[str, dict[str, int]], reviewer: Any) -> int:
    """Decide every task the reviewer can claim with the true cart, as a stand-in for
    reviewers (so use a scratch database). The tasks are queued here without clips (a media worker would cut them;
    labels need none). Returns the decisions made."""
    for txn in Transaction.objects.filter(
        store=store, state=TransactionState.NEEDS_REVIEW, tasks__isnull=True
    ):
        review_task_queue(txn=txn)
    decided = 0
    while (task := claim_next_task(reviewer=reviewer)) is not None:
        cart = truth.get(task.transaction.visit.token_hash, {})
        decision_submit(
            task=task,
            reviewer=reviewer,
            outcome="approved",
            lines=[FinalLine(sku, qty, "other") for sku, qty in cart.items()],
        )
        decided += 1
    return decided


def truth_script_reviewer() -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    reviewer, _ = get_user_model().objects.get_or_create(username="truth-script")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return reviewer


class Command(BaseCommand):
    help = "Track simulator scenes and decide every cart from truth.json, then print the calibration report."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("scenes", nargs="+", type=Path)
        parser.add_argument("--store", default="Sim Calibration")
        parser.add_argument("--target-error", type=float, default=0.005)

    def handle(self, *args: Any, **options: Any) -> None:
        reviewer = truth_script_reviewer()
        store, _ = Store.objects.get_or_create(name=options["store"])
        # every cart to a human, so each is a label; no second opinions or gold checks to decide
        Store.objects.filter(pk=store.pk).update(
            review_threshold=1.0, second_opinion_percent=0, gold_percent=0
        )
        scenes_track(scenes=options["scenes"], store_name=store.name, say=self.stdout.write)
        decided = decide_from_truth(store=store, truth=truth_carts(options["scenes"]), reviewer=reviewer)
        self.stdout.write(f"decided {decided} tasks from truth.json")
        call_command(
            "calibration_report", "--store", options["store"], "--target-error", str(options["target_error"]),
            stdout=self.stdout,
        )  # fmt: skip
