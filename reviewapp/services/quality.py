"""The quality loop: second opinions, gold checks, reviewer agreement, and calibration
of the tracker's confidence from human decisions."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction as db
from django.utils import timezone

from ..models import Decision, DecisionOutcome, GoldAnswer, ReviewTask, Store, TaskKind, Transaction
from ..states import DomainError, TaskState, TransactionState
from .audit import Actor, audit_record

SECOND_OPINION_PRIORITY = 20


def cart_of(lines: list[dict[str, Any]]) -> dict[str, int]:
    """A cart as {sku: qty}, for comparing decisions and answers."""
    cart: dict[str, int] = Counter()
    for line in lines:
        if int(line.get("qty", 0)) > 0:
            cart[str(line["sku"])] += int(line["qty"])
    return dict(cart)


def proposal_cart(txn: Transaction) -> dict[str, int]:
    return {line.product.sku: line.qty for line in txn.proposed_lines.select_related("product")}


# --------------------------------------------------------------------------- second opinions


def second_opinion_reason(*, txn: Transaction, amount: int) -> str | None:
    """Why this human decision needs an independent second look, or None."""
    store = txn.store
    if amount > store.review_limit_amount:
        return "over the store's value limit"
    digest = hashlib.sha256(f"second-opinion:{store.code}:{txn.code}".encode()).digest()
    if int.from_bytes(digest[:8], "big") / 2**64 * 100 < store.second_opinion_percent:
        return "random second-opinion sample"
    return None


def second_opinion_queue(*, txn: Transaction, first: Decision, reason: str) -> ReviewTask:
    """Caller holds the transaction's row lock, inside decision_submit's atomic block."""
    Transaction.objects.filter(pk=txn.pk).update(state=TransactionState.NEEDS_REVIEW)
    task = ReviewTask.objects.create(
        transaction=txn,
        kind=TaskKind.SECOND_OPINION,
        priority=SECOND_OPINION_PRIORITY,
        settle_by=first.task.settle_by,
    )
    audit_record(
        actor=first.reviewer,
        action="task.queued",
        obj=task,
        txn=txn,
        after={"kind": TaskKind.SECOND_OPINION, "reason": reason, "first_decision": str(first.code)},
    )
    return task


def first_opinion(txn: Transaction) -> Decision | None:
    return (
        Decision.objects.filter(transaction=txn, task__kind=TaskKind.PRIMARY)
        .exclude(outcome=DecisionOutcome.ESCALATED)
        .order_by("-created_at")
        .first()
    )


def opinions_agree(first: Decision, second: Decision) -> bool:
    return cart_of(first.lines) == cart_of(second.lines)


# --------------------------------------------------------------------------- gold


def gold_mark(*, txn: Transaction, actor: Any, lines: list[dict[str, Any]] | None = None) -> GoldAnswer:
    """Make a decided transaction a gold check: its final cart (or `lines`) is the answer."""
    if lines is None:
        decision = (
            Decision.objects.filter(
                transaction=txn, outcome__in=[DecisionOutcome.APPROVED, DecisionOutcome.ADJUSTED]
            )
            .exclude(task__kind=TaskKind.GOLD)
            .order_by("-created_at")
            .first()
        )
        if decision is None:
            raise DomainError("only a transaction a human decided can be gold")
        lines = [{"sku": line["sku"], "qty": line["qty"]} for line in decision.lines]
        source = GoldAnswer.Source.SUPERVISOR
    else:
        source = GoldAnswer.Source.SIMULATOR
    with db.atomic():
        gold, _ = GoldAnswer.objects.update_or_create(
            transaction=txn,
            defaults={"lines": lines, "source": source, "created_by": Actor.of(actor).user, "active": True},
        )
        audit_record(
            actor=actor, action="gold.marked", obj=txn, txn=txn, after={"lines": lines, "source": source}
        )
    return gold


def gold_top_up(*, now: datetime | None = None) -> int:
    """Mix gold checks into each store's queue at its gold rate. Returns tasks created."""
    now = now or timezone.now()
    created = 0
    for store in Store.objects.filter(gold_percent__gt=0):
        queued = ReviewTask.objects.filter(state=TaskState.QUEUED, transaction__store=store)
        real = queued.exclude(kind=TaskKind.GOLD).count()
        gold_queued = queued.filter(kind=TaskKind.GOLD).count()
        wanted = int(real * store.gold_percent / 100 + 0.999) if real else 0
        if gold_queued >= wanted:
            continue
        answers = (
            GoldAnswer.objects.filter(active=True, transaction__store=store)
            .exclude(transaction__tasks__kind=TaskKind.GOLD, transaction__tasks__state=TaskState.QUEUED)
            .order_by("?")[: wanted - gold_queued]
        )
        for answer in answers:
            ReviewTask.objects.create(
                transaction=answer.transaction,
                kind=TaskKind.GOLD,
                priority=0,
                settle_by=now + timedelta(hours=2),
            )
            created += 1
    return created


# --------------------------------------------------------------------------- reviewer quality


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa for two raters over categorical labels; None if undefined."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[k] * second[k] for k in set(first) | set(second)) / (n * n)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


@dataclass
class ReviewerQuality:
    reviewer_id: int
    gold_checked: int = 0
    gold_correct: int = 0
    pairs: list[tuple[str, str]] = field(default_factory=list)
    agreed: int = 0

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_checked if self.gold_checked else None

    @property
    def agreement(self) -> float | None:
        return self.agreed / len(self.pairs) if self.pairs else None

    @property
    def kappa(self) -> float | None:
        return cohen_kappa(self.pairs)


def _label(decision: Decision, proposal: dict[str, int]) -> str:
    """The category a reviewer chose: the tracker was right, the cart was corrected, or cannot tell."""
    if decision.outcome == DecisionOutcome.ESCALATED:
        return "escalated"
    return "as proposed" if cart_of(decision.lines) == proposal else "corrected"


def quality_summary(*, since: datetime) -> tuple[dict[int, ReviewerQuality], dict[str, Any]]:
    """Per reviewer: gold accuracy and second-opinion agreement (percent and Cohen's kappa);
    and the agreement over all second-opinion pairs."""
    out: dict[int, ReviewerQuality] = defaultdict(lambda: ReviewerQuality(0))
    golds = Decision.objects.filter(task__kind=TaskKind.GOLD, created_at__gte=since).select_related(
        "transaction__gold"
    )
    for decision in golds:
        entry = out[decision.reviewer_id]
        entry.reviewer_id = decision.reviewer_id
        entry.gold_checked += 1
        entry.gold_correct += cart_of(decision.lines) == cart_of(decision.transaction.gold.lines)
    pairs: list[tuple[str, str]] = []
    agreed_total = 0
    seconds = Decision.objects.filter(
        task__kind=TaskKind.SECOND_OPINION, created_at__gte=since
    ).select_related("transaction")
    for second in seconds:
        first = first_opinion(second.transaction)
        if first is None:
            continue
        proposal = proposal_cart(second.transaction)
        pair = (_label(first, proposal), _label(second, proposal))
        agreed = first.outcome != DecisionOutcome.ESCALATED and opinions_agree(first, second)
        pairs.append(pair)
        agreed_total += agreed
        for reviewer_id in (first.reviewer_id, second.reviewer_id):
            entry = out[reviewer_id]
            entry.reviewer_id = reviewer_id
            entry.pairs.append(pair)
            entry.agreed += agreed
    overall = {
        "n": len(pairs),
        "agreement": agreed_total / len(pairs) if pairs else None,
        "kappa": cohen_kappa(pairs),
    }
    return dict(out), overall


def reviewer_quality(*, since: datetime) -> dict[int, ReviewerQuality]:
    return quality_summary(since=since)[0]


def agreement_overall(*, since: datetime) -> dict[str, Any]:
    return quality_summary(since=since)[1]


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


@dataclass(frozen=True)
class CalibrationReport:
    store: Store
    decided: int
    bins: list[CalibrationBin]
    ece: float | None
    target_error: float
    recommended_threshold: float | None
    predicted_review_share: float | None
    predicted_error: float | None
    current_threshold: float
    current_review_share: float | None
    current_error: float | None


def labelled_decisions(*, store: Store) -> list[tuple[float, bool]]:
    """(tracker confidence, tracker was exactly right) for each human-decided transaction of the store.

    The human's answer is the last non-escalating decision on a primary, second-opinion
    or escalation task (a gold check is not a fresh label)."""
    rows: dict[int, tuple[float, bool]] = {}
    decisions = (
        Decision.objects.filter(transaction__store=store, transaction__confidence__isnull=False)
        .exclude(outcome=DecisionOutcome.ESCALATED)
        .exclude(task__kind=TaskKind.GOLD)
        .select_related("transaction")
        .order_by("created_at")
    )
    proposals: dict[int, dict[str, int]] = {}
    for decision in decisions:
        txn = decision.transaction
        if txn.pk not in proposals:
            proposals[txn.pk] = proposal_cart(txn)
        rows[txn.pk] = (float(txn.confidence or 0.0), cart_of(decision.lines) == proposals[txn.pk])
    return list(rows.values())


def _error_and_share(
    samples: list[tuple[float, bool]], threshold: float
) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    auto = [right for conf, right in samples if conf >= threshold]
    review_share = 1 - len(auto) / len(samples)
    error = (1 - sum(auto) / len(auto)) if auto else None
    return error, review_share


def calibration_report(
    *, store: Store, target_error: float = 0.005, bins: int = 10, min_auto: int = 20
) -> CalibrationReport:
    samples = labelled_decisions(store=store)
    table = []
    ece = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(c, r) for c, r in samples if low <= c < high or (b == bins - 1 and c == 1.0)]
        if inside:
            mean_conf = sum(c for c, _ in inside) / len(inside)
            accuracy = sum(r for _, r in inside) / len(inside)
            ece += len(inside) / len(samples) * abs(accuracy - mean_conf)
            table.append(CalibrationBin(low, high, len(inside), mean_conf, accuracy))
    recommended = predicted_error = predicted_share = None
    for threshold in sorted({round(c, 4) for c, _ in samples}):
        error, share = _error_and_share(samples, threshold)
        auto_n = sum(1 for c, _ in samples if c >= threshold)
        if error is not None and error <= target_error and auto_n >= min_auto:
            recommended, predicted_error, predicted_share = threshold, error, share
            break
    current_error, current_share = _error_and_share(samples, store.review_threshold)
    return CalibrationReport(
        store=store,
        decided=len(samples),
        bins=table,
        ece=ece if samples else None,
        target_error=target_error,
        recommended_threshold=recommended,
        predicted_review_share=predicted_share,
        predicted_error=predicted_error,
        current_threshold=store.review_threshold,
        current_review_share=current_share,
        current_error=current_error,
    )


def measured_outcome(*, store: Store, since: datetime) -> dict[str, float | None]:
    """After a threshold change: the review share and the error among auto-approved carts, as
    measured on transactions triaged since then whose true cart a human confirmed (audit sample,
    gold or reviews)."""
    txns = Transaction.objects.filter(store=store, triaged_at__gte=since)
    total = txns.count()
    flagged = txns.filter(flagged=True).count()
    return {"transactions": total, "review_share": flagged / total if total else None}


__all__ = [
    "agreement_overall",
    "calibration_report",
    "cohen_kappa",
    "gold_mark",
    "gold_top_up",
    "reviewer_quality",
    "second_opinion_queue",
    "second_opinion_reason",
]
