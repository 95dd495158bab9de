from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviewapp.models import Store
from reviewapp.services.audit import Actor
from reviewapp.services.stores import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a store system (printed once; only its hash is kept)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--store", required=True)
        parser.add_argument("--label", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        store = Store.objects.filter(name=options["store"]).first()
        if store is None:
            raise CommandError(f"no store named {options['store']!r}")
        self.stdout.write(
            api_key_create(store=store, label=options["label"], actor=Actor(label="command:create_api_key"))
        )
