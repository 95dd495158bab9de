"""Store set-up: API keys and policy."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.db import transaction as db

from ..models import Store, StoreApiKey
from .audit import audit_record


def api_key_create(*, store: Store, label: str, actor: Any) -> str:
    """A new key for the store system. Returned once; only its hash is kept."""
    prefix = secrets.token_hex(5)
    key = f"{prefix}.{secrets.token_urlsafe(32)}"
    with db.atomic():
        api_key = StoreApiKey.objects.create(
            store=store, label=label, prefix=prefix, key_hash=hashlib.sha256(key.encode()).hexdigest()
        )
        audit_record(
            actor=actor,
            action="api_key.created",
            obj=api_key,
            object_code=prefix,
            store=store,
            after={"label": label},
        )
    return key
