from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from reviewapp.services.metrics import rollup_range


class Command(BaseCommand):
    help = (
        "Recompute the dashboard's hourly rollups for the last N days (after generate_history or a restore)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=float, default=1.0)

    def handle(self, *args: Any, **options: Any) -> None:
        hours = rollup_range(since=timezone.now() - timedelta(days=options["days"]))
        self.stdout.write(f"rolled up {hours} hours")
