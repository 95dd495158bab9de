"""Hourly rollups for the supervisor dashboard.

The periodic job recomputes the current and the previous hour from the rows
themselves (idempotent: an hour is replaced, never incremented), so the dashboard
reads a few hundred rollup rows instead of scanning a million transactions.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.db import transaction as db
from django.utils import timezone

from ..models import Decision, ReviewerHourStats, Store, StoreHourStats, Transaction
from ..states import TransactionState

# upper edges of the histogram buckets
HANDLE_SECONDS_EDGES = [*range(2, 62, 2), *range(70, 310, 10), *range(360, 1860, 60), 10**9]
RECEIPT_MINUTES_EDGES = [*range(1, 181), *range(190, 1450, 10), 10**9]


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def bucket_of(value: float, edges: list[int]) -> int:
    return edges[bisect.bisect_left(edges, value)]


def quantile_from_hist(hist: dict[int, int], edges: list[int], q: float) -> float | None:
    """The q-quantile of a bucketed distribution, interpolated inside its bucket."""
    total = sum(hist.values())
    if total == 0:
        return None
    target = q * total
    seen = 0
    for index, edge in enumerate(edges):
        count = hist.get(edge, 0)
        if count and seen + count >= target:
            low = edges[index - 1] if index else 0
            high = edge if edge < 10**9 else low * 2 or 1
            return low + (high - low) * ((target - seen) / count)
        seen += count
    return float(edges[-2])


def rollup_hour(hour: datetime) -> None:
    """Recompute one hour's rows for every store and reviewer."""
    start, end = hour_floor(hour), hour_floor(hour) + timedelta(hours=1)
    per_store: dict[int, dict[str, object]] = defaultdict(lambda: defaultdict(int))
    for store_id, flagged in Transaction.objects.filter(
        triaged_at__gte=start, triaged_at__lt=end
    ).values_list("store_id", "flagged"):
        row = per_store[store_id]
        row["triaged"] += 1  # type: ignore[operator]
        row["flagged" if flagged else "auto_approved"] += 1  # type: ignore[operator]
    per_reviewer: dict[int, dict[str, object]] = defaultdict(
        lambda: {"decisions": 0, "ms": 0, "hist": Counter()}
    )
    for store_id, reviewer_id, outcome, spent in Decision.objects.filter(
        created_at__gte=start, created_at__lt=end
    ).values_list("transaction__store_id", "reviewer_id", "outcome", "time_spent_ms"):
        row = per_store[store_id]
        row["decisions"] += 1  # type: ignore[operator]
        row[outcome] += 1  # type: ignore[operator]
        rev = per_reviewer[reviewer_id]
        rev["decisions"] += 1  # type: ignore[operator]
        rev["ms"] += spent  # type: ignore[operator]
        rev["hist"][bucket_of(spent / 1000, HANDLE_SECONDS_EDGES)] += 1  # type: ignore[index]
    targets = dict(Store.objects.values_list("id", "receipt_target_minutes"))
    receipts: dict[int, Counter[int]] = defaultdict(Counter)
    for store_id, settled_at, exited_at in Transaction.objects.filter(
        settled_at__gte=start,
        settled_at__lt=end,
        state__in=[TransactionState.SETTLED, TransactionState.DISPUTED],
    ).values_list("store_id", "settled_at", "visit__exited_at"):
        row = per_store[store_id]
        row["settled"] += 1  # type: ignore[operator]
        if exited_at is not None:
            minutes = max(0.0, (settled_at - exited_at).total_seconds() / 60)
            receipts[store_id][bucket_of(minutes, RECEIPT_MINUTES_EDGES)] += 1
            if minutes <= targets.get(store_id, 60):
                row["receipt_within_target"] += 1  # type: ignore[operator]
    fields = (
        "triaged",
        "auto_approved",
        "flagged",
        "decisions",
        "approved",
        "adjusted",
        "escalated",
        "voided",
    )
    with db.atomic():
        StoreHourStats.objects.filter(hour=start).delete()
        StoreHourStats.objects.bulk_create(
            StoreHourStats(
                store_id=store_id,
                hour=start,
                **{f: int(row.get(f, 0)) for f in fields},  # type: ignore[call-overload]
                settled=int(row.get("settled", 0)),  # type: ignore[call-overload]
                receipt_within_target=int(row.get("receipt_within_target", 0)),  # type: ignore[call-overload]
                receipt_minutes_hist={str(k): v for k, v in receipts[store_id].items()},
            )
            for store_id, row in per_store.items()
        )
        ReviewerHourStats.objects.filter(hour=start).delete()
        ReviewerHourStats.objects.bulk_create(
            ReviewerHourStats(
                reviewer_id=reviewer_id,
                hour=start,
                decisions=int(row["decisions"]),  # type: ignore[call-overload]
                handle_ms_sum=int(row["ms"]),  # type: ignore[call-overload]
                handle_seconds_hist={str(k): v for k, v in row["hist"].items()},  # type: ignore[attr-defined]
            )
            for reviewer_id, row in per_reviewer.items()
        )


def rollup_recent(*, now: datetime | None = None, hours: int = 2) -> int:
    """The periodic job: the current hour and the ones just before it."""
    now = now or timezone.now()
    for back in range(hours):
        rollup_hour(hour_floor(now) - timedelta(hours=back))
    return hours


def rollup_range(*, since: datetime, until: datetime | None = None) -> int:
    """Backfill (after generate_history, or a restore): every hour from `since` to `until`."""
    until = until or timezone.now()
    hour, count = hour_floor(since), 0
    while hour <= until:
        rollup_hour(hour)
        hour += timedelta(hours=1)
        count += 1
    return count
