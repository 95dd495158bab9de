from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date

from reviewapp.models import Store
from reviewapp.services.audit import Actor, audit_record
from reviewapp.services.training import training_export


class Command(BaseCommand):
    help = "Write every human-decided tracker event as a training example (JSONL manifest + slot images)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--since", help="YYYY-MM-DD")
        parser.add_argument("--store", help="store name")

    def handle(self, *args: Any, **options: Any) -> None:
        since = None
        if options["since"]:
            day = parse_date(options["since"])
            if day is None:
                raise CommandError("--since must be YYYY-MM-DD")
            since = timezone.make_aware(datetime(day.year, day.month, day.day))
        store = None
        if options["store"]:
            store = Store.objects.filter(name=options["store"]).first()
            if store is None:
                raise CommandError(f"no store named {options['store']!r}")
        count = training_export(out_dir=options["out"], since=since, store=store)
        audit_record(
            actor=Actor(label="command:export_training_data"),
            action="export.training_data",
            object_type="export",
            object_code="training_data",
            store=store,
            data={"since": options["since"], "examples": count, "out": str(options["out"])},
        )
        self.stdout.write(f"{count} examples in {options['out'] / 'manifest.jsonl'}")
