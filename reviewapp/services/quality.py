"""The quality loop: second opinions, gold checks, reviewer agreement, and calibration
of the tracker's confidence from human decisions."""

from __future__ import annotations

import hashlib
import math
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
                transaction=txn,
                outcome__in=[DecisionOutcome.APPROVED, DecisionOutcome.ADJUSTED],
                undo__isnull=True,  # not one the reviewer took back
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


THRESHOLD_REASON_PREFIX = "confidence "  # pipeline.triage_reasons: "confidence 0.42 under threshold 0.90"
AUDIT_SAMPLE_REASON = "random audit sample"


def forced_to_review(reasons: list[str], confidence: float | None) -> bool:
    """Whether triage sends this cart to a human whatever the threshold (no confidence, an
    ambiguous or unattributed event, over the value limit): any reason but the threshold's
    own and the audit draw."""
    if confidence is None:
        return True
    return any(r != AUDIT_SAMPLE_REASON and not r.startswith(THRESHOLD_REASON_PREFIX) for r in reasons)


def let_through(txn: Transaction) -> bool:
    """Whether triage let this cart through: auto-approved, or drawn for the random audit
    sample (which draws only among carts that would have been auto-approved)."""
    return txn.confidence is not None and (not txn.flagged or txn.review_reasons == [AUDIT_SAMPLE_REASON])


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval for k successes in n trials (95% by default); None if n is 0."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


@dataclass(frozen=True)
class Label:
    """One human-decided transaction as a label for the tracker."""

    confidence: float
    right: bool  # the human's final cart equals the tracker's proposal
    forced: bool  # triage sends it to a human whatever the threshold
    weight: float  # 1 / the chance it reached a human (the audit draw's share for an audit sample)


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
    predicted_error_carts: int  # decided carts the predicted error rests on
    predicted_error_upper: float | None  # 95% Wilson upper bound on those carts (unweighted)
    current_threshold: float
    current_review_share: float | None
    current_error: float | None
    current_error_carts: int
    triaged: int  # transactions the review shares are computed over


def labelled_decisions(*, store: Store) -> list[Label]:
    """A label for each human-decided transaction of the store: the tracker's confidence and
    whether its proposal was exactly right.

    The human's answer is the last non-escalating decision on a primary, second-opinion or
    escalation task (a gold check is not a fresh label; a dispute is raised only over carts
    a shopper found wrong, so it would bias the labels). A transaction that reached a human
    only through the random audit draw stands for 100/audit-percent carts like it (at the
    store's current audit percent)."""
    rows: dict[int, Label] = {}
    decisions = (
        Decision.objects.filter(
            transaction__store=store, transaction__confidence__isnull=False, undo__isnull=True
        )
        .exclude(outcome=DecisionOutcome.ESCALATED)
        .exclude(task__kind__in=[TaskKind.GOLD, TaskKind.DISPUTE])
        .select_related("transaction")
        .order_by("created_at")
    )
    audit_weight = 100 / store.audit_sample_percent if store.audit_sample_percent > 0 else 1.0
    proposals: dict[int, dict[str, int]] = {}
    for decision in decisions:
        txn = decision.transaction
        if txn.pk not in proposals:
            proposals[txn.pk] = proposal_cart(txn)
        reasons = list(txn.review_reasons or [])
        rows[txn.pk] = Label(
            confidence=float(txn.confidence or 0.0),
            right=cart_of(decision.lines) == proposals[txn.pk],
            forced=forced_to_review(reasons, txn.confidence),
            weight=audit_weight if reasons == [AUDIT_SAMPLE_REASON] else 1.0,
        )
    return list(rows.values())


def _triaged(store: Store) -> list[tuple[float | None, bool]]:
    """(confidence, forced to review) of every triaged transaction of the store."""
    rows = Transaction.objects.filter(store=store, triaged_at__isnull=False).values_list(
        "confidence", "review_reasons"
    )
    return [(conf, forced_to_review(list(reasons or []), conf)) for conf, reasons in rows.iterator()]


def _predicted_share(
    population: list[tuple[float | None, bool]], threshold: float, audit_percent: float
) -> float | None:
    """The share of these transactions that triage would send to a human at this threshold."""
    if not population:
        return None
    passed = sum(1 for conf, forced in population if not forced and conf is not None and conf >= threshold)
    return 1 - passed * (1 - audit_percent / 100) / len(population)


def _predicted_error(labels: list[Label], threshold: float) -> tuple[float | None, int]:
    """The weighted share of wrong carts among the labelled ones this threshold lets through, and
    how many labelled carts that rests on."""
    through = [label for label in labels if not label.forced and label.confidence >= threshold]
    total = sum(label.weight for label in through)
    if not through or total <= 0:
        return None, 0
    return sum(label.weight for label in through if not label.right) / total, len(through)


def _upper_bound(error: float | None, n: int) -> float | None:
    interval = wilson_interval(round((error or 0.0) * n), n) if error is not None else None
    return interval[1] if interval else None


def calibration_report(
    *, store: Store, target_error: float = 0.005, bins: int = 10, min_auto: int = 20
) -> CalibrationReport:
    """The reliability curve and calibration error over the decided carts, and the lowest
    threshold whose predicted error among the carts it lets through meets the target, resting
    on at least `min_auto` decided carts.

    The prediction follows triage: a cart reaches a human if it is under the threshold, is
    forced there (no confidence, ambiguous or unattributed event, value limit) or is drawn
    for the audit sample. The review share is predicted over every triaged transaction of the
    store (their confidence is known, decided or not); the error only from decided ones."""
    labels = labelled_decisions(store=store)
    population = _triaged(store)
    audit = store.audit_sample_percent
    table = []
    ece = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [x for x in labels if low <= x.confidence < high or (b == bins - 1 and x.confidence == 1.0)]
        if inside:
            mean_conf = sum(x.confidence for x in inside) / len(inside)
            accuracy = sum(x.right for x in inside) / len(inside)
            ece += len(inside) / len(labels) * abs(accuracy - mean_conf)
            table.append(CalibrationBin(low, high, len(inside), mean_conf, accuracy))
    recommended = predicted_error = predicted_share = None
    predicted_n = 0
    # candidates rounded down, so the cart a threshold is taken from stays at or above it
    for threshold in sorted({math.floor(x.confidence * 10_000) / 10_000 for x in labels if not x.forced}):
        error, n = _predicted_error(labels, threshold)
        if error is not None and error <= target_error and n >= min_auto:
            recommended, predicted_error, predicted_n = threshold, error, n
            predicted_share = _predicted_share(population, threshold, audit)
            break
    current_error, current_n = _predicted_error(labels, store.review_threshold)
    return CalibrationReport(
        store=store,
        decided=len(labels),
        bins=table,
        ece=ece if labels else None,
        target_error=target_error,
        recommended_threshold=recommended,
        predicted_review_share=predicted_share,
        predicted_error=predicted_error,
        predicted_error_carts=predicted_n,
        predicted_error_upper=_upper_bound(predicted_error, predicted_n),
        current_threshold=store.review_threshold,
        current_review_share=_predicted_share(population, store.review_threshold, audit),
        current_error=current_error,
        current_error_carts=current_n,
        triaged=len(population),
    )


def calibration_apply(*, report: CalibrationReport, actor: Any) -> dict[str, Any]:
    """Set the store's review threshold to the report's recommendation (audited, with the
    figures behind it). Returns what changed; raises DomainError if nothing was recommended."""
    from .stores import store_policy_update

    if report.recommended_threshold is None:
        raise DomainError("no threshold meets that target on the decisions so far")
    return store_policy_update(
        store=report.store,
        changes={"review_threshold": report.recommended_threshold},
        actor=actor,
        reason=f"calibration report: target error {report.target_error:.3%}, predicted review share "
        f"{report.predicted_review_share or 0:.1%} and error {report.predicted_error or 0:.3%} "
        f"on {report.predicted_error_carts} of {report.decided} decided carts",
    )


@dataclass(frozen=True)
class MeasuredOutcome:
    """What triage did to transactions triaged since a time, and how right the carts it let
    through were, where their true cart is known."""

    transactions: int
    flagged: int
    review_share: float | None
    let_through: int  # auto-approved, or drawn for the audit sample
    known: int  # of those, how many have a known true cart: what the error rests on
    wrong: int
    error: float | None  # wrong / known
    error_interval: tuple[float, float] | None  # 95% Wilson interval


def known_cart(txn: Transaction) -> dict[str, int] | None:
    """The true cart of a transaction, where one is known: its active gold answer (a
    supervisor's, or the simulator's truth for a simulated scene), else the last human
    decision that was not an escalation, a gold check or a dispute."""
    gold = GoldAnswer.objects.filter(transaction=txn, active=True).first()
    if gold is not None:
        return cart_of(gold.lines)
    decision = (
        Decision.objects.filter(transaction=txn, undo__isnull=True)
        .exclude(outcome=DecisionOutcome.ESCALATED)
        .exclude(task__kind__in=[TaskKind.GOLD, TaskKind.DISPUTE])
        .order_by("-created_at")
        .first()
    )
    return cart_of(decision.lines) if decision is not None else None


def threshold_changed_at(*, store: Store) -> datetime | None:
    """When the store's review threshold was last changed (from the audit log), or None."""
    from ..models import AuditEvent

    event = (
        AuditEvent.objects.filter(
            store=store, action="store.policy_changed", after__has_key="review_threshold"
        )
        .order_by("-created_at")
        .first()
    )
    return event.created_at if event is not None else None


def measured_outcome(*, store: Store, since: datetime) -> MeasuredOutcome:
    """After a threshold change: the review share of transactions triaged since then, and the
    error among the carts the threshold let through whose true cart is known (the random audit
    sample's decisions, gold answers, or a simulator's truth recorded as gold).

    An auto-approved cart no one looked at has no known cart and is left out of the error:
    `known` says how many carts the error rests on, `error_interval` how far it can be off."""
    txns = list(
        Transaction.objects.filter(store=store, triaged_at__gte=since).only(
            "pk", "confidence", "review_reasons", "flagged"
        )
    )
    flagged = sum(1 for txn in txns if txn.flagged)
    through = [txn for txn in txns if let_through(txn)]
    known = wrong = 0
    for txn in through:
        cart = known_cart(txn)
        if cart is None:
            continue
        known += 1
        wrong += cart != proposal_cart(txn)
    return MeasuredOutcome(
        transactions=len(txns),
        flagged=flagged,
        review_share=flagged / len(txns) if txns else None,
        let_through=len(through),
        known=known,
        wrong=wrong,
        error=wrong / known if known else None,
        error_interval=wilson_interval(wrong, known),
    )


__all__ = [
    "agreement_overall",
    "calibration_apply",
    "calibration_report",
    "cohen_kappa",
    "gold_mark",
    "gold_top_up",
    "labelled_decisions",
    "measured_outcome",
    "reviewer_quality",
    "second_opinion_queue",
    "second_opinion_reason",
]
