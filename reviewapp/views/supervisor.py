"""The supervisor console: the shift dashboard and the actions on it."""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from .. import selectors
from ..access import SUPERVISOR, is_code, role_required
from ..forms_supervisor import ReassignForm, StorePolicyForm
from ..models import Charge, ReviewTask, Store
from ..services.review import task_reassign
from ..services.settlement import charge_retry
from ..services.stores import store_policy_update
from ..states import DomainError


@role_required(SUPERVISOR)
def dashboard(request: HttpRequest) -> HttpResponse:
    window = request.GET.get("window", "8h")
    if window not in selectors.WINDOWS:
        window = "8h"
    store = None
    if request.GET.get("store"):
        store = (
            Store.objects.filter(code=request.GET["store"]).first() if is_code(request.GET["store"]) else None
        )
    data = selectors.dashboard(window_hours=selectors.WINDOWS[window], store=store)
    return render(
        request,
        "reviewapp/supervisor_dashboard.html",
        {
            **data,
            "window": window,
            "windows": list(selectors.WINDOWS),
            "store": store,
            "stores": Store.objects.order_by("name"),
            "chart": trend_svg(data["trend"]),
            "rollup_every": _rollup_every(),
        },
    )


def _rollup_every() -> str:
    """How often the beat rolls the hourly figures up, in words ("minute", "2 minutes")."""
    from config.celery import BEAT_SCHEDULE

    seconds = float(BEAT_SCHEDULE["roll-up-metrics"]["schedule"])  # type: ignore[arg-type]
    minutes = max(1, round(seconds / 60))
    return "minute" if minutes == 1 else f"{minutes} minutes"


def trend_svg(trend: list[tuple[Any, dict[str, int]]], width: int = 720, height: int = 160) -> dict[str, Any]:
    """Polylines for flagged and auto-approved carts per hour (server-rendered SVG, no JS)."""
    if not trend:
        return {"width": width, "height": height, "series": [], "max": 0, "labels": []}
    top = max(1, *(max(p["flagged"], p["auto_approved"]) for _, p in trend))
    step = width / max(1, len(trend) - 1)

    def points(key: str) -> str:
        return " ".join(
            f"{i * step:.1f},{height - (p[key] / top) * (height - 10):.1f}" for i, (_, p) in enumerate(trend)
        )

    every = max(1, len(trend) // 6)
    last = len(trend) - 1
    # each label centred on its hour, the first and last kept inside the chart (the newest was cut off)
    labels = [
        (i * step, hour, "start" if i == 0 else "end" if i == last else "middle")
        for i, (hour, _) in enumerate(trend)
        if i % every == 0 or i == last
    ]
    if len(labels) >= 2 and labels[-1][0] - labels[-2][0] < 60:  # too close to the newest to read
        del labels[-2]
    dots = [
        (key, f"{i * step:.1f}", f"{height - (p[key] / top) * (height - 10):.1f}", p[key], hour)
        for key in ("auto_approved", "flagged")
        for i, (hour, p) in enumerate(trend)
    ]
    return {
        "width": width,
        "height": height,
        "max": top,
        "series": [
            ("auto_approved", "Auto-approved", points("auto_approved")),
            ("flagged", "Flagged", points("flagged")),
        ],
        "labels": labels,
        "dots": dots,
    }


def _task(code: Any) -> ReviewTask:
    try:
        return ReviewTask.objects.select_related("transaction", "transaction__store", "assignee").get(
            code=code
        )
    except (ReviewTask.DoesNotExist, ValueError):
        raise Http404("no such task")


@require_POST
@role_required(SUPERVISOR)
def take_task(request: HttpRequest, code: Any) -> HttpResponse:
    """A supervisor takes a task (an escalation, or one at risk) and opens it."""
    task = _task(code)
    try:
        task_reassign(task=task, to=request.user, actor=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("supervisor:dashboard")
    return redirect("reviewer:task", code=task.code)


@require_POST
@role_required(SUPERVISOR)
def reassign_task(request: HttpRequest, code: Any) -> HttpResponse:
    task = _task(code)
    form = ReassignForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("to", ["Invalid reviewer."])))
        return redirect("supervisor:dashboard")
    try:
        task_reassign(task=task, to=form.cleaned_data["to"], actor=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        to = form.cleaned_data["to"]
        messages.success(
            request, f"Task given to {to.get_username()}." if to else "Task returned to the queue."
        )
    return redirect("supervisor:dashboard")


@require_POST
@role_required(SUPERVISOR)
def retry_charge(request: HttpRequest, code: Any) -> HttpResponse:
    charge = get_object_or_404(Charge.objects.select_related("transaction", "transaction__store"), code=code)
    try:
        charge_retry(charge=charge, actor=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Settlement retried; it runs on the settlement queue.")
    return redirect("supervisor:dashboard")


@role_required(SUPERVISOR)
def store_policy(request: HttpRequest, code: Any) -> HttpResponse:
    store = get_object_or_404(Store, code=code)
    if request.method == "POST":
        form = StorePolicyForm(request.POST, instance=Store.objects.get(pk=store.pk))
        if form.is_valid():
            changes = {f: form.cleaned_data[f] for f in form.Meta.fields}
            changed = store_policy_update(
                store=store, changes=changes, actor=request.user, reason=form.cleaned_data.get("reason", "")
            )
            messages.success(request, f"Saved: {', '.join(changed)}." if changed else "Nothing changed.")
            return redirect(reverse("supervisor:store-policy", args=[store.code]))
    else:
        form = StorePolicyForm(instance=store)
    return render(request, "reviewapp/supervisor_policy.html", {"store": store, "form": form})


@role_required(SUPERVISOR)
def calibration(request: HttpRequest, code: Any) -> HttpResponse:
    """The tracker's reliability from human decisions, and the threshold that meets a target error."""
    from ..services.quality import (
        calibration_apply,
        calibration_report,
        measured_outcome,
        threshold_changed_at,
    )

    store = get_object_or_404(Store, code=code)
    try:
        target = float(request.POST.get("target_error") or request.GET.get("target_error") or 0.005)
    except ValueError:
        target = 0.005
    if not math.isfinite(target):  # "nan" and "inf" parse
        target = 0.005
    target = min(max(target, 0.0), 0.5)
    report = calibration_report(store=store, target_error=target)
    if request.method == "POST" and request.POST.get("apply") == "1":
        if report.recommended_threshold is None:
            messages.error(request, "No threshold meets that target on the decisions so far.")
        else:
            calibration_apply(report=report, actor=request.user)
            messages.success(request, f"Review threshold set to {report.recommended_threshold:.4f}.")
        return redirect(f"{reverse('supervisor:calibration', args=[store.code])}?target_error={target}")
    changed_at = threshold_changed_at(store=store)
    measured = measured_outcome(store=store, since=changed_at) if changed_at else None
    return render(
        request,
        "reviewapp/supervisor_calibration.html",
        {"store": store, "report": report, "target": target, "changed_at": changed_at, "measured": measured},
    )


@require_POST
@role_required(SUPERVISOR)
def mark_gold(request: HttpRequest, code: Any) -> HttpResponse:
    from ..models import Transaction
    from ..services.quality import gold_mark

    txn = get_object_or_404(Transaction, code=code)
    try:
        gold_mark(txn=txn, actor=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Marked as a gold check: its decided cart is the answer.")
    return redirect("auditor:history", code=txn.code)


@require_POST
@role_required(SUPERVISOR)
def legal_hold(request: HttpRequest, code: Any) -> HttpResponse:
    from ..models import Transaction
    from ..services.retention import legal_hold_set

    txn = get_object_or_404(Transaction, code=code)
    reason = request.POST.get("reason", "").strip()
    if len(reason) < 5:
        messages.error(request, "Say why (a case number, a request).")
    else:
        legal_hold_set(txn=txn, hold=request.POST.get("hold") == "1", actor=request.user, reason=reason)
        messages.success(
            request, "Legal hold set." if request.POST.get("hold") == "1" else "Legal hold released."
        )
    return redirect("auditor:history", code=txn.code)
