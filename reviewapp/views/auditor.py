"""The auditor's pages: search, a transaction's full history, decision exports, chain verification.

Everything here is read-only (`role_required(..., read_only=True)` refuses any method
but GET and HEAD with 403). Running the chain verification is a GET too: it only
reads. Exports are logged as audit events before the first byte is sent; so are the
clip views (by the media view).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from .. import selectors
from ..access import AUDITOR, SUPERVISOR, role_required
from ..forms_audit import AuditFilterForm
from ..services import exports

PER_PAGE = 50
# LIMIT/OFFSET paging, capped: past this the auditor narrows the filters or exports.
MAX_PAGE = 200


def _page_number(request: HttpRequest) -> int:
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        return 1
    return min(max(page, 1), MAX_PAGE)


@role_required(AUDITOR, SUPERVISOR, read_only=True)
def search(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    context: dict[str, Any] = {"form": form, "max_page": MAX_PAGE}
    if form.is_valid():
        params = form.query_params()
        if form.has_full_token:
            # The token itself never stays in a URL (history, logs, links): only its keyed hash.
            return redirect(f"{reverse('auditor:search')}?{urlencode(params)}")
        page = _page_number(request)
        context.update(selectors.transactions_page(filters=form.filters(), page=page, per_page=PER_PAGE))
        context["query"] = urlencode(params)
        context["filtered"] = bool(params)
        context["by_token_hash"] = bool(params.get("token_hash"))
        context["without_token_hash"] = urlencode({k: v for k, v in params.items() if k != "token_hash"})
        context["first_row"] = (page - 1) * PER_PAGE + 1
        context["last_row"] = (page - 1) * PER_PAGE + len(context["rows"])
    return render(request, "reviewapp/audit_search.html", context)


@role_required(AUDITOR, SUPERVISOR, read_only=True)
def transaction_history(request: HttpRequest, code: Any) -> HttpResponse:
    history = selectors.transaction_history(code=code)
    if history is None:
        raise Http404("no such transaction")
    return render(request, "reviewapp/audit_history.html", history)


@role_required(AUDITOR, SUPERVISOR, read_only=True)
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The decisions matching the search filters, streamed; logged as `export.decisions` first."""
    if fmt not in exports.FORMATS:
        raise Http404("no such format")
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "reviewapp/audit_search.html", {"form": form}, status=400)
    filters = form.filters()
    exports.export_record(actor=request.user, filters=filters, fmt=fmt, via="page")
    response = StreamingHttpResponse(
        exports.export_chunks(filters=filters, fmt=fmt), content_type=exports.CONTENT_TYPES[fmt]
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="decisions-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


@role_required(AUDITOR, SUPERVISOR, read_only=True)
def verify(request: HttpRequest) -> HttpResponse:
    """The chain verification: `run=1` asks a worker to walk the whole chain (it only reads), and the
    page follows it; without, the latest checks and their results."""
    from ..services.audit import chain_check_request

    if request.GET.get("run"):
        _check, new = chain_check_request(actor=request.user)
        if not new:
            messages.info(request, "A verification is already under way: its result shows here.")
        return redirect("auditor:verify")
    checks = selectors.chain_checks()
    running = bool(checks) and checks[0].state in ("queued", "running")
    return render(
        request,
        "reviewapp/audit_verify.html",
        {"checks": checks, "latest": checks[0] if checks else None, "running": running},
    )
