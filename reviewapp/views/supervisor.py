from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .. import selectors
from ..access import SUPERVISOR, role_required


@role_required(SUPERVISOR)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "reviewapp/supervisor_dashboard.html",
        {"queue": selectors.queue_summary(), "footage": selectors.footage_problems()},
    )
