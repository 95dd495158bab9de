"""From footage to transactions: queue tracking, run it, record carts, triage them.

footage_queue ──(tracking queue)──► footage_track ──► transaction per visit ──► transaction_triage
                                                                      auto_approved ──► settlement queue
                                                                      needs_review  ──► media queue (the footage's waiting carts)

A visit's transaction is recorded as soon as the tracker hands out its cart, while the rest of
the footage is still tracked (`_Recorder`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction as db
from django.db.models import Q
from django.utils import timezone

from tracking import scene as scene_io
from tracking.tracker import SHELF_NOT_IN_VIEW, EarlyCarts, ProposedCart, TrackedEvent, TrackResult

from ..media import local_path
from ..models import (
    EvidenceEvent,
    Footage,
    PlanogramSlot,
    Product,
    ProposedLine,
    Store,
    Transaction,
    TransactionSource,
    Visit,
)
from ..states import DomainError, FootageStatus, IllegalTransition, TransactionState, check_transition
from .audit import SYSTEM, audit_record, jsonable
from .clips import media_untaken

log = logging.getLogger(__name__)

NO_USABLE_FOOTAGE = "no usable footage"
NOT_ALL_SEEN = "the footage does not show all of the visit reliably (a late start, frames missing, a cut, or the camera moved)"


def footage_queue(*, footage: Footage, actor: Any) -> None:
    """Mark footage queued and send it to the tracking queue once the caller's transaction commits."""
    from ..tasks import track_footage_task

    check_transition(FootageStatus, footage.status, FootageStatus.QUEUED)
    Footage.objects.filter(pk=footage.pk).update(status=FootageStatus.QUEUED, error="")
    footage.status = FootageStatus.QUEUED
    db.on_commit(lambda: track_footage_task.delay(footage.pk))


def visits_covered(footage: Footage) -> list[Visit]:
    """Visits whose time in the store overlaps the footage (an open visit counts from its entry)."""
    start = footage.started_at
    end = start + timedelta(seconds=footage.duration_s or 0)
    return list(
        Visit.objects.filter(store_id=footage.store_id, entered_at__lte=end)
        .filter(Q(exited_at__gte=start) | Q(exited_at__isnull=True))
        .order_by("entered_at")
    )


def footage_track(*, footage_id: int, progress_every: float = 0.05) -> str:
    """Run the tracker on one footage file and record a transaction per visit it covers.

    Each visit's cart is recorded and triaged as soon as the tracker hands it out, while the
    footage is still read (`_Recorder.early`): a flagged one goes to the media queue then, a
    confident one to settlement; the rest, and what concerns the footage as a whole, at the end.

    Idempotent: only footage that is queued is claimed (compare-and-set to processing);
    a crashed run left in processing is claimed again by a redelivered task. Tracking
    errors (corrupt, truncated to nothing, missing file) are recorded on the row and
    the covered visits become transactions that need review, "no usable footage".
    """
    claimed = Footage.objects.filter(
        pk=footage_id, status__in=[FootageStatus.QUEUED, FootageStatus.PROCESSING]
    ).update(status=FootageStatus.PROCESSING, progress=0.0)
    if claimed != 1:
        return "not queued"
    footage = Footage.objects.select_related("store", "camera", "camera__store").get(pk=footage_id)
    visits = visits_covered(footage)
    from tracking.tracker import TrackingError, track_footage

    last = {"p": 0.0}

    def progress(fraction: float) -> None:
        if fraction - last["p"] >= progress_every:
            last["p"] = fraction
            Footage.objects.filter(pk=footage_id).update(progress=round(fraction, 3))

    recorder = _Recorder(footage, visits)
    try:
        if not footage.file:
            raise TrackingError("the footage has no file")
        with local_path(footage.file) as video, _tracker_inputs(footage, visits) as (planogram, infos):
            result = track_footage(video, planogram, infos, progress=progress, on_carts=recorder.early)
    except (TrackingError, OSError, ValueError) as exc:
        _footage_failed(footage=footage, visits=visits, error=f"{type(exc).__name__}: {exc}")
        return "failed"
    recorder.result(result)
    return "processed"


class _tracker_inputs:
    """Context manager giving the tracker the planogram (with local image paths) and visits.

    Visits are keyed by their code (never the payment token, which we do not keep);
    times are seconds from the footage's first frame.
    """

    def __init__(self, footage: Footage, visits: list[Visit]) -> None:
        self.footage = footage
        self.visits = visits
        self._stack: list[Any] = []

    def __enter__(self) -> tuple[scene_io.Planogram, list[scene_io.VisitInfo]]:
        from .ingest import planogram_of

        planogram = planogram_of(self.footage.camera)
        products = []
        images = {p.sku: p.image for p in Product.objects.filter(store_id=self.footage.store_id)}
        for product in planogram.products:
            field = images.get(product.sku)
            image = ""
            if field:
                ctx = local_path(field)
                image = str(ctx.__enter__())
                self._stack.append(ctx)
            products.append(
                scene_io.Product(
                    sku=product.sku,
                    name=product.name,
                    price=product.price,
                    currency=product.currency,
                    image=image,
                )
            )
        planogram = scene_io.Planogram(
            camera=planogram.camera,
            currency=planogram.currency,
            products=tuple(products),
            slots=planogram.slots,
        )
        start = self.footage.started_at
        infos = []
        for visit in self.visits:
            gate = ""
            if visit.gate_image:
                ctx = local_path(visit.gate_image)
                gate = str(ctx.__enter__())
                self._stack.append(ctx)
            exited = visit.exited_at or (start + timedelta(seconds=self.footage.duration_s or 0))
            infos.append(
                scene_io.VisitInfo(
                    token=str(visit.code),
                    entered_at=(visit.entered_at - start).total_seconds(),
                    exited_at=(exited - start).total_seconds(),
                    gate_image=gate,
                )
            )
        return planogram, infos

    def __exit__(self, *exc: object) -> None:
        while self._stack:
            self._stack.pop().__exit__(None, None, None)


def _footage_failed(*, footage: Footage, visits: list[Visit], error: str) -> None:
    from ..tasks import prepare_footage_review_task

    with db.atomic():
        Footage.objects.filter(pk=footage.pk).update(status=FootageStatus.FAILED, error=error[:2000])
        audit_record(
            actor=SYSTEM,
            action="footage.failed",
            obj=footage,
            store=footage.store,
            before={"status": FootageStatus.PROCESSING},
            after={"status": FootageStatus.FAILED, "error": error[:500]},
        )
        for visit in visits:
            txn, created = _transaction_for(visit=visit, footage=footage)
            if created:
                transaction_triage(txn=txn, forced_reasons=[NO_USABLE_FOOTAGE], media=False)
        db.on_commit(lambda: prepare_footage_review_task.delay(footage.pk))


def _transaction_for(*, visit: Visit, footage: Footage, **fields: Any) -> tuple[Transaction, bool]:
    existing = Transaction.objects.filter(visit=visit).first()
    if existing:
        return existing, False
    txn = Transaction.objects.create(
        store_id=visit.store_id, visit=visit, footage=footage, currency=footage.store.currency, **fields
    )
    audit_record(actor=SYSTEM, action="transaction.created", obj=txn, store=footage.store, txn=txn)
    return txn, True


class _Recorder:
    """Records one footage's tracking: each cart as the tracker hands it out (`early`), then the
    rest of the result (`result`). A cart recorded before (a redelivered task) is left as it is."""

    def __init__(self, footage: Footage, visits: list[Visit]) -> None:
        self.footage = footage
        self.visits = visits
        self.by_code = {str(v.code): v for v in visits}
        self.slots = {s.slot_id: s for s in PlanogramSlot.objects.filter(camera_id=footage.camera_id)}
        self.products = {p.sku: p for p in Product.objects.filter(store_id=footage.store_id)}
        self.sent_for: list[int] = []  # the flagged carts the last media message was sent for

    def early(self, early: EarlyCarts) -> None:
        """Carts handed out together while the footage is read: recorded and triaged in one
        database transaction. If any is flagged, its media is queued at once (`_media`), with the
        shopper tracks read so far, which cover its clips (redaction blurs every shopper in them)."""
        with db.atomic():
            flagged = []
            for cart in early.carts:
                visit = self.by_code.get(cart.token)
                txn = visit and self._cart(visit, cart, early.unattributed, shelf_in_view=early.shelf_in_view)
                if txn and txn.state in (TransactionState.NEEDS_REVIEW, TransactionState.ESCALATED):
                    flagged.append(txn.pk)
            if not flagged:
                return
            Footage.objects.filter(pk=self.footage.pk).update(tracks=early.tracks_json())
            self._media(flagged)

    def _media(self, flagged: list[int]) -> None:
        """Queue the footage's media task for these flagged carts, after the commit.

        One media message at a time: while the last one sent is still queued (none of the carts
        it was sent for taken up yet), the media task it starts will find these too, or, if it
        looked before they were committed, run again for them ("more waiting")."""
        from ..tasks import prepare_footage_review_task

        if not flagged or (self.sent_for and media_untaken(Transaction.objects.filter(pk__in=self.sent_for))):
            return
        self.sent_for = flagged
        db.on_commit(lambda: prepare_footage_review_task.delay(self.footage.pk))

    def result(self, result: TrackResult) -> None:
        """The whole result: the carts not handed out before, the events tied to nobody, the
        footage's stats and tracks; then the media of the flagged carts still waiting for it."""
        footage = self.footage
        shelf_in_view = bool(result.stats.get("shelf_in_view", True))
        with db.atomic():
            for token, cart in result.carts.items():
                visit = self.by_code.get(token)
                if visit is not None:
                    self._cart(visit, cart, result.unattributed, shelf_in_view=shelf_in_view)
            for visit in self.visits:  # the tracker returns every visit; if one is missing, a human looks
                if str(visit.code) not in result.carts:
                    txn, created = _transaction_for(visit=visit, footage=footage)
                    if created:
                        transaction_triage(
                            txn=txn,
                            forced_reasons=["the tracker returned no cart for this visit"],
                            media=False,
                        )
            self._media(media_untaken(Transaction.objects.filter(footage=footage)))
            if result.unattributed:
                _record_events(
                    footage=footage,
                    txn=None,
                    events=result.unattributed,
                    slots=self.slots,
                    products=self.products,
                )
            stats = dict(result.stats or {})
            if result.truncated_at is not None:
                stats["truncated_at"] = result.truncated_at
            Footage.objects.filter(pk=footage.pk).update(
                status=FootageStatus.PROCESSED,
                progress=1.0,
                processed_at=timezone.now(),
                readable_until_s=result.truncated_at,
                tracker_stats=jsonable(stats),
                tracks=result.tracks_json(),
                error="; ".join(result.caveats()),
            )
            audit_record(
                actor=SYSTEM,
                action="footage.processed",
                obj=footage,
                store=footage.store,
                after={"carts": len(result.carts), "unattributed": len(result.unattributed)},
            )

    def _cart(
        self, visit: Visit, cart: ProposedCart, unattributed: Iterable[TrackedEvent], *, shelf_in_view: bool
    ) -> Transaction | None:
        """Record one visit's proposed cart and triage it (its media is the caller's to queue).
        Returns its transaction; None if the visit's cart was recorded before."""
        footage = self.footage
        txn, created = _transaction_for(
            visit=visit, footage=footage, confidence=float(cart.confidence), source="tracker"
        )
        if not created:
            return None  # a redelivered task, or handed out before: this visit's cart is already recorded
        amount = 0
        for line in cart.lines:
            product = self.products[line.sku]
            ProposedLine.objects.create(
                transaction=txn,
                product=product,
                qty=line.qty,
                unit_price=product.price,
                confidence=float(line.confidence),
            )
            amount += line.qty * product.price
        _record_events(footage=footage, txn=txn, events=cart.events, slots=self.slots, products=self.products)
        Transaction.objects.filter(pk=txn.pk).update(proposed_amount=amount)
        txn.proposed_amount = amount
        reasons = []
        if any(e.ambiguous for e in cart.events):
            reasons.append("ambiguous event")
        # an event tied to nobody may belong to any shopper present at the time: all of them go to a human
        if any(_present(visit, footage.started_at + timedelta(seconds=e.t_start)) for e in unattributed):
            reasons.append("unattributed event during the visit")
        if not shelf_in_view:
            reasons.append(SHELF_NOT_IN_VIEW)
        elif cart.evidence is not None and not cart.evidence.seen:
            reasons.append(NOT_ALL_SEEN)
        transaction_triage(txn=txn, forced_reasons=reasons, media=False)
        return txn


def _present(visit: Visit, at: datetime) -> bool:
    return visit.entered_at <= at and (visit.exited_at is None or at <= visit.exited_at)


def _record_events(
    *,
    footage: Footage,
    txn: Transaction | None,
    events: Iterable[Any],
    slots: dict[str, PlanogramSlot],
    products: dict[str, Product],
) -> None:
    for event in events:
        slot = slots.get(event.slot)
        box = list(event.box) if getattr(event, "box", None) else None
        EvidenceEvent.objects.create(
            footage=footage,
            transaction=txn,
            slot=slot,
            product=products.get(event.sku),
            kind=event.kind,
            qty=event.qty,
            t_start=event.t_start,
            t_end=max(event.t_end, event.t_start),
            confidence=float(event.confidence),
            attribution_margin=float(getattr(event, "attribution_margin", 1.0)),
            ambiguous=bool(getattr(event, "ambiguous", False)),
            before_frame=getattr(event, "before_frame", None),
            after_frame=getattr(event, "after_frame", None),
            before_box=box,
            after_box=box,
        )


# --------------------------------------------------------------------------- triage


def audit_sample_draw(*, store: Store, txn: Transaction) -> float:
    """A reproducible uniform draw in [0, 100) for the random audit sample."""
    digest = hashlib.sha256(f"{store.code}:{txn.code}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def triage_reasons(*, txn: Transaction, store: Store, forced: Iterable[str] = ()) -> list[str]:
    """Why this cart needs a human, per the store's policy; empty if it can settle on its own."""
    reasons = list(dict.fromkeys(forced))
    if txn.confidence is None:
        reasons.append("no tracker confidence")
    elif txn.confidence < store.review_threshold:
        reasons.append(f"confidence {txn.confidence:.2f} under threshold {store.review_threshold:.2f}")
    if txn.pk and txn.events.filter(Q(ambiguous=True)).exists() and "ambiguous event" not in reasons:
        reasons.append("ambiguous event")
    if txn.proposed_amount > store.review_limit_amount:
        reasons.append(f"amount over the review limit ({store.review_limit_amount})")
    if not reasons and audit_sample_draw(store=store, txn=txn) < store.audit_sample_percent:
        reasons.append("random audit sample")
    return reasons


def transaction_triage(*, txn: Transaction, forced_reasons: Iterable[str] = (), media: bool = True) -> str:
    """Decide auto-approve or review for a transaction still in `tracking`; queue what follows.

    Caller holds a database transaction; follow-up tasks are queued after it commits.
    `media=False`: the caller queues the review media of its footage's flagged transactions
    itself, in one task (footage_review_prepare).
    """
    from ..tasks import prepare_review_task, settle_transaction_task

    store = txn.store
    reasons = triage_reasons(txn=txn, store=store, forced=forced_reasons)
    new = TransactionState.NEEDS_REVIEW if reasons else TransactionState.AUTO_APPROVED
    try:
        check_transition(TransactionState, txn.state, new)
    except IllegalTransition:
        return txn.state
    now = timezone.now()
    changed = Transaction.objects.filter(pk=txn.pk, state=TransactionState.TRACKING).update(
        state=new,
        review_reasons=reasons,
        flagged=bool(reasons),
        triaged_at=now,
        decided_at=None if reasons else now,
        final_amount=None if reasons else txn.proposed_amount,
    )
    if changed != 1:
        return Transaction.objects.get(pk=txn.pk).state
    txn.state, txn.review_reasons, txn.triaged_at = new, reasons, now
    audit_record(
        actor=SYSTEM,
        action="transaction.triaged",
        obj=txn,
        store=store,
        txn=txn,
        before={"state": TransactionState.TRACKING},
        after={"state": new, "reasons": reasons, "confidence": txn.confidence, "amount": txn.proposed_amount},
    )
    if not reasons:
        db.on_commit(lambda: settle_transaction_task.delay(txn.pk))
    elif media:
        db.on_commit(lambda: prepare_review_task.delay(txn.pk))
    return new


# --------------------------------------------------------------------------- external trackers


@dataclass(frozen=True)
class ExternalLine:
    sku: str
    qty: int
    confidence: float


def external_cart_submit(
    *,
    store: Store,
    visit: Visit,
    lines: list[ExternalLine],
    confidence: float,
    footage: Footage | None,
    actor: Any,
) -> Transaction:
    """A cart computed by the store's own tracker: recorded as proposed, then triaged like ours.

    Raises LookupError for an unknown sku and DomainError if the visit already has a cart.
    """
    products = {p.sku: p for p in Product.objects.filter(store=store, sku__in=[line.sku for line in lines])}
    for i, line in enumerate(lines):
        if line.sku not in products:
            raise LookupError(f"lines[{i}].sku: no product {line.sku!r} in this store")
    merged: dict[str, ExternalLine] = {}
    for line in lines:  # the same sku twice is one line
        prev = merged.get(line.sku)
        merged[line.sku] = (
            ExternalLine(line.sku, prev.qty + line.qty, min(prev.confidence, line.confidence))
            if prev
            else line
        )
    with db.atomic():
        if Transaction.objects.filter(visit=visit).exists():
            raise DomainError("this visit already has a cart")
        txn = Transaction.objects.create(
            store=store,
            visit=visit,
            footage=footage,
            source=TransactionSource.EXTERNAL,
            confidence=confidence,
            currency=store.currency,
        )
        amount = 0
        for line in merged.values():
            product = products[line.sku]
            ProposedLine.objects.create(
                transaction=txn,
                product=product,
                qty=line.qty,
                unit_price=product.price,
                confidence=line.confidence,
            )
            amount += line.qty * product.price
        Transaction.objects.filter(pk=txn.pk).update(proposed_amount=amount)
        txn.proposed_amount = amount
        audit_record(
            actor=actor,
            action="transaction.created",
            obj=txn,
            store=store,
            txn=txn,
            after={
                "source": "external",
                "lines": [vars(line) for line in merged.values()],
                "confidence": confidence,
            },
        )
        transaction_triage(txn=txn)
    return txn
