from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviewapp.services.audit import Actor
from reviewapp.services.ingest import IngestError, scene_ingest


class Command(BaseCommand):
    help = "Load a simulator scene folder as a store: products, camera, planogram, visits, footage."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("scene_dir", type=Path)
        parser.add_argument("--store", default="Demo Store", help="store name (created if new)")
        parser.add_argument(
            "--no-process",
            action="store_true",
            help="only load; do not queue tracking and the rest of the pipeline",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        scene_dir: Path = options["scene_dir"]
        if not scene_dir.is_dir():
            raise CommandError(f"{scene_dir} is not a folder")
        try:
            result = scene_ingest(
                scene_dir=scene_dir,
                store_name=options["store"],
                actor=Actor(label="command:ingest_scene"),
                process=not options["no_process"],
            )
        except IngestError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Ingested {scene_dir} into store {result.store.name!r}: camera {result.camera.name}, "
            f"{result.camera.slots.count()} slots, {len(result.visits)} visits, footage {result.footage.code}"
            + ("" if options["no_process"] else " (tracking queued)")
        )
