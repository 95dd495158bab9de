"""Every human decision is a label for the tracker: export them as training examples.

The manifest is JSON Lines, one example per tracker event of a human-decided
transaction (schema in TRAINING_SCHEMA below and in README.md). Images are copied
beside it. Payment tokens never appear; reviewers appear as an opaque number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db.models import Q

from ..models import Decision, DecisionOutcome, EvidenceEvent, Store, TaskKind
from .quality import cart_of, proposal_cart

SCHEMA_VERSION = 1
TRAINING_SCHEMA = {
    "schema": "version of this format (int)",
    "example": "stable id of the example: the event code (str)",
    "store": "store name (str)",
    "transaction": "transaction code (str)",
    "camera": "camera name (str)",
    "slot": "planogram slot id, or null (str | null)",
    "kind": "'pick' or 'return' as the tracker saw it (str)",
    "t_start": "seconds from the footage start (float)",
    "t_end": "seconds from the footage start (float)",
    "tracker": "{'sku', 'qty', 'confidence', 'attribution_margin', 'ambiguous', 'cart_confidence'}",
    "human": "{'sku_final_qty': the human's final quantity of the event's sku in the cart, "
    "'proposed_qty': the tracker's, 'reason': reason code of a change or '', 'outcome': decision outcome}",
    "agreed": "the human kept the tracker's quantity for this sku (bool)",
    "before_image": "path of the slot before the event, relative to the manifest, or null",
    "after_image": "path of the slot after the event, relative to the manifest, or null",
    "decided_at": "ISO 8601 time of the decision (str)",
    "reviewer": "an opaque number standing for the reviewer (int)",
    "redacted": "the store's privacy mode was on: images are slot crops only (bool)",
}


def _final_decisions(*, since: datetime | None, store: Store | None) -> Iterator[Decision]:
    """The last approving human decision of each transaction (gold checks are not fresh labels)."""
    query = Q(outcome__in=[DecisionOutcome.APPROVED, DecisionOutcome.ADJUSTED]) & ~Q(task__kind=TaskKind.GOLD)
    if since:
        query &= Q(created_at__gte=since)
    if store:
        query &= Q(transaction__store=store)
    seen: set[int] = set()
    for decision in (
        Decision.objects.filter(query)
        .select_related("transaction", "transaction__store")
        .order_by("-created_at")
    ).iterator(chunk_size=500):
        if decision.transaction_id in seen:
            continue
        seen.add(decision.transaction_id)
        yield decision


def _copy(field: Any, out_dir: Path, name: str) -> str | None:
    if not field or not field.name:
        return None
    try:
        with field.storage.open(field.name, "rb") as src:
            data = src.read()
    except FileNotFoundError:
        return None  # purged: the example keeps its labels without the image
    target = out_dir / "images" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return str(target.relative_to(out_dir))


def training_export(*, out_dir: Path, since: datetime | None = None, store: Store | None = None) -> int:
    """Write manifest.jsonl, schema.json and images/ under `out_dir`. Returns the number of examples."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "schema.json").write_text(
        json.dumps({"version": SCHEMA_VERSION, "fields": TRAINING_SCHEMA}, indent=2)
    )
    count = 0
    with open(out_dir / "manifest.jsonl", "w") as manifest:
        for decision in _final_decisions(since=since, store=store):
            txn = decision.transaction
            final = cart_of(decision.lines)
            proposed = proposal_cart(txn)
            reasons = {change["sku"]: change.get("reason", "") for change in decision.diff}
            reviewer = int.from_bytes(
                hashlib.sha256(f"reviewer:{decision.reviewer_id}".encode()).digest()[:4], "big"
            )
            events = EvidenceEvent.objects.filter(transaction=txn).select_related(
                "product", "slot", "footage__camera"
            )
            for event in events:
                sku = event.product.sku if event.product else None
                record = {
                    "schema": SCHEMA_VERSION,
                    "example": str(event.code),
                    "store": txn.store.name,
                    "transaction": str(txn.code),
                    "camera": event.footage.camera.name if event.footage else None,
                    "slot": event.slot.slot_id if event.slot else None,
                    "kind": event.kind,
                    "t_start": event.t_start,
                    "t_end": event.t_end,
                    "tracker": {
                        "sku": sku,
                        "qty": event.qty,
                        "confidence": event.confidence,
                        "attribution_margin": event.attribution_margin,
                        "ambiguous": event.ambiguous,
                        "cart_confidence": txn.confidence,
                    },
                    "human": {
                        "sku_final_qty": final.get(sku or "", 0),
                        "proposed_qty": proposed.get(sku or "", 0),
                        "reason": reasons.get(sku or "", ""),
                        "outcome": decision.outcome,
                    },
                    "agreed": final.get(sku or "", 0) == proposed.get(sku or "", 0),
                    "before_image": _copy(event.before_crop, out_dir, f"{event.code}-before.png"),
                    "after_image": _copy(event.after_crop, out_dir, f"{event.code}-after.png"),
                    "decided_at": decision.created_at.isoformat(),
                    "reviewer": reviewer,
                    "redacted": txn.store.privacy_mode,
                }
                manifest.write(json.dumps(record, sort_keys=True) + "\n")
                count += 1
    return count


def training_read(path: Path) -> list[dict[str, Any]]:
    """Read a manifest back (for tests and for training code)."""
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
