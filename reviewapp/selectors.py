"""Reads that pages share, with the joins they need, so views build no querysets inline."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Min

from .models import Charge, Footage, ReviewTask
from .states import ChargeState, FootageStatus, TaskState


def queue_summary() -> dict[str, Any]:
    queued = ReviewTask.objects.filter(state=TaskState.QUEUED)
    return {
        "queued": queued.count(),
        "assigned": ReviewTask.objects.filter(state=TaskState.ASSIGNED).count(),
        "oldest_created_at": queued.aggregate(oldest=Min("created_at"))["oldest"],
        "by_kind": list(queued.values("kind").annotate(n=Count("id")).order_by("kind")),
    }


def footage_problems(*, limit: int = 20) -> list[Footage]:
    return list(
        Footage.objects.filter(status=FootageStatus.FAILED)
        .select_related("store", "camera")
        .order_by("-created_at")[:limit]
    )


def settlement_problems(*, limit: int = 50) -> list[Charge]:
    """Charges that failed (declined, or out of retries): a supervisor must act."""
    return list(
        Charge.objects.filter(state=ChargeState.FAILED)
        .select_related("transaction", "transaction__store")
        .order_by("created_at")[:limit]
    )
