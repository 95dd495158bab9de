from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ..access import AUDITOR, SUPERVISOR, role_required


@role_required(AUDITOR, SUPERVISOR, read_only=True)
def search(request: HttpRequest) -> HttpResponse:
    return render(request, "reviewapp/auditor_search.html", {})
