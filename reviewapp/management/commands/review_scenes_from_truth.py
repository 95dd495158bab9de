"""A simulated store with human decisions: for the calibration report and for demos.

    python manage.py review_scenes_from_truth var/bench-scenes/mixed-* --store "Sim Calibration"

Ingests each scene folder, runs the tracker in this process, sends every cart to
review (threshold 1.0, so each is a label), and decides every task with the cart from
the scene's truth.json, as a stand-in for reviewers. Then prints the calibration
report. Write into a scratch database and broker (VAR_DIR=...): it creates a store,
users and decisions, and queues clip and settlement tasks that a worker would run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction as db

from reviewapp.models import Footage, Store, Transaction
from reviewapp.services import pipeline
from reviewapp.services.audit import Actor
from reviewapp.services.clips import review_task_queue
from reviewapp.services.ingest import IngestError, scene_ingest
from reviewapp.services.review import FinalLine, claim_next_task, decision_submit
from reviewapp.tokens import token_hash


class Command(BaseCommand):
    help = "Track simulator scenes and decide every cart from truth.json, then print the calibration report."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("scenes", nargs="+", type=Path)
        parser.add_argument("--store", default="Sim Calibration")
        parser.add_argument("--target-error", type=float, default=0.005)

    def handle(self, *args: Any, **options: Any) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        reviewer, _ = get_user_model().objects.get_or_create(username="truth-script")
        reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
        truth: dict[str, dict[str, int]] = {}
        for scene in options["scenes"]:
            if not (scene / "truth.json").exists():
                raise CommandError(f"{scene} has no truth.json")
            for token, cart in json.loads((scene / "truth.json").read_text())["carts"].items():
                truth[token_hash(token)] = cart
            try:
                with db.atomic():
                    result = scene_ingest(
                        scene_dir=scene,
                        store_name=options["store"],
                        actor=Actor(label="truth-script"),
                        process=False,
                    )
                    store = result.store
                    Store.objects.filter(pk=store.pk).update(
                        review_threshold=1.0, second_opinion_percent=0, gold_percent=0
                    )
                    Footage.objects.filter(pk=result.footage.pk).update(status="queued")
            except IngestError as exc:
                self.stderr.write(f"skipped {scene}: {exc}")
                continue
            pipeline.footage_track(footage_id=result.footage.pk)
            self.stdout.write(f"tracked {scene.name}: {len(result.visits)} visits")
        # the review tasks, without clips (a media worker would cut them; labels need none)
        for txn in Transaction.objects.filter(
            store__name=options["store"], state="needs_review", tasks__isnull=True
        ):
            review_task_queue(txn=txn)
        decided = 0
        while (task := claim_next_task(reviewer=reviewer)) is not None:
            cart = truth.get(task.transaction.visit.token_hash, {})
            decision_submit(
                task=task,
                reviewer=reviewer,
                outcome="approved",
                lines=[FinalLine(sku, qty, "other") for sku, qty in cart.items() if qty > 0],
            )
            decided += 1
        self.stdout.write(f"decided {decided} tasks from truth.json")
        call_command(
            "calibration_report", "--store", options["store"], "--target-error", str(options["target_error"]),
            stdout=self.stdout,
        )  # fmt: skip
