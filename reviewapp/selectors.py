"""Reads that pages share, with the joins they need, so views build no querysets inline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from .models import Charge, Decision, DecisionOutcome, Footage, ReviewTask, TaskKind
from .states import ChargeState, FootageStatus, TaskState, TransactionState


def queue_for(user: Any) -> dict[str, Any]:
    """The queue as one reviewer sees it: the tasks they may take, and the rest (escalations, which
    only supervisors take, and second looks at carts they decided themselves)."""
    from .services.review import claimable_by

    queued = ReviewTask.objects.filter(state=TaskState.QUEUED)
    mine = queued.filter(claimable_by(user)).distinct().count()
    return {"mine": mine, "others": queued.count() - mine}


def queue_summary() -> dict[str, Any]:
    queued = ReviewTask.objects.filter(state=TaskState.QUEUED)
    return {
        "queued": queued.count(),
        "assigned": ReviewTask.objects.filter(state=TaskState.ASSIGNED).count(),
        "oldest_created_at": queued.aggregate(oldest=Min("created_at"))["oldest"],
        "by_kind": list(queued.values("kind").annotate(n=Count("id")).order_by("kind")),
    }


def final_cart(txn: Any) -> list[dict[str, Any]] | None:
    """The cart the shopper pays for, as decision lines (sku, name, qty, unit_price): the last
    human approval that stands (not taken back, not a gold check; after a dispute its corrected
    cart, unless that came to more, which is never charged), else the tracker's proposal for a
    cart that settles on its own. [] once voided; None while it is being tracked or reviewed."""
    if txn.state == TransactionState.VOIDED:
        return []
    if txn.state not in DECIDED_STATES:
        return None
    decisions = (
        Decision.objects.filter(
            transaction=txn,
            undo__isnull=True,
            outcome__in=[DecisionOutcome.APPROVED, DecisionOutcome.ADJUSTED],
        )
        .exclude(task__kind=TaskKind.GOLD)
        .select_related("task")
        .order_by("-created_at")
    )
    for decision in decisions:
        if decision.task.kind == TaskKind.DISPUTE and decision.amount > (txn.final_amount or 0):
            continue  # an upheld dispute whose corrected cart came to more: the charge stood
        return list(decision.lines)
    return [
        {"sku": line.product.sku, "name": line.product.name, "qty": line.qty, "unit_price": line.unit_price}
        for line in txn.proposed_lines.select_related("product").order_by("product__sku")
    ]


DECIDED_STATES = (
    TransactionState.AUTO_APPROVED,
    TransactionState.APPROVED,
    TransactionState.ADJUSTED,
    TransactionState.SETTLED,
    TransactionState.DISPUTED,  # the cart paid for, while the dispute is looked at
)


def footage_problems(*, limit: int = 20) -> list[Footage]:
    return list(
        Footage.objects.filter(status=FootageStatus.FAILED)
        .select_related("store", "camera")
        .order_by("-created_at")[:limit]
    )


def refund_problems(*, limit: int = 50) -> list[Any]:
    """Refunds the gateway declined, or that ran out of retries: a supervisor must act."""
    from .models import Refund

    return list(
        Refund.objects.filter(state="failed")
        .select_related("dispute__transaction__store")
        .order_by("created_at")[:limit]
    )


def settlement_problems(*, limit: int = 50) -> list[Charge]:
    """Charges that failed (declined, or out of retries): a supervisor must act."""
    return list(
        Charge.objects.filter(state=ChargeState.FAILED)
        .select_related("transaction", "transaction__store")
        .order_by("created_at")[:limit]
    )


# --------------------------------------------------------------------------- supervisor dashboard


def _reviewer_hists(*, since: Any) -> dict[int, dict[str, Any]]:
    """Each reviewer's decisions and merged handle-time histogram over the window.

    On PostgreSQL the histograms are merged in the database (a month is ~10^4 rollup rows).
    """
    from django.db import connection

    from .models import ReviewerHourStats

    merged: dict[int, dict[str, Any]] = {}
    rows = ReviewerHourStats.objects.filter(hour__gte=since)
    for row in rows.values("reviewer_id").annotate(
        n=Sum("decisions"), hours=Count("id", filter=Q(decisions__gt=0))
    ):
        merged[row["reviewer_id"]] = {"decisions": row["n"] or 0, "hours": row["hours"] or 0, "hist": {}}
    if connection.vendor == "postgresql":
        table = ReviewerHourStats._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT reviewer_id, key::int, SUM(value::int) FROM {table}, "  # noqa: S608 - model table name
                "jsonb_each_text(handle_seconds_hist) WHERE hour >= %s GROUP BY 1, 2",
                [since],
            )
            for reviewer_id, key, count in cursor.fetchall():
                merged.setdefault(reviewer_id, {"decisions": 0, "hours": 0, "hist": {}})["hist"][key] = int(
                    count
                )
        return merged
    for row in rows.values("reviewer_id", "handle_seconds_hist"):
        hist = merged.setdefault(row["reviewer_id"], {"decisions": 0, "hours": 0, "hist": {}})["hist"]
        for key, count in row["handle_seconds_hist"].items():
            hist[int(key)] = hist.get(int(key), 0) + count
    return merged


WINDOWS = {"8h": 8, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}
AT_RISK_MINUTES = 30


def dashboard(*, window_hours: int, now: Any = None, store: Any = None) -> dict[str, Any]:
    """Everything the shift dashboard shows, from live queue rows and the hourly rollups."""
    from django.contrib.auth import get_user_model

    from .models import DecisionUndo, ReviewerHourStats, StoreHourStats
    from .services.metrics import (
        HANDLE_SECONDS_EDGES,
        RECEIPT_MINUTES_EDGES,
        hour_floor,
        quantile_from_hist,
    )

    now = now or timezone.now()
    since = hour_floor(now) - timedelta(hours=window_hours - 1)
    queued = ReviewTask.objects.filter(state=TaskState.QUEUED)
    open_tasks = ReviewTask.objects.filter(state__in=[TaskState.QUEUED, TaskState.ASSIGNED])
    if store is not None:
        queued = queued.filter(transaction__store=store)
        open_tasks = open_tasks.filter(transaction__store=store)
    oldest = queued.order_by("created_at").select_related("transaction", "transaction__store").first()
    at_risk = list(
        open_tasks.filter(settle_by__lte=now + timedelta(minutes=AT_RISK_MINUTES))
        .select_related("transaction", "transaction__store", "assignee")
        .order_by("settle_by")[:50]
    )
    stats = StoreHourStats.objects.filter(hour__gte=since)
    if store is not None:
        stats = stats.filter(store=store)
    fields = ["triaged", "auto_approved", "flagged", "decisions", "approved", "adjusted", "escalated", "voided",
              "settled", "receipt_within_target"]  # fmt: skip
    totals = {f: v or 0 for f, v in stats.aggregate(**{f: Sum(f) for f in fields}).items()}
    receipt_hist: dict[int, int] = {}
    trend: dict[Any, dict[str, int]] = {}
    for row in stats.values("hour", "flagged", "auto_approved", "decisions", "receipt_minutes_hist"):
        for key, count in row["receipt_minutes_hist"].items():
            receipt_hist[int(key)] = receipt_hist.get(int(key), 0) + count
        point = trend.setdefault(row["hour"], {"flagged": 0, "auto_approved": 0, "decisions": 0})
        for key in ("flagged", "auto_approved", "decisions"):
            point[key] += row[key]
    if trend:  # the whole window, its quiet hours at zero: one busy hour is not a dot at the left edge
        hour = since
        while hour <= now:
            trend.setdefault(hour, {"flagged": 0, "auto_approved": 0, "decisions": 0})
            hour += timedelta(hours=1)
    triaged = totals["triaged"] or 0

    def share(n: int) -> float | None:
        return n / triaged if triaged else None

    reviewers = []
    users = {
        u.pk: u
        for u in get_user_model().objects.filter(
            pk__in=ReviewerHourStats.objects.filter(hour__gte=since).values("reviewer_id")
        )
    }
    per_reviewer = _reviewer_hists(since=since)
    for reviewer_id, entry in per_reviewer.items():
        reviewers.append(
            {
                "user": users.get(reviewer_id),
                "decisions": entry["decisions"],
                # over the hours they decided in, not the whole window: a shift's first minutes
                # or a part-time reviewer are not a slow one
                "per_hour": entry["decisions"] / max(1, entry["hours"]),
                "median_handle_s": quantile_from_hist(entry["hist"], HANDLE_SECONDS_EDGES, 0.5),
            }
        )
    from .services.quality import quality_summary

    quality, agreement = quality_summary(since=since)
    for user_id in set(quality) - set(per_reviewer):
        users.setdefault(user_id, get_user_model().objects.filter(pk=user_id).first())
        reviewers.append(
            {"user": users.get(user_id), "decisions": 0, "per_hour": 0.0, "median_handle_s": None}
        )
    # approvals the reviewers took back (a key pressed on the wrong cart): a few are normal, many
    # are a reviewer going too fast. Undos are rare: counted from their own small table
    undos = DecisionUndo.objects.filter(created_at__gte=since)
    if store is not None:
        undos = undos.filter(decision__transaction__store=store)
    undone = dict(undos.values_list("decision__reviewer_id").annotate(n=Count("id")))
    for row in reviewers:
        row["undone"] = undone.get(row["user"].pk, 0) if row["user"] is not None else 0
        q = quality.get(row["user"].pk) if row["user"] is not None else None
        row["gold"] = (q.gold_correct, q.gold_checked) if q and q.gold_checked else None
        row["agreement"] = (q.agreement, q.kappa, len(q.pairs)) if q and q.pairs else None
    reviewers.sort(key=lambda r: -r["decisions"])
    depth = list(
        queued.values("priority", "kind", "transaction__store__name")
        .annotate(n=Count("id"))
        .order_by("-priority", "kind", "transaction__store__name")
    )
    return {
        "now": now,
        "since": since,
        "window_hours": window_hours,
        "queued": queued.count(),
        "assigned": ReviewTask.objects.filter(state=TaskState.ASSIGNED).count(),
        "depth": depth,
        "oldest": oldest,
        "oldest_wait": (now - oldest.created_at) if oldest else None,
        "at_risk": at_risk,
        "totals": totals,
        "shares": {
            "auto_approved": share(totals["auto_approved"]),
            "flagged": share(totals["flagged"]),
            "adjusted": share(totals["adjusted"]),
            "escalated": share(totals["escalated"]),
        },
        "receipt": {
            "p50": quantile_from_hist(receipt_hist, RECEIPT_MINUTES_EDGES, 0.5),
            "p95": quantile_from_hist(receipt_hist, RECEIPT_MINUTES_EDGES, 0.95),
            "within_target": (totals["receipt_within_target"] / totals["settled"])
            if totals["settled"]
            else None,
        },
        "reviewers": reviewers,
        "agreement": agreement,
        "trend": sorted(trend.items()),
        "settlement_problems": settlement_problems(),
        "refund_problems": refund_problems(),
        "footage_problems": footage_problems(),
        "escalations": list(
            ReviewTask.objects.filter(kind="escalation", state__in=[TaskState.QUEUED, TaskState.ASSIGNED])
            .select_related("transaction", "transaction__store", "assignee")
            .order_by("-priority", "settle_by")[:50]
        ),
    }


# --------------------------------------------------------------------------- auditor
# One filter set for the auditor's search page, the page export and `export_decisions`
# (forms_audit.AuditFilterForm.filters() builds the keyword arguments).


def _code_or_visit(q: str, prefix: str = "") -> Any:
    """The transactions (under `prefix`, the lookup path to one) whose code is or starts with `q`
    (the 8 characters reviewers and dashboards show are enough), or whose visit has `q` as the store
    system's id. A code prefix is matched as a range of codes, so the code's index serves it."""
    import uuid

    from django.db.models import Q

    match = Q(**{f"{prefix}visit__external_id": q})
    digits = q.replace("-", "").lower()
    if 6 <= len(digits) <= 32 and all(c in "0123456789abcdef" for c in digits):
        low, high = uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))
        match |= Q(**{f"{prefix}code__gte": low, f"{prefix}code__lte": high})
    return match


def _day_start(day: Any) -> Any:
    from datetime import datetime, time

    from django.utils import timezone

    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def decisions_filtered(
    *,
    since: Any = None,
    until: Any = None,
    store: Any = None,
    reviewer: str = "",
    outcome: str = "",
    min_amount: int | None = None,
    max_amount: int | None = None,
    token_hash: str = "",
    token_last4: str = "",
    q: str = "",
) -> Any:
    """Decisions matching the auditor's filters; dates are the decision's, whole days, inclusive.

    No ordering and no joins: the export pages through it by id, the page slices it.
    """
    from datetime import timedelta

    from .models import Decision

    qs = Decision.objects.all()
    if since:
        qs = qs.filter(created_at__gte=_day_start(since))
    if until:
        qs = qs.filter(created_at__lt=_day_start(until + timedelta(days=1)))
    if store is not None:
        qs = qs.filter(transaction__store=store)
    if reviewer:
        qs = qs.filter(reviewer__username=reviewer)
    if outcome:
        qs = qs.filter(outcome=outcome)
    if min_amount is not None:
        qs = qs.filter(amount__gte=min_amount)
    if max_amount is not None:
        qs = qs.filter(amount__lte=max_amount)
    if token_hash:
        qs = qs.filter(transaction__visit__token_hash=token_hash)
    if token_last4:
        qs = qs.filter(transaction__visit__token_last4=token_last4)
    if q:
        qs = qs.filter(_code_or_visit(q, "transaction__"))
    return qs


def transactions_filtered(
    *,
    since: Any = None,
    until: Any = None,
    store: Any = None,
    reviewer: str = "",
    outcome: str = "",
    min_amount: int | None = None,
    max_amount: int | None = None,
    token_hash: str = "",
    token_last4: str = "",
    q: str = "",
) -> Any:
    """Transactions matching the auditor's filters, newest first.

    Dates are the transaction's; reviewer and outcome match one decision on it (both
    on the same decision when both are given); the amount is the final amount once
    decided, the proposed one before.
    """
    from datetime import timedelta

    from django.db.models import Exists, OuterRef
    from django.db.models.functions import Coalesce

    from .models import Decision, Transaction

    qs = Transaction.objects.select_related("store", "visit")
    if since:
        qs = qs.filter(created_at__gte=_day_start(since))
    if until:
        qs = qs.filter(created_at__lt=_day_start(until + timedelta(days=1)))
    if store is not None:
        qs = qs.filter(store=store)
    if reviewer or outcome:
        decisions = Decision.objects.filter(transaction=OuterRef("pk"))
        if reviewer:
            decisions = decisions.filter(reviewer__username=reviewer)
        if outcome:
            decisions = decisions.filter(outcome=outcome)
        qs = qs.filter(Exists(decisions))
    if min_amount is not None or max_amount is not None:
        qs = qs.annotate(audit_amount=Coalesce("final_amount", "proposed_amount"))
        if min_amount is not None:
            qs = qs.filter(audit_amount__gte=min_amount)
        if max_amount is not None:
            qs = qs.filter(audit_amount__lte=max_amount)
    if token_hash:
        qs = qs.filter(visit__token_hash=token_hash)
    if token_last4:
        qs = qs.filter(visit__token_last4=token_last4)
    if q:
        qs = qs.filter(_code_or_visit(q))
    return qs.order_by("-created_at", "-id")


def transactions_page(*, filters: dict[str, Any], page: int, per_page: int = 50) -> dict[str, Any]:
    """One page of the auditor's search, with each transaction's decisions (two queries)."""
    from .models import Decision

    rows = list(transactions_filtered(**filters)[(page - 1) * per_page : page * per_page + 1])
    has_next = len(rows) > per_page
    rows = rows[:per_page]
    by_txn: dict[int, list[Any]] = {}
    for decision in (
        Decision.objects.filter(transaction__in=rows).select_related("reviewer").order_by("created_at", "id")
    ):
        by_txn.setdefault(decision.transaction_id, []).append(decision)
    for txn in rows:
        txn.audit_decisions = by_txn.get(txn.pk, [])
    return {"rows": rows, "has_next": has_next, "page": page}


def transaction_history(*, code: Any) -> dict[str, Any] | None:
    """Everything that happened to one transaction, for the auditor's history page.

    A fixed number of queries whatever the transaction's size. Clip views come from
    the audit log (`clip.viewed` records), not from a table of their own.
    """
    from datetime import timedelta

    from .models import (
        AuditEvent,
        Charge,
        Clip,
        Decision,
        EvidenceEvent,
        GoldAnswer,
        Transaction,
        WebhookDelivery,
    )

    txn = (
        Transaction.objects.select_related("store", "visit", "footage", "footage__camera")
        .defer("footage__tracks")
        .filter(code=code)
        .first()
    )
    if txn is None:
        return None
    lines = list(txn.proposed_lines.select_related("product").order_by("product__sku"))
    events = list(
        EvidenceEvent.objects.filter(transaction=txn)
        .select_related("slot", "product", "footage", "footage__camera")
        .defer("footage__tracks")  # each event would carry its own copy of the footage's tracks
        .order_by("footage_id", "t_start", "id")
    )
    for event in events:
        event.at = (
            event.footage.started_at + timedelta(seconds=event.t_start) if event.footage is not None else None
        )
    decisions = list(
        Decision.objects.filter(transaction=txn)
        .select_related("reviewer", "task", "undo")
        .order_by("created_at", "id")
    )
    tasks = list(txn.tasks.select_related("assignee").order_by("created_at", "id"))
    audit = list(AuditEvent.objects.filter(transaction=txn).select_related("actor").order_by("id"))
    clips = list(
        Clip.objects.filter(transaction=txn)
        .select_related("footage", "footage__camera")
        .defer("footage__tracks")
        .order_by("t_start")
    )
    views: dict[str, list[Any]] = {}
    for event in audit:
        if event.action == "clip.viewed":
            views.setdefault(event.object_code, []).append(event)
    for clip in clips:
        clip.views = views.get(str(clip.code), [])
    charge = Charge.objects.filter(transaction=txn).first()
    # disputes and refunds arrive with the disputes work; read them where the models exist
    disputes = list(txn.disputes.order_by("created_at")) if hasattr(txn, "disputes") else []
    refunds = list(charge.refunds.order_by("created_at")) if charge and hasattr(charge, "refunds") else []
    footage = {e.footage for e in events if e.footage is not None} | {c.footage for c in clips if c.footage}
    if txn.footage is not None:
        footage.add(txn.footage)
    return {
        "txn": txn,
        "lines": lines,
        "events": events,
        "decisions": decisions,
        "tasks": tasks,
        "clips": clips,
        "footage": sorted(footage, key=lambda f: (f.started_at, f.pk)),
        "charge": charge,
        "disputes": disputes,
        "refunds": refunds,
        "webhooks": list(WebhookDelivery.objects.filter(transaction=txn).order_by("created_at", "id")),
        "audit": audit,
        "gold": GoldAnswer.objects.filter(transaction=txn).first(),
        # a gold answer can be taken from a human's approving decision (not a gold check's)
        "can_be_gold": any(
            d.outcome in ("approved", "adjusted") and d.task.kind != "gold" for d in decisions
        ),
    }


def chain_checks(*, limit: int = 10) -> list[Any]:
    """The latest verifications of the chain, newest first, with who asked and the broken record."""
    from .models import ChainCheck

    return list(ChainCheck.objects.select_related("requested_by", "broken_at")[:limit])


def audit_chain_check() -> dict[str, Any]:
    """Verify the audit chain (reads only: nothing is sealed) and locate the first broken link."""
    from .models import AuditEvent
    from .services.audit import audit_verify_chain

    report = audit_verify_chain()
    broken = None
    if not report.ok:
        broken = (
            AuditEvent.objects.filter(pk=report.broken_at_id)
            .values("id", "seq", "action", "object_type", "object_code", "created_at")
            .first()
        )
    return {"report": report, "broken": broken, "total": AuditEvent.objects.count()}
