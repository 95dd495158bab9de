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


POLICY_FIELDS = (
    "review_threshold",
    "review_limit_amount",
    "audit_sample_percent",
    "settle_within_minutes",
    "deadline_rule",
    "deadline_confidence",
    "second_opinion_percent",
    "receipt_target_minutes",
    "receipt_target_share",
    "privacy_mode",
    "footage_retention_days",
    "clip_retention_days",
    "dispute_window_days",
)


def store_policy_update(
    *, store: Store, changes: dict[str, Any], actor: Any, reason: str = ""
) -> dict[str, Any]:
    """Change a store's triage, deadline, privacy or retention policy; old and new values are audited.

    Returns the fields that actually changed. Callers validate values (the form does).
    """
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ValueError(f"not policy fields: {', '.join(sorted(unknown))}")
    with db.atomic():
        locked = Store.objects.select_for_update().get(pk=store.pk)
        before = {f: getattr(locked, f) for f in changes if getattr(locked, f) != changes[f]}
        if not before:
            return {}
        after = {f: changes[f] for f in before}
        for field, value in after.items():
            setattr(locked, field, value)
        locked.save(update_fields=list(after))
        audit_record(
            actor=actor,
            action="store.policy_changed",
            obj=locked,
            store=locked,
            before=before,
            after=after,
            data={"reason": reason[:500]},
        )
    for field, value in after.items():
        setattr(store, field, value)
    return after
