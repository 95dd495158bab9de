"""The reviewer workspace: claim, watch, tag, decide, and straight on to the next task.

The page (templates/reviewapp/review_task.html, static/js/review.js + player.js) posts
its decision with fetch() and follows the `next` URL it gets back; the same endpoints
also take plain form posts (without JavaScript) and then redirect. Every change is a
POST with CSRF and goes through reviewapp.services.review.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from .. import selectors
from ..access import REVIEWER, SUPERVISOR, access_task_for_reviewer, is_supervisor, role_required
from ..forms import SKIP_REASONS, DecisionForm, SkipForm
from ..lookalikes import lookalikes
from ..models import (
    Charge,
    Clip,
    Decision,
    Dispute,
    EvidenceEvent,
    Footage,
    Product,
    ReviewTask,
    TaskKind,
    Transaction,
)
from ..services.clips import media_being_made
from ..services.review import (
    REASON_CODES,
    AlreadyDecided,
    LeaseExpired,
    NotYourTask,
    claim_next_task,
    decision_submit,
    decision_undo,
    lease_leave,
    lease_renew,
    on_deck_claim,
    task_release,
    undo_until,
)
from ..states import DomainError, TaskState
from .media import audit_clip_view

DOUBT_BELOW = 0.9  # a line under this confidence (or with an ambiguous event) is marked "check"
NOT_YOURS = "This task is not (or no longer) assigned to you: your hold may have expired."


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _task_url(task: ReviewTask) -> str:
    return reverse("reviewer:task", args=[task.code])


SKIP_MEMORY_SECONDS = 15 * 60


def _skipped(request: HttpRequest, add: ReviewTask | None = None) -> list[int]:
    """Tasks this reviewer skipped lately (kept in their session): not handed straight back."""
    now = timezone.now().timestamp()
    kept = {
        k: v for k, v in request.session.get("review_skipped", {}).items() if now - v < SKIP_MEMORY_SECONDS
    }
    if add is not None:
        kept[str(add.pk)] = now
    if add is not None or len(kept) != len(request.session.get("review_skipped", {})):
        request.session["review_skipped"] = kept
    return [int(k) for k in kept]


def _next_url(request: HttpRequest) -> str:
    """Claim (or find the held, usually on-deck) next task; the start page when the queue is empty."""
    task = claim_next_task(reviewer=request.user, exclude=_skipped(request))
    return _task_url(task) if task else reverse("reviewer:start") + "?empty=1"


def _held_task(request: HttpRequest, code: Any) -> ReviewTask | HttpResponse:
    """The task for a POST from the page; a 404 with a clear message if the user may not act on it."""
    try:
        return access_task_for_reviewer(request.user, code)
    except Http404:
        return _refused(request, NOT_YOURS, status=404)


def _refused(
    request: HttpRequest, message: str, *, status: int, back_to: ReviewTask | None = None
) -> HttpResponse:
    """Refuse with the domain's message. Without `back_to` the page moves on to the next
    task (the task is gone, decided or expired); with it, the reviewer fixes the input."""
    next_url = "" if back_to else _next_url(request)
    message = message[:1].upper() + message[1:]  # the domain's messages start in lower case
    if not message.endswith("."):
        message += "."
    if _wants_json(request):
        return JsonResponse({"error": message, "next": next_url}, status=status)
    context = {"message": message, "next_url": next_url, "back_url": _task_url(back_to) if back_to else ""}
    return render(request, "reviewapp/review_refused.html", context, status=status)


def _done(request: HttpRequest, message: str, next_url: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"ok": True, "message": message, "next": next_url})
    messages.success(request, message)
    return redirect(next_url)


# --------------------------------------------------------------------------- pages


@require_GET
@role_required(REVIEWER, SUPERVISOR)
def start(request: HttpRequest) -> HttpResponse:
    if request.GET.get("empty"):
        messages.info(request, "No tasks are waiting right now. Try again in a moment.")
    context = {"queue": selectors.queue_summary(), "waiting": selectors.queue_for(request.user)}
    return render(request, "reviewapp/reviewer_start.html", context)


@require_POST
@role_required(REVIEWER, SUPERVISOR)
def next_task(request: HttpRequest) -> HttpResponse:
    """'Start reviewing': the task the reviewer holds, or the next one from the queue."""
    task = claim_next_task(reviewer=request.user, exclude=_skipped(request))
    if task is None:
        messages.info(request, "No tasks are waiting right now. Try again in a moment.")
        return redirect("reviewer:start")
    return redirect(_task_url(task))


@require_GET
@role_required(REVIEWER, SUPERVISOR)
def task_page(request: HttpRequest, code: Any) -> HttpResponse:
    task = access_task_for_reviewer(request.user, code)
    holder = task.state == TaskState.ASSIGNED and task.assignee_id == request.user.pk
    if task.state == TaskState.DONE and task.assignee_id == request.user.pk:
        messages.info(request, "That task is decided. Here is the next one.")
        return redirect("reviewer:start")
    if holder:
        try:
            lease_renew(task=task, reviewer=request.user)  # also undoes a reload's leave signal
        except DomainError as exc:
            messages.error(request, f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
            return redirect("reviewer:start")
    # no reviewer's task is held in reserve for a supervisor resolving an escalation
    on_deck = (
        on_deck_claim(reviewer=request.user, current=task, exclude=_skipped(request))
        if holder and task.kind != TaskKind.ESCALATION
        else None
    )
    context = task_context(task, user=request.user, on_deck=on_deck)
    context["holder"] = holder
    context["media_pending"] = not context["clips"] and media_being_made(task)
    if holder:  # its clips play from the cache the previous page prefetched them into
        for clip in Clip.objects.filter(transaction=task.transaction, purged_at__isnull=True):
            audit_clip_view(request, clip)
    return render(request, "reviewapp/review_task.html", context)


def task_context(task: ReviewTask, *, user: Any, on_deck: ReviewTask | None) -> dict[str, Any]:
    """Everything the page shows and its script needs, as template context plus one JSON blob."""
    txn = task.transaction
    store = txn.store
    fps = Footage.objects.filter(pk=txn.footage_id).values_list("camera__fps", flat=True).first()
    camera_fps = fps or 15.0
    proposed = list(txn.proposed_lines.select_related("product").order_by("confidence", "product__sku"))
    events = list(EvidenceEvent.objects.filter(transaction=txn).select_related("product", "slot"))
    clips = list(Clip.objects.filter(transaction=txn, purged_at__isnull=True).prefetch_related("events"))
    products = list(Product.objects.filter(store=store).order_by("name"))
    by_sku: dict[str, list[str]] = {}
    for event in events:
        if event.product:
            by_sku.setdefault(event.product.sku, []).append(str(event.code))
    ambiguous_skus = {e.product.sku for e in events if e.product and e.ambiguous}

    def image_url(product: Product) -> str:
        return reverse("media:product-image", args=[product.code]) if product.image else ""

    lines = [
        {
            "sku": line.product.sku,
            "name": line.product.name,
            "qty": line.qty,
            "unit_price": line.unit_price,
            "confidence": round(line.confidence, 3),
            "image": image_url(line.product),
            "events": by_sku.get(line.product.sku, []),
            "doubt": line.confidence < DOUBT_BELOW or line.product.sku in ambiguous_skus,
        }
        for line in proposed
    ]
    event_data = []
    for n, event in enumerate(events, start=1):
        event_data.append(
            {
                "code": str(event.code),
                "n": n,
                "kind": event.kind,
                "qty": event.qty,
                "sku": event.product.sku if event.product else "",
                "name": event.product.name if event.product else "unknown product",
                "t_start": event.t_start,
                "t_end": event.t_end,
                "confidence": round(event.confidence, 3),
                "ambiguous": event.ambiguous,
                "slot": event.slot.slot_id if event.slot else "",
                "before": reverse("media:crop", args=[event.code, "before"]) if event.before_crop else "",
                "after": reverse("media:crop", args=[event.code, "after"]) if event.after_crop else "",
            }
        )
    clip_data = [
        {
            "code": str(clip.code),
            "url": reverse("media:clip", args=[clip.code]),
            "poster": reverse("media:clip-poster", args=[clip.code]) if clip.poster else "",
            "t_start": clip.t_start,
            "t_end": clip.t_end,
            "events": [str(e.code) for e in clip.events.all()],
        }
        for clip in clips
    ]
    next_clip = None
    if on_deck is not None:
        first = Clip.objects.filter(transaction_id=on_deck.transaction_id, purged_at__isnull=True).first()
        if first:
            next_clip = {
                "url": reverse("media:clip", args=[first.code]),
                "poster": reverse("media:clip-poster", args=[first.code]) if first.poster else "",
            }
    escalation = task.kind == TaskKind.ESCALATION
    page = {
        "task": str(task.code),
        "kind": task.kind,
        "currency": txn.currency,
        "fps": camera_fps,
        "urls": {
            "decide": reverse("reviewer:decide", args=[task.code]),
            "skip": reverse("reviewer:skip", args=[task.code]),
            "renew": reverse("reviewer:renew", args=[task.code]),
            "leave": reverse("reviewer:leave", args=[task.code]),
            "start": reverse("reviewer:start"),
        },
        "on_deck": str(on_deck.code) if on_deck else "",
        "next_clip": next_clip,
        "clips": clip_data,
        "events": event_data,
        "lines": lines,
        "products": [
            {"sku": p.sku, "name": p.name, "price": p.price, "image": image_url(p)} for p in products
        ],
        "lookalikes": lookalikes(products),
        "reasons": REASON_CODES,
        "can_void": escalation and is_supervisor(user),
    }
    note = ""
    if escalation:
        prior = txn.decisions.filter(outcome="escalated").order_by("-created_at").first()
        note = prior.note if prior else ""
    # a dispute: what the shopper says, and what was charged (a lower total is refunded)
    dispute = (
        Dispute.objects.filter(transaction=txn, status=Dispute.Status.OPEN).order_by("-created_at").first()
        if task.kind == TaskKind.DISPUTE
        else None
    )
    charge = Charge.objects.filter(transaction=txn).first() if dispute else None
    return {
        "task": task,
        "txn": txn,
        "lines": lines,
        "events": event_data,
        "clips": clip_data,
        "page": page,
        "reason_codes": REASON_CODES,
        "skip_reasons": SKIP_REASONS,
        "escalation": escalation,
        "escalation_note": note,
        "dispute": dispute,
        "charged": charge,
        "next_clip": next_clip,
    }


# --------------------------------------------------------------------------- actions


@require_POST
@role_required(REVIEWER, SUPERVISOR)
def decide(request: HttpRequest, code: Any) -> HttpResponse:
    task = _held_task(request, code)
    if isinstance(task, HttpResponse):
        return task
    txn = task.transaction
    proposal = {line.product.sku: line.qty for line in txn.proposed_lines.select_related("product")}
    form = DecisionForm(
        request.POST,
        proposal=proposal,
        skus=set(Product.objects.filter(store_id=txn.store_id).values_list("sku", flat=True)),
        events={str(c) for c in EvidenceEvent.objects.filter(transaction=txn).values_list("code", flat=True)},
    )
    outcome = request.POST.get("outcome")
    if outcome == "voided" and task.kind == TaskKind.ESCALATION and is_supervisor(request.user):
        form.fields["outcome"].choices = [*form.fields["outcome"].choices, ("voided", "Void")]
    if not form.is_valid():
        message = " ".join(str(m) for errors in form.errors.values() for m in errors)
        return _refused(request, message, status=400, back_to=task)
    data = form.cleaned_data
    try:
        decision = decision_submit(
            task=task,
            reviewer=request.user,
            outcome=data["outcome"],
            lines=data["lines"],
            note=data.get("note") or "",
            removed_reasons=data["removed"],
            time_spent_ms=data.get("time_spent_ms") or 0,
        )
    except (AlreadyDecided, NotYourTask, LeaseExpired) as exc:
        return _refused(request, str(exc), status=409)
    except DomainError as exc:
        return _refused(request, str(exc), status=400, back_to=task)
    labels = {"approved": "Approved", "adjusted": "Approved with corrections", "escalated": "Escalated"}
    until = undo_until(decision)
    # offered only when it went straight to settlement (not on to a second reviewer, say)
    if until is not None and Transaction.objects.filter(pk=txn.pk, state=decision.outcome).exists():
        # every page offers to take it back while it can be (the bar in templates/base.html)
        request.session[UNDO_SESSION_KEY] = {
            "decision": str(decision.code),
            "until": until.timestamp(),
            "label": labels.get(decision.outcome, decision.outcome),
        }
    # a supervisor who resolved an escalation goes back to the shift, not into the reviewers' queue
    after = reverse("supervisor:dashboard") if task.kind == TaskKind.ESCALATION else _next_url(request)
    return _done(request, f"{labels.get(decision.outcome, decision.outcome.title())}.", after)


UNDO_SESSION_KEY = "undo_offer"


def undo_offer(request: HttpRequest) -> dict[str, Any]:
    """Context for every page: the reviewer's last approval, while it can still be taken back."""
    offer = getattr(request, "session", {}).get(UNDO_SESSION_KEY)
    left = (offer or {}).get("until", 0) - timezone.now().timestamp()
    if left <= 0:
        return {}
    return {"undo_offer": {**offer, "left_ms": int(left * 1000)}}


@require_POST
@role_required(REVIEWER, SUPERVISOR)
def undo(request: HttpRequest, code: Any) -> HttpResponse:
    """Take back one's last approval: its transaction reopens as a task this reviewer holds."""
    request.session.pop(UNDO_SESSION_KEY, None)
    decision = Decision.objects.filter(code=code, reviewer=request.user).select_related("task").first()
    if decision is None:
        return _refused(request, NOT_YOURS, status=404)
    try:
        task = decision_undo(decision=decision, reviewer=request.user)
    except DomainError as exc:
        return _refused(request, str(exc), status=409)
    return _done(request, "Undone: the cart is back for you to decide again.", _task_url(task))


@require_POST
@role_required(REVIEWER, SUPERVISOR)
def skip(request: HttpRequest, code: Any) -> HttpResponse:
    task = _held_task(request, code)
    if isinstance(task, HttpResponse):
        return task
    form = SkipForm(request.POST)
    if not form.is_valid():
        return _refused(request, "Pick a reason for skipping.", status=400, back_to=task)
    task_release(task=task, reviewer=request.user, reason=form.reason_text())
    _skipped(request, add=task)
    return _done(request, "Skipped: the task is back in the queue.", _next_url(request))


@require_POST
@role_required(REVIEWER, SUPERVISOR)
def renew(request: HttpRequest, code: Any) -> HttpResponse:
    """The open page keeps its task (and the on-deck one) leased; an error tells it to move on."""
    task = _held_task(request, code)
    if isinstance(task, HttpResponse):
        return task
    try:
        until = lease_renew(task=task, reviewer=request.user)
    except DomainError as exc:
        return _refused(request, str(exc), status=409)
    on_deck_code = request.POST.get("on_deck", "")
    if on_deck_code:  # a lost reserve is fine: the next page claims another
        with suppress(Http404, DomainError):
            lease_renew(task=access_task_for_reviewer(request.user, on_deck_code), reviewer=request.user)
    return JsonResponse({"lease_expires_at": until.isoformat()})


@require_POST
@role_required(REVIEWER, SUPERVISOR)
def leave(request: HttpRequest, code: Any) -> HttpResponse:
    """The page's `pagehide` beacon: cut the leases short so the tasks return to the queue soon."""
    task = _held_task(request, code)
    if isinstance(task, HttpResponse):
        return task
    for task_code in (code, request.POST.get("on_deck", "")):
        if not task_code:
            continue
        try:
            lease_leave(task=access_task_for_reviewer(request.user, task_code), reviewer=request.user)
        except Http404:
            continue
    return HttpResponse(status=204)
