from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .. import selectors
from ..access import REVIEWER, SUPERVISOR, role_required


@role_required(REVIEWER, SUPERVISOR)
def start(request: HttpRequest) -> HttpResponse:
    return render(request, "reviewapp/reviewer_start.html", {"queue": selectors.queue_summary()})
