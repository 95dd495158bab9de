from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reviewapp.services.audit import Actor
from reviewapp.services.retention import media_purge


class Command(BaseCommand):
    help = "Purge footage and clips past their store's retention now (the periodic job does it hourly)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = media_purge(actor=Actor(label="command:purge_media"))
        self.stdout.write(
            f"purged {result['footage']} footage files and the clips of {result['transactions']} transactions"
        )
